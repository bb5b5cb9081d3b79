// Arguments of one INT4 weight-only matmul, y[M,N] = x'[M,K] · dequant(W)ᵀ + bias, shared by the CPU and
// CUDA launchers (docs/architecture.md §4.3). The ops layer checks every contract before filling it in.
#pragma once
#include <cstdint>
#include "dtype.h"

namespace llmk {

struct Int4MatmulParams {
  const void* x = nullptr;            // [M, K], dtype xdt (F32, F16 or BF16); y has the same dtype
  DType xdt = DType::F32;
  const uint8_t* qweight = nullptr;   // canonical [N, K/2] or, when prepared, the tuned layout of cpu/int4.h (CUDA)
  const void* scales = nullptr;       // [N, G] (prepared: [G, N]), dtype sdt
  DType sdt = DType::F32;
  const uint8_t* zeros = nullptr;     // like scales, uint8; null = symmetric (zero point 8)
  bool prepared = false;              // qweight/scales/zeros use the tuned layout (needs N % 16 == K % 16 == 0)
  const void* bias = nullptr;         // [N], dtype bdt, or null
  DType bdt = DType::F32;
  const int32_t* perm = nullptr;      // act-order: x'[:, j] = x[:, perm[j]], [K], or null
  void* y = nullptr;                  // [M, N], dtype xdt
  int64_t M = 0, N = 0, K = 0, group = 0;
};

}  // namespace llmk
