// AVX2 + FMA tile of the exact float INT4 matmul, 2 ≤ M ≤ 64 (int4_avx2.h). Each group's codes become
// w = scale · (q − zero) in registers, rounded exactly as dequantize rounds them (q − zero is exact), and
// feed MT activation rows; so x · w follows the float math term by term (Inf / NaN need no fix-up).
#include "int4_avx2.h"

#include <algorithm>
#include "simd_x86.h"

#include "../core/half.h"

namespace llmk::cpu {

#if defined(LLMK_CPU_X86)
namespace {
#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "hsum_avx2.h"

// R weight rows (n.., nr valid; missing ones repeat the last) × MT activation rows (m0..); 8 packed bytes
// (16 codes) per row per step, both nibbles converted and scaled in registers.
template <int R, int MT>
void tile(const Int4Avx2Args& a, int64_t n, int nr, int64_t m0) {
  const int64_t K = a.K, K2 = K / 2, G = K / a.group, gp = a.group / 2;
  const uint8_t* qr[R];
  int64_t row[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    row[r] = n + std::min(r, nr - 1);
    qr[r] = a.q + row[r] * K2;
  }
  const __m256i m15 = _mm256_set1_epi32(15);
  __m256 acc[R][MT];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) acc[r][m] = _mm256_setzero_ps();
  const float* xm = a.xeo + m0 * K;
  for (int64_t g = 0; g < G; g++) {
    __m256 sv[R], zv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      sv[r] = _mm256_set1_ps(load_as_f32(a.scales, row[r] * G + g, a.sdt));
      zv[r] = _mm256_set1_ps(a.zeros ? float(a.zeros[row[r] * G + g]) : 8.f);
    }
    for (int64_t j = g * gp; j < (g + 1) * gp; j += 8) {
      __m256 wl[R], wh[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr[r] + j)));
        wl[r] = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(b, m15)), zv[r]), sv[r]);
        wh[r] = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4)), zv[r]), sv[r]);
      }
#pragma GCC unroll 8
      for (int m = 0; m < MT; m++) {
        const __m256 xe = _mm256_loadu_ps(xm + m * K + j), xo = _mm256_loadu_ps(xm + m * K + K2 + j);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) acc[r][m] = _mm256_fmadd_ps(xo, wh[r], _mm256_fmadd_ps(xe, wl[r], acc[r][m]));
      }
    }
  }
  float out[R][MT];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) out[r][m] = hsum(acc[r][m]);
  for (int r = 0; r < nr; r++) {
    const float bv = a.bias ? load_as_f32(a.bias, n + r, a.bdt) : 0.f;
    for (int m = 0; m < MT; m++) store_from_f32(a.y, (m0 + m) * a.N + n + r, a.ydt, a.bias ? out[r][m] + bv : out[r][m]);
  }
}

template <int R>
void rows(const Int4Avx2Args& a, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += R) {
    const int nr = int(std::min<int64_t>(R, n1 - n));
    for (int64_t m0 = 0; m0 < a.M; m0 += 4) {
      switch (std::min<int64_t>(4, a.M - m0)) {
        case 1: tile<R, 1>(a, n, nr, m0); break;
        case 2: tile<R, 2>(a, n, nr, m0); break;
        case 3: tile<R, 3>(a, n, nr, m0); break;
        default: tile<R, 4>(a, n, nr, m0); break;
      }
    }
  }
}

#pragma GCC pop_options
}  // namespace

void int4_rows_avx2(const Int4Avx2Args& a, int64_t n0, int64_t n1) { rows<2>(a, n0, n1); }
#else
// Never called: off x86 (or under clang) int4_isa() is Generic.
void int4_rows_avx2(const Int4Avx2Args&, int64_t, int64_t) {}
#endif

}  // namespace llmk::cpu
