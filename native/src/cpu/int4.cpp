// INT4 weight-only matmul, CPU kernels. See int4.h for the formats.
#include "int4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "simd_x86.h"

#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "int4_avx2.h"
#include "int4_isa.h"

namespace llmk::cpu {

namespace {

inline float round_to(int dt, float v) {
  if (dt == 1) return f16_to_f32(f32_to_f16(v));
  if (dt == 2) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

inline int nib(const uint8_t* row, int64_t k) { return (row[k >> 1] >> ((k & 1) * 4)) & 15; }
inline int nib(const QRow& row, int64_t k) { return (*row.at(k >> 1) >> ((k & 1) * 4)) & 15; }

// Sum of a[i] * b[i] over len elements; eight independent lanes so the compiler vectorises it
// without reassociation flags.
inline float dot(const float* a, const float* b, int64_t len) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < len; i++) s += a[i] * b[i];
  return s;
}

// Unpacks len (even) nibbles starting at byte p into q[0..len) as floats 0..15.
inline void unpack(const uint8_t* p, int64_t len, float* q) {
  for (int64_t i = 0; i < len / 2; i++) {
    uint32_t b = p[i];
    q[2 * i] = float(b & 15u);
    q[2 * i + 1] = float(b >> 4);
  }
}

// The fast paths apply the zero point once per group: scale · (Σ x·q − zero · Σ x). When that is not
// finite (Inf or NaN in x, or |x| so large that Σ x·q overflows float32 although x · w does not), the
// group is recomputed term by term as Σ x·w with w = scale·(q − zero), so the result is what
// x · dequant(W)ᵀ gives (±Inf, or NaN only where the math has Inf·0 or Inf − Inf), as on the GPU.
// Off the hot path. x de-interleaved (xe = even k, xo = odd k) over the gp bytes of row qrow from byte o:
__attribute__((noinline)) float exact_group_eo(const float* xe, const float* xo, const QRow& qrow, int64_t o, int64_t gp,
                                               float s, float z) {
  float d = 0.f;
  for (int64_t j = 0; j < gp; j++) {
    const uint32_t b = *qrow.at(o + j);
    d += xe[j] * (s * (float(b & 15u) - z)) + xo[j] * (s * (float(b >> 4) - z));
  }
  return d;
}
// x row-major over k in [k0, k1) of the packed row qrow:
__attribute__((noinline)) float exact_group_rm(const float* xr, const QRow& qrow, int64_t k0, int64_t k1, float s,
                                               float z) {
  float d = 0.f;
  for (int64_t k = k0; k < k1; k++) d += xr[k] * (s * (float(nib(qrow, k)) - z));
  return d;
}

// Portable small-M path (M ≤ 16): no unpacked copy of the weights at all. x is stored de-interleaved per
// byte (xe[j] = x[2j], xo[j] = x[2j+1]), so each packed byte b contributes xe·(b & 15) + xo·(b >> 4); the
// loop over bytes is 16 independent lanes, which the compiler vectorises (SSE2 baseline). With AVX2+FMA,
// M = 1 takes int4_avx2_gemv.cpp and M ≥ 2 int4_avx2.cpp.
constexpr int64_t kSmallM = 16;  // the small-M path serves M ≤ kSmallM
constexpr int64_t kTileM = 64;   // the AVX-512 and AVX2 tiled kernels serve M ≤ kTileM

// x [M][K] de-interleaved per row into xeo (M·K floats): x[2j] at j, x[2j+1] at K/2 + j.
void deinterleave(const std::vector<float>& xf, int64_t M, int64_t K, float* xeo) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t j = 0; j < K / 2; j++) {
      xeo[m * K + j] = xf[size_t(m * K + 2 * j)];
      xeo[m * K + K / 2 + j] = xf[size_t(m * K + 2 * j + 1)];
    }
}

// Weight, bias, output and sizes of one int4_matmul call, as the small-M kernels see them.
using MatmulArgs = Int4MatmulArgs;

struct SmallArgs : MatmulArgs {
  const float* xeo;  // [M][K]: xe (K/2) then xo (K/2) per row
  const float* xs;   // [M][G] group sums of x
};

__attribute__((always_inline)) inline void small_rows(const SmallArgs& a, int64_t n0, int64_t n1) {
  const int64_t G = a.K / a.group, gp = a.group / 2, K2 = a.K / 2;
  for (int64_t n = n0; n < n1; n++) {
    const QRow qrow = a.q.row(n);
    float acc[kSmallM] = {0.f};
    for (int64_t g = 0; g < G; g++) {
      const float s = load_as_f32(a.scales, n * G + g, a.sdt);
      const float z = a.zeros ? float(a.zeros[n * G + g]) : 8.f;
      for (int64_t m = 0; m < a.M; m++) {
        const float* xe = a.xeo + m * a.K + g * gp;
        const float* xo = xe + K2;
        float l[16] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        int64_t j = 0;
        for (; j + 16 <= gp; j += 16) {  // 16 bytes from a multiple of 16: one chunk (QRow)
          const uint8_t* qb = qrow.at(g * gp + j);
          for (int u = 0; u < 16; u++) {
            const uint32_t b = qb[u];
            l[u] += xe[j + u] * float(b & 15u) + xo[j + u] * float(b >> 4);
          }
        }
        float d = 0.f;
        for (int u = 0; u < 16; u++) d += l[u];
        for (; j < gp; j++) {
          const uint32_t b = *qrow.at(g * gp + j);
          d += xe[j] * float(b & 15u) + xo[j] * float(b >> 4);
        }
        float t = s * (d - z * a.xs[m * G + g]);
        if (!std::isfinite(t)) t = exact_group_eo(xe, xo, qrow, g * gp, gp, s, z);
        acc[m] += t;
      }
    }
    for (int64_t m = 0; m < a.M; m++) {
      float v = acc[m];
      if (a.bias) v += load_as_f32(a.bias, n, a.bdt);
      store_from_f32(a.y, m * a.N + n, a.ydt, v);
    }
  }
}

void small_rows_generic(const SmallArgs& a, int64_t n0, int64_t n1) { small_rows(a, n0, n1); }
#if defined(__x86_64__) && defined(__GNUC__)
// ---- AVX-512 small-M path: exactly Σ x · w with w = scale · (q − zero), float32 FMA accumulation.
// Codes are taken P nibbles per 32-bit lane (P = 8: 64 packed bytes as they are; P = 4 / 2: 32 / 16 bytes
// zero-extended from 16 / 8 bits), so 16·P consecutive k of a row form one block and nibble t of the 16
// lanes is codes k = 16·P·b + P·i + t (i = lane). vpermps reads only the low 4 bits of each index, so one
// shift puts nibble t in place and the permute maps it through the 16-float table of its (row, group),
// tab[q] = scale · (q − zero), computed the way dequantize computes it: no zero-point fix-up, no
// per-group reduction, and Inf / NaN in x behave exactly as in x · dequant(W)ᵀ. x is laid out to match
// (xl[16·P·b + 16·t + i] = x[16·P·b + P·i + t]) once per call.
#define LLMK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

struct Avx512Args : MatmulArgs {
  const float* xl;  // [M][K] in the block layout above
};

template <int P> LLMK_AVX512 inline __m512i load_codes(const uint8_t* p) {
  if constexpr (P == 8) return _mm512_loadu_si512(p);
  else if constexpr (P == 4) return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  else return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// sz[g] = scale and sz[G + g] = zero point of group g of row n, as float32, for every group.
LLMK_AVX512 inline void row_params(const Avx512Args& a, int64_t n, int64_t G, float* sz) {
  for (int64_t g0 = 0; g0 < G; g0 += 16) {
    const int64_t cnt = std::min<int64_t>(16, G - g0), off = n * G + g0;
    const __mmask16 mk = __mmask16((1u << cnt) - 1u);
    __m512 sv;
    if (a.sdt == 0) sv = _mm512_maskz_loadu_ps(mk, static_cast<const float*>(a.scales) + off);
    else {
      const __m256i h = _mm256_maskz_loadu_epi16(mk, static_cast<const uint16_t*>(a.scales) + off);
      sv = a.sdt == 1 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    _mm512_mask_storeu_ps(sz + g0, mk, sv);
    _mm512_mask_storeu_ps(sz + G + g0, mk,
                          a.zeros ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, a.zeros + off)))
                                  : _mm512_set1_ps(8.f));
  }
}

// R weight rows (n .. n+nr-1, nr ≤ R; missing rows repeat the last one and are not stored) × MT activation
// rows (m0 ..): each converted weight vector feeds MT FMAs, each x vector R. MT = 1 keeps two accumulators
// per row so that enough FMA chains are in flight. Each group's table, tab[q] = scale · (q − zero), is
// computed as dequantize computes it. sz: scratch of 2·R·G floats. The loop runs at about
// 0.75 cycle per 16 codes, so it is written for GCC to keep everything in registers: nothing is stored in
// it, codes and x are pinned to registers (else GCC folds a load into every shift), and acc is indexed
// by compile-time constants only.
template <int P, int R, int MT>
LLMK_AVX512 void rows_avx512(const Avx512Args& a, int64_t n, int nr, int64_t m0, float* sz) {
  constexpr int A = MT == 1 ? 2 : 1;
  const int64_t G = a.K / a.group, blocks = a.group / (16 * P), K = a.K;
  const __m512 iota = _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f, 11.f, 12.f, 13.f, 14.f, 15.f);
  QRow qrow[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    const int64_t row = n + std::min(r, nr - 1);
    qrow[r] = a.q.row(row);
    row_params(a, row, G, sz + 2 * r * G);
  }
  __m512 acc[R][MT][A];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
  #pragma GCC unroll 16
    for (int m = 0; m < MT; m++)
#pragma GCC unroll 16
      for (int c = 0; c < A; c++) acc[r][m][c] = _mm512_setzero_ps();
  const float* xm = a.xl + m0 * K;
  for (int64_t g = 0; g < G; g++) {
    // The next R rows' bytes of this group (the next tile's; see int4_avx2_gemv.cpp and QWeight): a prefetch
    // never faults.
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
      for (int64_t o = 0; o < a.group / 2; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(qrow[r].at(g * (a.group / 2) + o) + R * (K / 2)), _MM_HINT_T0);
    __m512 tab[R];
  #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
      tab[r] = _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps(sz[(2 * r + 1) * G + g])), _mm512_set1_ps(sz[2 * r * G + g]));
    for (int64_t b = 0; b < blocks; b++) {
      const int64_t k0 = g * a.group + b * 16 * P;
      __m512i d[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        __m512i v = load_codes<P>(qrow[r].at(k0 / 2));  // 64, 32 or 16 bytes from a multiple of that
        asm("" : "+v"(v));
        d[r] = v;
      }
#pragma GCC unroll 8
      for (int t = 0; t < P; t++) {
        __m512 w[R];
  #pragma GCC unroll 16
        for (int r = 0; r < R; r++)
          w[r] = _mm512_permutexvar_ps(t == 0 ? d[r] : _mm512_srli_epi32(d[r], unsigned(4 * t)), tab[r]);
  #pragma GCC unroll 16
        for (int m = 0; m < MT; m++) {
          __m512 xv = _mm512_loadu_ps(xm + m * K + k0 + 16 * t);
          asm("" : "+v"(xv));
    #pragma GCC unroll 16
          for (int r = 0; r < R; r++) acc[r][m][t % A] = _mm512_fmadd_ps(xv, w[r], acc[r][m][t % A]);
        }
      }
    }
  }
  // Reduced over all R rows first: indexing acc with the run-time nr would keep it in memory.
  float out[R][MT];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
  #pragma GCC unroll 16
    for (int m = 0; m < MT; m++) {
      __m512 v = acc[r][m][0];
#pragma GCC unroll 16
      for (int c = 1; c < A; c++) v = _mm512_add_ps(v, acc[r][m][c]);
      out[r][m] = _mm512_reduce_add_ps(v);
    }
  for (int r = 0; r < nr; r++) {
    const float bv = a.bias ? load_as_f32(a.bias, n + r, a.bdt) : 0.f;
  #pragma GCC unroll 16
    for (int m = 0; m < MT; m++) store_from_f32(a.y, (m0 + m) * a.N + n + r, a.ydt, a.bias ? out[r][m] + bv : out[r][m]);
  }
}

// Rows [n0, n1) in blocks of kRowBlock (their packed codes stay in L2 while every tile of ≤ 4 activation
// rows passes over them).
template <int P> LLMK_AVX512 void block_avx512(const Avx512Args& a, int64_t n0, int64_t n1) {
  constexpr int R = 4;
  constexpr int64_t kRowBlock = 32;
  std::vector<float> sz(size_t(2 * R * (a.K / a.group)));
  for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
    const int64_t ne = std::min(n1, nb + kRowBlock);
    for (int64_t m0 = 0; m0 < a.M;) {
      const int64_t mt = std::min<int64_t>(4, a.M - m0);
      for (int64_t n = nb; n < ne; n += R) {
        const int nr = int(std::min<int64_t>(R, ne - n));
        switch (mt) {
          case 1: rows_avx512<P, R, 1>(a, n, nr, m0, sz.data()); break;
          case 2: rows_avx512<P, R, 2>(a, n, nr, m0, sz.data()); break;
          case 3: rows_avx512<P, R, 3>(a, n, nr, m0, sz.data()); break;
          default: rows_avx512<P, R, 4>(a, n, nr, m0, sz.data()); break;
        }
      }
      m0 += mt;
    }
  }
}

// Kernels picked per call by int4_isa() (LLMK_CPU_INT4_ISA may ask for a lesser one).
bool have_avx512() { return int(int4_isa()) >= int(Int4Isa::Avx512Bw); }
#endif
// Also off x86, where int4_isa() is Generic: the M = 2…64 tile path asks it on every platform.
bool have_avx2() { return int(int4_isa()) >= int(Int4Isa::Avx2); }

}  // namespace

void int4_quantize_check(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric, int sdt) {
  const int64_t G = K / group;
  for (int64_t n = 0; n < N; n++)
    for (int64_t g = 0; g < G; g++) {
      float mn = 0.f, mx = 0.f;
      for (int64_t k = g * group; k < (g + 1) * group; k++) {
        const float v = load_as_f32(w, n * K + k, wdt);
        if (!std::isfinite(v))
          throw Error(ErrCode::Arg, fmt("quant.quantize: w[%lld, %lld] is %s: weights must be finite", (long long)n,
                                        (long long)k, v != v ? "NaN" : v > 0 ? "Infinity" : "-Infinity"));
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
      // The scale as int4_quantize computes it, rounded to its dtype.
      const float s = round_to(sdt, symmetric ? std::max(-mn, mx) / 7.f : (mx - mn) / 15.f);
      if (!std::isfinite(s))
        throw Error(ErrCode::Arg, fmt("quant.quantize: the scale of row %lld, group %lld (max |w| %g) overflows %s; "
                                      "use a wider scaleDtype (float32 or bfloat16)", (long long)n, (long long)g,
                                      double(std::max(-mn, mx)), dtype_name(DType(sdt))));
    }
}

void int4_quantize(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric,
                   uint8_t* qweight, void* scales, int sdt, uint8_t* zeros) {
  const int64_t G = K / group;
  parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t n0, int64_t n1) {
    std::vector<float> buf(static_cast<size_t>(group));
    for (int64_t n = n0; n < n1; n++) {
      uint8_t* qrow = qweight + n * (K / 2);
      for (int64_t g = 0; g < G; g++) {
        const int64_t base = n * K + g * group;
        float mn = 0.f, mx = 0.f, amax = 0.f;
        for (int64_t i = 0; i < group; i++) {
          float v = load_as_f32(w, base + i, wdt);
          buf[size_t(i)] = v;
          mn = std::min(mn, v);
          mx = std::max(mx, v);
          amax = std::max(amax, std::fabs(v));
        }
        float s;
        int zero;
        if (symmetric) {
          s = round_to(sdt, amax / 7.f);
          zero = 8;
        } else {
          s = round_to(sdt, (mx - mn) / 15.f);
          zero = s > 0.f ? int(std::min(15.f, std::max(0.f, std::nearbyint(-mn / s)))) : 8;
          zeros[n * G + g] = uint8_t(zero);
        }
        store_from_f32(scales, n * G + g, sdt, s);
        for (int64_t i = 0; i < group; i++) {
          const float r = s > 0.f ? std::nearbyint(buf[size_t(i)] / s) : 0.f;
          int q = int(std::min(15.f, std::max(0.f, r + float(zero))));
          if (r != r) q = zero;  // NaN input: store the zero point
          const int64_t k = g * group + i;
          uint8_t& byte = qrow[k >> 1];
          if ((k & 1) == 0) byte = uint8_t((byte & 0xF0u) | uint32_t(q));
          else byte = uint8_t((byte & 0x0Fu) | (uint32_t(q) << 4));
        }
      }
    }
  });
}

void int4_dequantize(const uint8_t* qweight, const void* scales, int sdt, const uint8_t* zeros,
                     int64_t N, int64_t K, int64_t group, void* out, int odt) {
  const int64_t G = K / group;
  parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* qrow = qweight + n * (K / 2);
      for (int64_t g = 0; g < G; g++) {
        const float s = load_as_f32(scales, n * G + g, sdt);
        const float z = zeros ? float(zeros[n * G + g]) : 8.f;
        for (int64_t k = g * group; k < (g + 1) * group; k++)
          store_from_f32(out, n * K + k, odt, s * (float(nib(qrow, k)) - z));
      }
    }
  });
}

bool int4_matmul_in_row_blocks(Int4MatmulFn fn, const void* x, int xdt, const uint8_t* qweight, const void* scales,
                               int sdt, const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y,
                               int ydt, int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay) {
  constexpr int64_t kMChunk = 256;
  if (M <= kMChunk) return false;
  const int64_t xe = int64_t(dtype_size(DType(xdt))), ye = int64_t(dtype_size(DType(ydt)));
  for (int64_t m0 = 0; m0 < M; m0 += kMChunk)
    fn(static_cast<const char*>(x) + m0 * K * xe, xdt, qweight, scales, sdt, zeros, bias, bdt, perm,
       static_cast<char*>(y) + m0 * N * ye, ydt, std::min(kMChunk, M - m0), N, K, group, lay);
  return true;
}

void int4_matmul(const void* x, int xdt, const uint8_t* qweight, const void* scales, int sdt,
                 const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y, int ydt,
                 int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay) {
  if (M <= 0 || N <= 0) return;
  if (int4_matmul_in_row_blocks(&int4_matmul, x, xdt, qweight, scales, sdt, zeros, bias, bdt, perm, y, ydt, M, N, K, group,
                                lay))
    return;
  const QWeight qw{qweight, K / 2, lay};
  const int64_t G = K / group;
  // Activations as float32 (permuted for act-order) and their per-group sums: the zero point is
  // applied once per group as scale * (Σ x·q − zero · Σ x).
  if (perm) check_perm(perm, K, "quant.matmul");
#if defined(__x86_64__) && defined(__GNUC__)
  if (M <= kTileM && group % 32 == 0 && have_avx512()) {
    const int P = group % 128 == 0 ? 8 : group % 64 == 0 ? 4 : 2;
    const int64_t B = 16 * P;
    std::vector<float> xl(size_t(M * K));
    parallel_for(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(K, 1)), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++) {
        float* out = xl.data() + m * K;
        for (int64_t k0 = 0; k0 < K; k0 += B)
          for (int t = 0; t < P; t++)
            for (int i = 0; i < 16; i++) {
              const int64_t kk = k0 + P * i + t;
              *out++ = load_as_f32(x, m * K + (perm ? perm[kk] : kk), xdt);
            }
      }
    });
    const Avx512Args a{{qw, scales, sdt, zeros, bias, bdt, y, ydt, M, N, K, group}, xl.data()};
    parallel_for(N, std::max<int64_t>(16, 65536 / std::max<int64_t>(K * M, 1)), [&](int64_t n0, int64_t n1) {
      if (P == 8) block_avx512<8>(a, n0, n1);
      else if (P == 4) block_avx512<4>(a, n0, n1);
      else block_avx512<2>(a, n0, n1);
    });
    return;
  }
#endif
  std::vector<float> xf(size_t(M * K)), xs(size_t(M * G));
  parallel_for(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(K, 1)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      float* xr = xf.data() + m * K;
      for (int64_t k = 0; k < K; k++) xr[k] = load_as_f32(x, m * K + (perm ? perm[k] : k), xdt);
      for (int64_t g = 0; g < G; g++) {
        double s = 0;
        for (int64_t k = g * group; k < (g + 1) * group; k++) s += xr[k];
        xs[size_t(m * G + g)] = float(s);
      }
    }
  });

  if (M == 1 && group % 16 == 0 && have_avx2()) {
    std::vector<float> buf(size_t(K + 16));
    float* xb = int4_aligned64(buf);
    int4_gemv_avx2_pack_x(xf.data(), K, xb);
    const Int4GemvArgs a{{qw, scales, sdt, zeros, bias, bdt, y, ydt, M, N, K, group}, xf.data(), xb, xs.data()};
    parallel_for(N, std::max<int64_t>(16, 32768 / std::max<int64_t>(K, 1)),
                 [&](int64_t n0, int64_t n1) { int4_gemv_avx2(a, n0, n1); });
    return;
  }
  if (M >= 2 && M <= kTileM && group % 16 == 0 && have_avx2()) {
    const float* xt = nullptr;
    const std::vector<float> buf = int4_avx2_pack_x(xf.data(), M, K, &xt);
    const Int4Avx2Args a{{qw, scales, sdt, zeros, bias, bdt, y, ydt, M, N, K, group}, xt};
    parallel_for(N, std::max<int64_t>(16, 65536 / std::max<int64_t>(K * M, 1)),
                 [&](int64_t n0, int64_t n1) { int4_rows_avx2(a, n0, n1); });
    return;
  }
  if (M <= kSmallM) {
    std::vector<float> xeo(size_t(M * K));
    deinterleave(xf, M, K, xeo.data());
    const SmallArgs a{{qw, scales, sdt, zeros, bias, bdt, y, ydt, M, N, K, group}, xeo.data(), xs.data()};
    parallel_for(N, std::max<int64_t>(16, 32768 / std::max<int64_t>(K * M, 1)),
                 [&](int64_t n0, int64_t n1) { small_rows_generic(a, n0, n1); });
    return;
  }

  constexpr int64_t NT = 4;    // weight rows per tile
  constexpr int64_t MB = 16;   // activation rows per block
  constexpr int64_t CH = 128;  // k per unpacked chunk
  const int64_t ntiles = (N + NT - 1) / NT;
  const int64_t work_per_tile = M * K * NT;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(work_per_tile, 1));
  parallel_for(ntiles, grain, [&](int64_t t0, int64_t t1) {
    alignas(64) float q[NT][CH];
    float acc[MB][NT], gacc[MB][NT];
    for (int64_t t = t0; t < t1; t++) {
      const int64_t nb = t * NT, nr = std::min(NT, N - nb);
      for (int64_t mb = 0; mb < M; mb += MB) {
        const int64_t mr = std::min(MB, M - mb);
        for (int64_t i = 0; i < MB; i++)
          for (int64_t r = 0; r < NT; r++) acc[i][r] = 0.f;
        for (int64_t g = 0; g < G; g++) {
          for (int64_t i = 0; i < MB; i++)
            for (int64_t r = 0; r < NT; r++) gacc[i][r] = 0.f;
          for (int64_t k0 = g * group; k0 < (g + 1) * group; k0 += CH) {
            const int64_t len = std::min(CH, (g + 1) * group - k0);
            // len ≤ 128 codes from k0, a multiple of len or of 128: one chunk (QRow)
            for (int64_t r = 0; r < nr; r++) unpack(qw.row(nb + r).at(k0 / 2), len, q[r]);
            for (int64_t i = 0; i < mr; i++) {
              const float* xr = xf.data() + (mb + i) * K + k0;
              for (int64_t r = 0; r < nr; r++) gacc[i][r] += dot(xr, q[r], len);
            }
          }
          for (int64_t r = 0; r < nr; r++) {
            const int64_t n = nb + r;
            const float s = load_as_f32(scales, n * G + g, sdt);
            const float z = zeros ? float(zeros[n * G + g]) : 8.f;
            for (int64_t i = 0; i < mr; i++) {
              float t = s * (gacc[i][r] - z * xs[size_t((mb + i) * G + g)]);
              if (!std::isfinite(t))
                t = exact_group_rm(xf.data() + (mb + i) * K, qw.row(n), g * group, (g + 1) * group, s, z);
              acc[i][r] += t;
            }
          }
        }
        for (int64_t i = 0; i < mr; i++)
          for (int64_t r = 0; r < nr; r++) {
            const int64_t n = nb + r;
            float v = acc[i][r];
            if (bias) v += load_as_f32(bias, n, bdt);
            store_from_f32(y, (mb + i) * N + n, ydt, v);
          }
      }
    }
  });
}

void check_perm(const int32_t* perm, int64_t K, const char* op) {
  for (int64_t k = 0; k < K; k++)
    if (perm[k] < 0 || perm[k] >= K)
      throw Error(ErrCode::Index, fmt("%s: permutation entry %lld at %lld is outside [0, %lld)", op, (long long)perm[k],
                                      (long long)k, (long long)K));
}

void permute_cols(const void* x, const int32_t* perm, void* out, int64_t M, int64_t K, int64_t esize) {
  check_perm(perm, K, "quant");
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(out);
  parallel_for(M, std::max<int64_t>(1, 8192 / std::max<int64_t>(K, 1)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++)
      for (int64_t k = 0; k < K; k++)
        std::memcpy(dst + (m * K + k) * esize, src + (m * K + perm[k]) * esize, size_t(esize));
  });
}

void int4_to_quads(const uint8_t* canonical, int64_t N, int64_t K, uint8_t* quads) {
  const QWeight qw{quads, K / 2, {true, 0}};
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++)
      for (int64_t o = 0; o < K / 2; o += kQuadChunk)
        std::memcpy(const_cast<uint8_t*>(qw.row(n).at(o)), canonical + n * (K / 2) + o, size_t(kQuadChunk));
  });
}

void int4_from_quads(const uint8_t* quads, int64_t N, int64_t K, uint8_t* canonical) {
  const QWeight qw{quads, K / 2, {true, 0}};
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++)
      for (int64_t o = 0; o < K / 2; o += kQuadChunk) std::memcpy(canonical + n * (K / 2) + o, qw.row(n).at(o), size_t(kQuadChunk));
  });
}

void int4_pack_prepared(const uint8_t* qweight, int64_t N, int64_t K, uint8_t* out) {
  const int64_t KB = (K + 63) / 64, NB = N / 16;
  parallel_for(NB, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t nb = b0; nb < b1; nb++)
      for (int64_t kb = 0; kb < KB; kb++) {
        uint8_t* blk = out + (nb * KB + kb) * 512;
        for (int lane = 0; lane < 32; lane++) {
          const int g = lane >> 2, t = lane & 3;
          for (int kc = 0; kc < 4; kc++) {
            uint32_t word = 0;
            for (int slot = 0; slot < 8; slot++) {
              const int64_t row = nb * 16 + g + ((slot & 2) ? 8 : 0);
              const int64_t k = kb * 64 + kc * 16 + 2 * t + ((slot & 1) ? 8 : 0) + ((slot & 4) ? 1 : 0);
              const uint32_t v = k < K ? uint32_t(nib(qweight + row * (K / 2), k)) : 0u;
              word |= v << (4 * slot);
            }
            uint8_t* wp = blk + (lane * 4 + kc) * 4;
            wp[0] = uint8_t(word); wp[1] = uint8_t(word >> 8); wp[2] = uint8_t(word >> 16); wp[3] = uint8_t(word >> 24);
          }
        }
      }
  });
}

void int4_unpack_prepared(const uint8_t* packed, int64_t N, int64_t K, uint8_t* qweight) {
  const int64_t KB = (K + 63) / 64;
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int64_t nb = n / 16, r = n % 16, g = r % 8;
      for (int64_t k = 0; k < K; k++) {
        const int64_t kb = k / 64, kk = k % 64, kc = kk / 16, j = kk % 16;
        const int64_t t = (j % 8) / 2;
        const int slot = int((r >= 8 ? 2 : 0) + (j >= 8 ? 1 : 0) + ((j & 1) ? 4 : 0));
        const int64_t lane = g * 4 + t;
        const uint8_t* wp = packed + (nb * KB + kb) * 512 + (lane * 4 + kc) * 4;
        const uint32_t word = uint32_t(wp[0]) | uint32_t(wp[1]) << 8 | uint32_t(wp[2]) << 16 | uint32_t(wp[3]) << 24;
        const uint32_t v = (word >> (4 * slot)) & 15u;
        uint8_t& byte = qweight[n * (K / 2) + k / 2];
        if ((k & 1) == 0) byte = uint8_t((byte & 0xF0u) | v);
        else byte = uint8_t((byte & 0x0Fu) | (v << 4));
      }
    }
  });
}

void transpose_bytes(const void* in, int64_t R, int64_t C, int64_t esize, void* out) {
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  parallel_for(R, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t c = 0; c < C; c++) std::memcpy(dst + (c * R + r) * esize, src + (r * C + c) * esize, size_t(esize));
  });
}

}  // namespace llmk::cpu
