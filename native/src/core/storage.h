// A block of device memory with its allocator. Shared by tensors and views through shared_ptr;
// queued work holds a reference, so memory is released only after the work that uses it.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include "device.h"

namespace llmk {

class Storage {
 public:
  static std::shared_ptr<Storage> allocate(int64_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, int64_t nbytes, Device device, void* stream)
      : data_(data), nbytes_(nbytes), device_(device), stream_(stream) {}
  void* data_;
  int64_t nbytes_;
  Device device_;
  void* stream_;  // CUDA: the stream the memory was allocated on (freed there, stream-ordered)
};

struct AllocatorStats {
  int64_t live_bytes = 0, live_blocks = 0, total_allocs = 0;
};
AllocatorStats allocator_stats(DeviceKind kind);

}  // namespace llmk
