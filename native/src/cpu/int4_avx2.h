// AVX2 + FMA tile of the exact float INT4 matmul for 2 ≤ M ≤ 64 (int4.cpp routes to it): each weight row's
// codes are decoded once per tile of up to four activation rows. See int4.h for the formats.
#pragma once
#include <cstdint>

namespace llmk::cpu {

// Weight (canonical packed [N][K/2]), bias, output and sizes of one int4_matmul call, as its kernels see them.
struct Int4MatmulArgs {
  const uint8_t* q;
  const void* scales;
  int sdt;
  const uint8_t* zeros;
  const void* bias;
  int bdt;
  void* y;
  int ydt;
  int64_t M, N, K, group;
};

struct Int4Avx2Args : Int4MatmulArgs {  // group % 16 == 0
  const float* xeo;  // [M][K]: x[2j] at j, x[2j+1] at K/2 + j (act-order applied)
};

// Outputs y[0:M, n0:n1]. Needs AVX2 + FMA (the caller checks).
void int4_rows_avx2(const Int4Avx2Args& a, int64_t n0, int64_t n1);

}  // namespace llmk::cpu
