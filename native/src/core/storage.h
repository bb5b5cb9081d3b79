// A block of device memory with its allocator. Shared by tensors and views through shared_ptr.
// Stream contract: a storage remembers the stream of its last use (its allocation, or an op given it as
// input); work on any other stream first waits for what was queued there so far (use_on), and reads to
// the host wait for that stream (last_stream). Transitive: that stream's own waits cover earlier writers.
// CPU: queued work holds a reference, so memory is released only after the work that uses it.
// CUDA: memory is freed stream-ordered on the stream it was allocated on, after work queued there;
// work queued on any other stream that used it is waited for with an event first (note_use).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>
#include "device.h"

namespace llmk {

class Stream;

class Storage {
 public:
  static std::shared_ptr<Storage> allocate(int64_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // CUDA: remembers the calling thread's current stream when it is not the allocation stream, so the
  // free waits for it. Tensor::data() calls it: a CUDA pointer is only taken to enqueue work with it.
  void note_use() const;
  // Makes work queued on `s` from now on wait for the work queued so far on the stream of the last use
  // (when it is another one), then records `s` as the last use. On the owning JS thread only.
  void use_on(const std::shared_ptr<Stream>& s) {
    if (s.get() == last_raw_ && !last_.expired()) return;  // the common case: same stream, no cost
    order_after_last_use(s);
  }
  // The stream of the last use; nullptr when none is known or it was destroyed (its work is done).
  std::shared_ptr<Stream> last_stream() const { return last_.lock(); }

 private:
  Storage(void* data, int64_t nbytes, Device device, std::shared_ptr<Stream> stream);
  void order_after_last_use(const std::shared_ptr<Stream>& s);
  void* data_;
  int64_t nbytes_;
  Device device_;
  std::shared_ptr<Stream> alloc_stream_;  // CUDA: kept alive until the memory is freed on it
  mutable std::mutex use_mu_;
  mutable std::vector<std::weak_ptr<Stream>> used_on_;  // other streams (an expired one was synchronised)
  std::weak_ptr<Stream> last_;       // stream of the last use (see use_on)
  const Stream* last_raw_ = nullptr;  // last_'s address, compared without touching reference counts
};

struct AllocatorStats {
  int64_t live_bytes = 0, live_blocks = 0, total_allocs = 0;
};
AllocatorStats allocator_stats(DeviceKind kind);

}  // namespace llmk
