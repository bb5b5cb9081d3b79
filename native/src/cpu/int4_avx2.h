// AVX2 + FMA kernels of the float INT4 matmul (int4.cpp routes to them): M = 1 (int4_avx2_gemv.cpp) and
// 2 ≤ M ≤ 64 (int4_avx2.cpp: each weight row's codes are decoded once per tile of up to eight activation
// rows). See int4.h for the formats.
#pragma once
#include <cstdint>
#include <vector>

#include "int4.h"

namespace llmk::cpu {

// Weight (packed codes, canonical or quads), bias, output and sizes of one int4_matmul call, as its kernels see them.
struct Int4MatmulArgs {
  QWeight q;
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
  // [M][K] floats (act-order applied, int4_avx2_pack_x), 64-byte aligned, in tiles of T = int4_avx2_tile_rows(M) rows (the
  // last may have fewer, t): for the tile of rows m0 … m0+t−1 and packed byte j % 8 == 0, 16·t floats at
  // m0·K + 2·t·j: x[m0+i][2j … 2j+14 step 2] at 8·i, then x[m0+i][2j+1 … 2j+15 step 2] at 8·(t + i).
  const float* xt;
};

// Outputs y[0:M, n0:n1]. Needs AVX2 + FMA (the caller checks).
void int4_rows_avx2(const Int4Avx2Args& a, int64_t n0, int64_t n1);
// Rows of x per tile (see xt), and x [M][K] (row-major floats) in that layout: *xt (64-byte aligned) points
// into the returned storage. Unaligned x costs the M = 16 tile about a third of its speed (split loads).
int64_t int4_avx2_tile_rows(int64_t M);
std::vector<float> int4_avx2_pack_x(const float* x, int64_t M, int64_t K, const float** xt);

// The first 64-byte aligned float of v (give v 16 floats of slack).
inline float* int4_aligned64(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

struct Int4GemvArgs : Int4MatmulArgs {  // M = 1, group % 16 == 0
  const float* x;   // [K] (act-order applied)
  const float* xb;  // [K], 32-byte aligned: x in the kernel's order (int4_gemv_avx2_pack_x)
  const float* xs;  // [K / group]: the group sums of x
};

// Outputs y[0, n0:n1]. Needs AVX2 + FMA (the caller checks).
void int4_gemv_avx2(const Int4GemvArgs& a, int64_t n0, int64_t n1);
// x [K] (K % 16 == 0) in the order int4_gemv_avx2 reads it, into xb [K] (plain code: no AVX2 needed).
void int4_gemv_avx2_pack_x(const float* x, int64_t K, float* xb);

}  // namespace llmk::cpu
