// AVX2 + FMA kernel of the float INT4 matmul for M = 1 (int4_avx2.h). Per 8 bytes (16 codes) of a row: two
// 8-byte broadcasts straight from memory (load ports only), and per broadcast one and, one int → float
// conversion and one FMA: 6 vector-pipe ops per 16 codes (a zero-extending load + and + shift + 2 conversions
// + 2 FMAs was 7, and the loop is bound by those pipes, not by memory).
// The and keeps one nibble per 32-bit lane at nibble position p = lane / 2 of that lane's dword, so lane values
// are code · 16^p (p ≤ 3: positive, exact in float). Each lane's accumulator thus holds 16^p times its sum:
// scaling by a power of two commutes with float rounding (in the normal range; below it the scaled sums are
// if anything more precise), so unscaling at the row's end gives the value of summing x · code directly; an
// overflow of a scaled sum makes the row non-finite, and such a row is recomputed (see below).
// The zero point is applied once per row as Σ_g scale_g · Σ_group x·q − Σ_g scale_g · zero_g · Σ_group x (the
// group sums of x are given), so the per-group work is one FMA per row into a vector accumulator.
// A row whose result is not finite is recomputed term by term as Σ x · (scale · (q − zero)), so Inf / NaN
// in x (or a cancelling overflow) give what x · dequant(W)ᵀ gives.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "int4_avx2.h"
#include "simd_x86.h"

#include "../core/half.h"

namespace llmk::cpu {

// Broadcast A of the 8 bytes at o puts dword L = bytes o..o+3 in even lanes and H = bytes o+4..o+7 in odd
// lanes; lane l keeps nibble l / 2 of its dword: k = 2o + 8·(l & 1) + l / 2. Broadcast B (bytes o+2..o+9)
// gives k = 2o + 4 + 8·(l & 1) + l / 2. xb holds, per 8 bytes, the 8 x of A then the 8 x of B.
void int4_gemv_avx2_pack_x(const float* x, int64_t K, float* xb) {
  for (int64_t o = 0; o < K / 2; o += 8)
    for (int l = 0; l < 8; l++) {
      xb[2 * o + l] = x[2 * o + 8 * (l & 1) + l / 2];
      xb[2 * o + 8 + l] = x[2 * o + 4 + 8 * (l & 1) + l / 2];
    }
}

#if defined(LLMK_CPU_X86)
namespace {
#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "hsum_avx2.h"

// Off the hot path: row n as x · dequant(W)ᵀ term by term.
__attribute__((noinline)) float exact_row(const Int4GemvArgs& a, int64_t n) {
  const int64_t G = a.K / a.group, gp = a.group / 2;
  const QRow q = a.q.row(n);
  float d = 0.f;
  for (int64_t g = 0; g < G; g++) {
    const float s = load_as_f32(a.scales, n * G + g, a.sdt), z = a.zeros ? float(a.zeros[n * G + g]) : 8.f;
    for (int64_t j = g * gp; j < (g + 1) * gp; j++) {
      const uint32_t b = *q.at(j);
      d += a.x[2 * j] * (s * (float(b & 15u) - z)) + a.x[2 * j + 1] * (s * (float(b >> 4) - z));
    }
  }
  return d;
}

// Σ_g scale_g · zero_g · xsum_g over row n's groups (s: its scales as float32).
float zero_term(const Int4GemvArgs& a, int64_t n, const float* s) {
  const int64_t G = a.K / a.group;
  int64_t g = 0;
  __m256 v = _mm256_setzero_ps();
  for (; g + 8 <= G; g += 8) {
    const __m256 z = a.zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                   _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.zeros + n * G + g))))
                             : _mm256_set1_ps(8.f);
    v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), z), _mm256_loadu_ps(a.xs + g), v);
  }
  float t = hsum(v);
  for (; g < G; g++) t = std::fma(s[g] * (a.zeros ? float(a.zeros[n * G + g]) : 8.f), a.xs[g], t);
  return t;
}

// R rows (n.., nr valid; missing ones repeat the last) share each load of x; one FMA chain per row and
// group (R chains in flight cover the FMA latency). sc: the rows' scales as float32, [nr][G] from row n.
// Broadcast B reads 2 bytes past each 8 (past a 64-byte chunk of the quads layout: another row's bytes, in
// lanes it masks off; past the weight's end for its last row, which the caller gives as a padded canonical
// copy, last). Prefetches may point past the weight's end (harmless: a prefetch never faults).
template <int R>
void rows(const Int4GemvArgs& a, int64_t n, int nr, const uint8_t* last, const float* sc) {
  const int64_t K2 = a.K / 2, G = a.K / a.group, gp = a.group / 2;
  QRow qr[R];
  int64_t row[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    row[r] = n + std::min(r, nr - 1);
    qr[r] = row[r] == a.N - 1 ? QRow{last, kQuadChunk} : a.q.row(row[r]);
  }
  const __m256i mask = _mm256_setr_epi32(0xF, 0xF, 0xF0, 0xF0, 0xF00, 0xF00, 0xF000, 0xF000);
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    __m256 sg[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) sg[r] = _mm256_setzero_ps();
    // The next R rows' bytes of this group: each row is a short stream (K/2 bytes) that the hardware
    // prefetchers pick up late.
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) _mm_prefetch(reinterpret_cast<const char*>(qr[r].at(g * gp) + R * K2), _MM_HINT_T0);
    for (int64_t j = g * gp; j < (g + 1) * gp; j += 8) {
      const __m256 xa = _mm256_load_ps(a.xb + 2 * j), xbb = _mm256_load_ps(a.xb + 2 * j + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        long long w0, w1;
        const uint8_t* p = qr[r].at(j);  // j % 8 == 0: the 8 bytes are in one chunk
        std::memcpy(&w0, p, 8);
        std::memcpy(&w1, p + 2, 8);
        const __m256i c0 = _mm256_and_si256(_mm256_set1_epi64x(w0), mask);
        const __m256i c1 = _mm256_and_si256(_mm256_set1_epi64x(w1), mask);
        sg[r] = _mm256_fmadd_ps(xa, _mm256_cvtepi32_ps(c0), sg[r]);
        sg[r] = _mm256_fmadd_ps(xbb, _mm256_cvtepi32_ps(c1), sg[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(sg[r], _mm256_broadcast_ss(sc + (row[r] - n) * G + g), acc[r]);
  }
  const __m256 unscale = _mm256_setr_ps(1.f, 1.f, 1.f / 16, 1.f / 16, 1.f / 256, 1.f / 256, 1.f / 4096, 1.f / 4096);
  float out[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) out[r] = hsum(_mm256_mul_ps(acc[r], unscale));
  for (int r = 0; r < nr; r++) {
    out[r] -= zero_term(a, n + r, sc + r * G);
    float v = std::isfinite(out[r]) ? out[r] : exact_row(a, n + r);
    if (a.bias) v += load_as_f32(a.bias, n + r, a.bdt);
    store_from_f32(a.y, n + r, a.ydt, v);
  }
}

#pragma GCC pop_options

// float16 / bfloat16 scales [c] as float32, exactly; 8 at a time (F16C for float16, checked by the caller).
__attribute__((target("avx2,f16c"))) void scales_to_f32(const uint16_t* s, int sdt, int64_t c, float* out) {
  int64_t i = 0;
  for (; i + 8 <= c; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    _mm256_storeu_ps(out + i, sdt == 1 ? _mm256_cvtph_ps(h)
                                       : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
  for (; i < c; i++) out[i] = load_as_f32(s, i, sdt);
}
}  // namespace

void int4_gemv_avx2(const Int4GemvArgs& a, int64_t n0, int64_t n1) {
  constexpr int R = 8;
  const int64_t K2 = a.K / 2, G = a.K / a.group;
  std::vector<uint8_t> last;
  if (n1 == a.N) {  // the weight's last row, with room for broadcast B's over-read
    last.assign(size_t(K2 + 8), 0);
    const QRow lr = a.q.row(a.N - 1);
    for (int64_t o = 0; o < K2; o += kQuadChunk) std::memcpy(last.data() + o, lr.at(o), size_t(std::min(kQuadChunk, K2 - o)));
  }
  // Scales as float32 per block of rows (a scalar float16 conversion per row and group cost M = 1 about
  // 45 % more time than float32 scales).
  std::vector<float> sbuf(a.sdt == 0 ? 0 : size_t(R * G));
  for (int64_t n = n0; n < n1; n += R) {
    const int nr = int(std::min<int64_t>(R, n1 - n));
    const float* sc = static_cast<const float*>(a.scales) + n * G;
    if (a.sdt != 0) {
      const uint16_t* s16 = static_cast<const uint16_t*>(a.scales) + n * G;
      if (a.sdt == 1 && !cpu_has_f16c())
        for (int64_t i = 0; i < nr * G; i++) sbuf[size_t(i)] = load_as_f32(s16, i, a.sdt);
      else
        scales_to_f32(s16, a.sdt, nr * G, sbuf.data());
      sc = sbuf.data();
    }
    rows<R>(a, n, nr, last.data(), sc);
  }
}
#else
// Never called: off x86 (or under clang) int4_isa() is Generic.
void int4_gemv_avx2(const Int4GemvArgs&, int64_t, int64_t) {}
#endif

}  // namespace llmk::cpu
