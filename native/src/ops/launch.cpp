#include "launch.h"

#include <algorithm>
#include "../core/cuda_runtime.h"
#include "../core/error.h"
#include "../core/stream.h"

namespace llmk::ops {

void throw_no_cuda(const char* op) {
  throw Error(ErrCode::Unavailable, fmt("%s: this build of llm-kernels has no CUDA support", op));
}

CudaLaunch cuda_launch(Device device, const char* op) {
  if (!cuda_compiled()) throw_no_cuda(op);
  cuda_set_device(device.index);  // throws ERR_LLMK_UNAVAILABLE with the reason when no driver/device
  return CudaLaunch{device, current_stream(device)->cuda()};
}

int* CudaLaunch::err_flag() const { return cuda_error_flag(device.index); }

Tensor CudaLaunch::scratch(int64_t bytes) const {
  return Tensor::empty({std::max<int64_t>(bytes, 1)}, DType::U8, device);
}

}  // namespace llmk::ops
