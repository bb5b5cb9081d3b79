// Dense tiled matmul on CUDA: out[M,N] = a[M,K] · b[K,N], float32 accumulation. The baseline the
// INT4 kernels are compared with inside the library (the external peer is cuBLAS through PyTorch).
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cuda {

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype, void* stream);

}  // namespace llmk::cuda
