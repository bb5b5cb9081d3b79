#include "matmul.h"
#include <algorithm>
#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/matmul.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/matmul.h"
#endif

namespace llmk::ops {

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "matmul");
  check_float_dtype(a, "matmul", "a");
  LLMK_CHECK(a.dtype() == b.dtype(), DType, "matmul: dtypes differ (%s and %s)", dtype_name(a.dtype()), dtype_name(b.dtype()));
  check_ndim(a, 2, "matmul", "a");
  check_ndim(b, 2, "matmul", "b");
  const int64_t M = a.dim(0), K = a.dim(1), N = b.dim(1);
  LLMK_CHECK(b.dim(0) == K, Shape, "matmul: inner dimensions differ (a is %s, b is %s)", shape_str(a.shape()).c_str(),
             shape_str(b.shape()).c_str());
  Tensor out = Tensor::empty({M, N}, a.dtype(), a.device());
  if (a.device().is_cpu()) {
    // compute-bound: multiply-adds count as work alongside the bytes
    enqueue_cpu([a, b, out, M, N, K] { cpu::matmul(a.data(), b.data(), out.data(), M, N, K, a.dtype()); },
                int64_t(std::max(double(a.nbytes() + b.nbytes() + out.nbytes()), std::min(double(M) * double(N) * double(K), 9e18))));
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(a.device().index);
    cuda::matmul(a.data(), b.data(), out.data(), M, N, K, a.dtype(), current_stream(a.device())->cuda());
#endif
  }
  return out;
}

}  // namespace llmk::ops
