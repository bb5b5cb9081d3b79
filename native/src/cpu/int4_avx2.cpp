// AVX2 + FMA tile of the exact float INT4 matmul, 2 ≤ M ≤ 64 (int4_avx2.h). Each group's codes become
// w = scale · (q − zero) in registers, rounded exactly as dequantize rounds them (q − zero is exact), and
// feed up to eight activation rows; so x · w follows the float math term by term (Inf / NaN need no fix-up).
// Per 16 codes of a weight row: 9 ops to decode and scale, then 2 FMAs per activation row with x read from
// memory, so with eight rows the decode is amortised over 16 FMAs (M = 16 runs at about 60–70 % of the FMA
// pipes' peak on Zen 4 with the weight in L2; the rest is load and FMA-latency bound). The loop
// runs over chunks of k (x of the tile's rows for one chunk stays in L1) inside blocks of weight rows (their
// codes stay in L2 while every tile of activation rows passes over them); partial sums live in a small
// buffer between chunks.
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

constexpr int kMaxMT = 8;         // activation rows per tile
constexpr int64_t kRowBlock = 16;  // weight rows per block
constexpr int64_t kChunkK = 256;   // k per chunk (at least; whole groups)

// Weight rows nb .. nb+nr-1, groups [g0, g1), activation rows m0 .. m0+MT-1: adds into acc[r][m] (8 floats
// each, r < nr). MT ≤ 4 keeps a second accumulator per activation row (odd k) so that enough FMA chains are
// in flight. One call per chunk and row block.
template <int MT>
void tile(const Int4Avx2Args& a, int64_t nb, int64_t nr, int64_t m0, int64_t g0, int64_t g1, float (*accs)[kMaxMT * 8]) {
  constexpr int A = MT <= 4 ? 2 : 1;
  const int64_t K = a.K, K2 = K / 2, G = K / a.group, gp = a.group / 2;
  const float* xm = a.xt + m0 * K;  // this tile's x: per 8 bytes j, 2·MT vectors (even k of each row, then odd)
  const __m256i m15 = _mm256_set1_epi32(15);
  for (int64_t row = nb; row < nb + nr; row++) {
    const QRow q = a.q.row(row);
    float* acc = accs[row - nb];
    __m256 ac[MT][A];
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++) {
      ac[m][0] = _mm256_loadu_ps(acc + 8 * m);
      if constexpr (A == 2) ac[m][1] = _mm256_setzero_ps();
    }
    for (int64_t g = g0; g < g1; g++) {
      const __m256 sv = _mm256_set1_ps(load_as_f32(a.scales, row * G + g, a.sdt));
      const __m256i zv = _mm256_set1_epi32(a.zeros ? int(a.zeros[row * G + g]) : 8);
      // The same bytes of the next row block (see int4_avx2_gemv.cpp and QWeight; a prefetch never faults).
      _mm_prefetch(reinterpret_cast<const char*>(q.at(g * gp) + kRowBlock * K2), _MM_HINT_T1);
      for (int64_t j = g * gp; j < (g + 1) * gp; j += 8) {
        const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.at(j))));
        const __m256 wl = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b, m15), zv)), sv);
        const __m256 wh = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b, 4), zv)), sv);
#pragma GCC unroll 8
        for (int m = 0; m < MT; m++) {
          ac[m][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xm + 2 * MT * j + 8 * m), wl, ac[m][0]);
          ac[m][A - 1] = _mm256_fmadd_ps(_mm256_loadu_ps(xm + 2 * MT * j + 8 * (MT + m)), wh, ac[m][A - 1]);
        }
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MT; m++)
      _mm256_storeu_ps(acc + 8 * m, A == 2 ? _mm256_add_ps(ac[m][0], ac[m][A - 1]) : ac[m][0]);
  }
}

using TileFn = void (*)(const Int4Avx2Args&, int64_t, int64_t, int64_t, int64_t, int64_t, float (*)[kMaxMT * 8]);
constexpr TileFn kTiles[kMaxMT] = {tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>, tile<7>, tile<8>};

void rows(const Int4Avx2Args& a, int64_t n0, int64_t n1) {
  const int64_t G = a.K / a.group, cg = std::max<int64_t>(1, kChunkK / a.group);
  const int64_t mtb = int4_avx2_tile_rows(a.M);
  alignas(32) float acc[kRowBlock][kMaxMT * 8];
  for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, n1 - nb);
    for (int64_t m0 = 0; m0 < a.M; m0 += mtb) {
      const int64_t mt = std::min(mtb, a.M - m0);
      const TileFn fn = kTiles[mt - 1];
      std::fill(&acc[0][0], &acc[0][0] + kRowBlock * kMaxMT * 8, 0.f);
      for (int64_t g0 = 0; g0 < G; g0 += cg) fn(a, nb, nr, m0, g0, std::min(G, g0 + cg), acc);
      for (int64_t r = 0; r < nr; r++) {
        const float bv = a.bias ? load_as_f32(a.bias, nb + r, a.bdt) : 0.f;
        for (int64_t m = 0; m < mt; m++) {
          const float v = hsum(_mm256_load_ps(acc[r] + 8 * m));
          store_from_f32(a.y, (m0 + m) * a.N + nb + r, a.ydt, a.bias ? v + bv : v);  // no bias: −0 stays −0
        }
      }
    }
  }
}

#pragma GCC pop_options
}  // namespace

void int4_rows_avx2(const Int4Avx2Args& a, int64_t n0, int64_t n1) { rows(a, n0, n1); }

int64_t int4_avx2_tile_rows(int64_t M) {
  const int64_t tiles = (M + kMaxMT - 1) / kMaxMT;
  return (M + tiles - 1) / tiles;  // balanced: M = 10 gives two tiles of 5
}

std::vector<float> int4_avx2_pack_x(const float* xf, int64_t M, int64_t K, const float** xtp) {
  std::vector<float> buf(size_t(M * K + 16));
  float* xt = int4_aligned64(buf);
  *xtp = xt;
  const int64_t T = int4_avx2_tile_rows(M);
  for (int64_t m0 = 0; m0 < M; m0 += T) {
    const int64_t t = std::min(T, M - m0);
    for (int64_t i = 0; i < t; i++)
      for (int64_t k = 0; k < K; k++) {
        const int64_t j = k / 2 & ~int64_t(7), h = k & 1, l = (k / 2) & 7;
        xt[m0 * K + 2 * t * j + 8 * (h * t + i) + l] = xf[(m0 + i) * K + k];
      }
  }
  return buf;
}
#else
// Never called: off x86 (or under clang) int4_isa() is Generic.
void int4_rows_avx2(const Int4Avx2Args&, int64_t, int64_t) {}
int64_t int4_avx2_tile_rows(int64_t M) { return M; }
std::vector<float> int4_avx2_pack_x(const float*, int64_t, int64_t, const float**) { return {}; }
#endif

}  // namespace llmk::cpu
