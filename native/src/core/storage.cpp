#include "storage.h"
#include <cstdlib>
#include <new>
#include "cuda_runtime.h"
#include "error.h"
#include "stream.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk {
namespace {
struct Counters { std::atomic<int64_t> bytes{0}, blocks{0}, allocs{0}; };
Counters& counters(DeviceKind k) {
  static Counters c[2];
  return c[int(k)];
}
}  // namespace

std::shared_ptr<Storage> Storage::allocate(int64_t nbytes, Device device) {
  int64_t n = nbytes > 0 ? nbytes : 1;  // zero-size tensors still get a distinct pointer
  void* p = nullptr;
  void* stream = nullptr;
  if (device.is_cpu()) {
    size_t rounded = (size_t(n) + 63) & ~size_t(63);  // aligned_alloc wants a multiple of the alignment
    p = std::aligned_alloc(64, rounded);
    if (!p) throw Error(ErrCode::OOM, fmt("out of CPU memory allocating %lld bytes", (long long)nbytes));
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(device.index);
    stream = current_stream(device)->cuda();
    cudaError_t e = cudaMallocAsync(&p, size_t(n), static_cast<cudaStream_t>(stream));
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(ErrCode::OOM, fmt("out of CUDA memory on %s allocating %lld bytes", device.str().c_str(), (long long)nbytes));
    }
    cuda_throw_if(int(e), "cudaMallocAsync");
#else
    throw Error(ErrCode::Unavailable, "this build has no CUDA support");
#endif
  }
  Counters& c = counters(device.kind);
  c.bytes += nbytes; c.blocks++; c.allocs++;
  return std::shared_ptr<Storage>(new Storage(p, nbytes, device, stream));
}

Storage::~Storage() {
  Counters& c = counters(device_.kind);
  c.bytes -= nbytes_; c.blocks--;
  if (device_.is_cpu()) { std::free(data_); return; }
#ifdef LLMK_WITH_CUDA
  cudaSetDevice(device_.index);
  cudaFreeAsync(data_, static_cast<cudaStream_t>(stream_));  // stream-ordered: after queued work
#endif
}

AllocatorStats allocator_stats(DeviceKind kind) {
  Counters& c = counters(kind);
  return AllocatorStats{c.bytes.load(), c.blocks.load(), c.allocs.load()};
}

}  // namespace llmk
