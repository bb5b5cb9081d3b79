// AVX2 + FMA kernel of the float INT4 matmul for M = 1 (int4_avx2.h). Per 16 codes of a row: one 8-byte
// zero-extending load, an and and a shift (low and high nibbles, matching x de-interleaved), two int → float
// conversions and two FMAs; nothing else in the loop. The zero point is applied once per row as
// Σ_g scale_g · Σ_group x·q − Σ_g scale_g · zero_g · Σ_group x (the group sums of x are given), so the
// per-group work is one FMA per row into a vector accumulator (no horizontal sums until the row's end) and
// the zero term is one short vector loop per row.
// A row whose result is not finite is recomputed term by term as Σ x · (scale · (q − zero)), so Inf / NaN
// in x (or a cancelling overflow) give what x · dequant(W)ᵀ gives.
#include <algorithm>
#include <cmath>
#include "int4_avx2.h"
#include "simd_x86.h"

#include "../core/half.h"

namespace llmk::cpu {

#if defined(LLMK_CPU_X86)
namespace {
#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "hsum_avx2.h"

// Off the hot path: row n as x · dequant(W)ᵀ term by term (x de-interleaved: xe = even k, xo = odd k).
__attribute__((noinline)) float exact_row(const Int4GemvArgs& a, int64_t n) {
  const int64_t G = a.K / a.group, gp = a.group / 2, K2 = a.K / 2;
  const uint8_t* q = a.q + n * K2;
  float d = 0.f;
  for (int64_t g = 0; g < G; g++) {
    const float s = load_as_f32(a.scales, n * G + g, a.sdt), z = a.zeros ? float(a.zeros[n * G + g]) : 8.f;
    for (int64_t j = g * gp; j < (g + 1) * gp; j++)
      d += a.xeo[j] * (s * (float(q[j] & 15u) - z)) + a.xeo[K2 + j] * (s * (float(q[j] >> 4) - z));
  }
  return d;
}

// Σ_g scale_g · zero_g · xsum_g over row n's groups: vector code for float32 scales, else scalar.
float zero_term(const Int4GemvArgs& a, int64_t n) {
  const int64_t G = a.K / a.group;
  int64_t g = 0;
  __m256 v = _mm256_setzero_ps();
  if (a.sdt == 0) {
    const float* s = static_cast<const float*>(a.scales) + n * G;
    for (; g + 8 <= G; g += 8) {
      const __m256 z = a.zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                     _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.zeros + n * G + g))))
                               : _mm256_set1_ps(8.f);
      v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), z), _mm256_loadu_ps(a.xs + g), v);
    }
  }
  float t = hsum(v);
  for (; g < G; g++)
    t = std::fma(load_as_f32(a.scales, n * G + g, a.sdt) * (a.zeros ? float(a.zeros[n * G + g]) : 8.f), a.xs[g], t);
  return t;
}

// R rows (n.., nr valid; missing ones repeat the last) share each load of x. Two accumulators per row
// within a group (independent FMA chains), one across groups. Prefetches may point past the weight's
// end (harmless: a prefetch never faults).
template <int R>
void rows(const Int4GemvArgs& a, int64_t n, int nr) {
  const int64_t K2 = a.K / 2, G = a.K / a.group, gp = a.group / 2;
  const uint8_t* qr[R];
  int64_t row[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    row[r] = n + std::min(r, nr - 1);
    qr[r] = a.q + row[r] * K2;
  }
  const __m256i m15 = _mm256_set1_epi32(15);
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    __m256 sa[R], sb[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) { sa[r] = _mm256_setzero_ps(); sb[r] = _mm256_setzero_ps(); }
    // The next R rows' bytes of this group: each row is a short stream (K/2 bytes) that the hardware
    // prefetchers pick up late; fetching them one block ahead took M = 1 at 4096² from 1.1–1.4 ms to 0.8–1.0.
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) _mm_prefetch(reinterpret_cast<const char*>(qr[r] + R * K2 + g * gp), _MM_HINT_T0);
    for (int64_t j = g * gp; j < (g + 1) * gp; j += 8) {
      const __m256 e = _mm256_loadu_ps(a.xeo + j), o = _mm256_loadu_ps(a.xeo + K2 + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr[r] + j)));
        sa[r] = _mm256_fmadd_ps(e, _mm256_cvtepi32_ps(_mm256_and_si256(b, m15)), sa[r]);
        sb[r] = _mm256_fmadd_ps(o, _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4)), sb[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const float s = load_as_f32(a.scales, row[r] * G + g, a.sdt);
      acc[r] = _mm256_fmadd_ps(_mm256_add_ps(sa[r], sb[r]), _mm256_set1_ps(s), acc[r]);
    }
  }
  float out[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) out[r] = hsum(acc[r]);
  for (int r = 0; r < nr; r++) {
    out[r] -= zero_term(a, n + r);
    float v = std::isfinite(out[r]) ? out[r] : exact_row(a, n + r);
    if (a.bias) v += load_as_f32(a.bias, n + r, a.bdt);
    store_from_f32(a.y, n + r, a.ydt, v);
  }
}

#pragma GCC pop_options
}  // namespace

void int4_gemv_avx2(const Int4GemvArgs& a, int64_t n0, int64_t n1) {
  constexpr int R = 4;
  for (int64_t n = n0; n < n1; n += R) rows<R>(a, n, int(std::min<int64_t>(R, n1 - n)));
}
#else
// Never called: off x86 (or under clang) int4_isa() is Generic.
void int4_gemv_avx2(const Int4GemvArgs&, int64_t, int64_t) {}
#endif

}  // namespace llmk::cpu
