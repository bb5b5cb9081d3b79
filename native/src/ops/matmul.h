#pragma once
#include "../core/tensor.h"

namespace llmk::ops {

// out[M,N] = a[M,K] · b[K,N]; float32, float16 or bfloat16 (both the same), float32 accumulation.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace llmk::ops
