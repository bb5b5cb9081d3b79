// What every op needs before it enqueues CUDA work, prepared in one place: the device made current,
// its current stream, the device error flag and stream-ordered scratch memory. Also the one
// "this build has no CUDA" error, so every op reports it the same way.
#pragma once
#include <cstdint>
#include "../core/device.h"
#include "../core/tensor.h"

namespace llmk::ops {

struct CudaLaunch {
  Device device;
  void* stream = nullptr;  // cudaStream_t: the calling thread's current stream of `device`
  // Device int the kernels set on an out-of-range index; read at the next sync (ERR_LLMK_INDEX).
  int* err_flag() const;
  // A uint8 device buffer of max(bytes, 1) bytes. Keep the tensor alive until the launch is enqueued:
  // freeing is stream-ordered, so the kernels that use it still see it.
  Tensor scratch(int64_t bytes) const;
};

// Sets `device` current on this thread (every CUDA call that follows targets it) and returns its
// launch context. In a CPU-only build, or without a usable driver, throws ERR_LLMK_UNAVAILABLE.
CudaLaunch cuda_launch(Device device, const char* op);

// ERR_LLMK_UNAVAILABLE "<op>: this build of llm-kernels has no CUDA support".
[[noreturn]] void throw_no_cuda(const char* op);

}  // namespace llmk::ops
