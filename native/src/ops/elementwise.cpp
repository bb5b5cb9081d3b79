#include "elementwise.h"
#include "launch.h"
#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/elementwise.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/elementwise.h"
#endif

namespace llmk::ops {

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "add");
  LLMK_CHECK(a.dtype() == b.dtype(), DType, "add: dtypes differ (%s and %s)", dtype_name(a.dtype()), dtype_name(b.dtype()));
  LLMK_CHECK(a.shape() == b.shape(), Shape, "add: shapes differ (%s and %s)", shape_str(a.shape()).c_str(),
             shape_str(b.shape()).c_str());
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (a.device().is_cpu()) {
    enqueue_cpu([a, b, out] { cpu::add(a.data(), b.data(), out.data(), a.numel(), a.dtype()); }, 3 * a.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda::add(a.data(), b.data(), out.data(), a.numel(), a.dtype(), cuda_launch(a.device(), "add").stream);
#endif
  }
  return out;
}

}  // namespace llmk::ops
