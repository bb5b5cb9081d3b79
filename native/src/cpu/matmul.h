// Dense matmul on the CPU: out[M,N] = a[M,K] · b[K,N], float32 accumulation, any float dtype.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cpu {

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype);

}  // namespace llmk::cpu
