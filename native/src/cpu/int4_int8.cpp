// INT4 weights × int8 activations (quant.matmul compute: 'int8'; MatMulNBits accuracy_level 4 semantics).
// Per activation block of BA k (see int4.h): the integer dot Σ xq·q is exact (|Σ| ≤ 15·127·256 < 2^24, so it
// also converts to float exactly), then scaled by sa·scale and accumulated in float32; the zero point's term
// −zero·Σ xq (exact) is scaled by the same factor and summed apart (every kernel, portable and SIMD): the
// README's error bound, float rounding of block terms of magnitude ≤ (15 + zero)·Σ|xq|·sa·|scale| only. Keeping
// the zero point out of the integer sum (as ONNX Runtime does) spares the SIMD tiles a scalar insert per block
// and activation row (a standalone loop of this file's kernel, 1 thread, AVX-512 VNNI, 4096², g = 128:
// 1.19x at M = 16, 1.09x at M = 1). The tiles inline their factor set-up (a call spilled every accumulator
// around it: 1.05x at M = 16).
// The SIMD tiles read the packed rows in place (R rows at a time, canonical or the prepared quads of int4.h,
// through QRow; no repacked copy per call): a tile's per-block work is its dot products plus one FMA, with
// the float factor and the zero-point term made by
// the tile 16 blocks at a time (factors(); a separate set-up pass per row tile cost 1.1-1.2x at M = 1: its
// scale loads stalled instead of overlapping the dot products), or by the portable set-up (tile_params)
// when a group spans several blocks. The first pass over a row tile prefetches the codes and scales of a
// later one (the rows are short streams, 2 KiB at K = 4096, that the hardware prefetcher picks up late),
// unless the rows are quads and M = 1 (one stream: the hardware prefetchers do better alone).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "simd_x86.h"

#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "int4.h"
#include "int4_int8.h"
#include "int4_isa.h"

namespace llmk::cpu {
namespace int8mode {
namespace {

inline void weight_params(const Args& a, int64_t n, int64_t g, float& sw, int& z) {
  const int64_t G = a.K / a.group;
  sw = load_as_f32(a.scales, n * G + g, a.sdt);
  z = a.zeros ? int(a.zeros[n * G + g]) : 8;
}

// Output (n, m) by the definition, any ISA's layout: the portable kernel, and the fix-up of rows with
// non-finite blocks (computed term by term as Σ x·w there, as the float mode does).
float dot_generic(const Args& a, int64_t n, int64_t m) {
  const QuantX& x = *a.x;
  const int64_t K = a.K, bpg = a.group / x.BA, h = x.CH / 2;
  const QRow qrow = a.q.row(n);
  float acc = 0.f, zacc = 0.f;
  for (int64_t b = 0; b < x.NB; b++) {
    const int64_t k0 = b * x.BA, mb = m * x.NB + b;
    float sw;
    int z;
    weight_params(a, n, b / bpg, sw, z);
    const float sa = x.sa[size_t(mb)];
    if (std::isfinite(sa)) {
      int32_t I = 0;
      for (int64_t c = k0; c < k0 + x.BA; c += x.CH) {
        const int8_t* xq = x.q + m * K + c;
        const uint8_t* qc = qrow.at(c / 2);  // CH / 2 ≤ 64 bytes from a multiple of that: one chunk
        for (int64_t j = 0; j < h; j++) {
          const uint32_t byte = qc[j];
          I += int32_t(byte & 15u) * xq[j] + int32_t(byte >> 4) * xq[h + j];
        }
      }
      const float cs = sa * sw;
      acc += cs * float(I);
      zacc += cs * float(-z * x.sum[size_t(mb)]);
    } else {
      const float* xr = x.xr + m * K;
      float t = 0.f;
      for (int64_t k = k0; k < k0 + x.BA; k++)
        t += xr[k] * (sw * (float((*qrow.at(k >> 1) >> ((k & 1) * 4)) & 15u) - float(z)));
      acc += t;
    }
  }
  return acc + zacc;
}

// The portable set-up of the SIMD tiles' block factors (the x86 tiles below and in int4_int8_avx512.h).
// p.sw and p.z for rows n.. (nr valid; missing ones repeat the last), R of them. Runs once per row tile:
// the dtype dispatch is hoisted out of the loops.
void row_params(const Args& a, int64_t n, int nr, int R, RowParams& p) {
  const int64_t NB = a.x->NB, G = a.K / a.group, bpg = a.group / a.x->BA;
  p.sw.resize(size_t(R * NB));
  p.z.resize(size_t(R * NB));
  for (int r = 0; r < R; r++) {
    const int64_t off = (n + std::min(r, nr - 1)) * G;
    float* sw = p.sw.data() + r * NB;
    int32_t* z = p.z.data() + r * NB;
    if (a.sdt == int(DType::F32) && bpg == 1) std::memcpy(sw, static_cast<const float*>(a.scales) + off, size_t(G) * sizeof(float));
    else if (a.sdt == int(DType::F32))
      for (int64_t b = 0; b < NB; b++) sw[b] = static_cast<const float*>(a.scales)[off + b / bpg];
    else
      for (int64_t b = 0; b < NB; b++) sw[b] = load_as_f32(a.scales, off + b / bpg, a.sdt);
    for (int64_t b = 0; b < NB; b++) z[b] = a.zeros ? int32_t(a.zeros[off + b / bpg]) : 8;
  }
}

// p.cs and p.zc (int4_int8.h) of R weight rows (p.sw, p.z) × all M activation rows: the portable set-up,
// for groups of several activation blocks (the SIMD tiles make the common case's themselves, factors()).
void tile_params(const Args& a, RowParams& p, int R) {
  const QuantX& x = *a.x;
  const int64_t NB = x.NB, M = a.M;
  for (int r = 0; r < R; r++)
    for (int64_t m = 0; m < M; m++) {
      const int64_t i = (r * M + m) * NB;
      for (int64_t b = 0; b < NB; b++) {
        p.cs[size_t(i + b)] = p.sw[size_t(r * NB + b)] * x.sa[size_t(m * NB + b)];
        p.zc[size_t(i + b)] = -p.z[size_t(r * NB + b)] * x.sum[size_t(m * NB + b)];
      }
    }
}

// The portable set-up of a row tile (R rows from n, nr valid) for the SIMD tiles when !a.inl.
void setup_portable(const Args& a, RowParams& p, int R, int64_t n, int nr) {
  p.cs.resize(size_t(R * a.M * a.x->NB));
  p.zc.resize(size_t(R * a.M * a.x->NB));
  row_params(a, n, nr, R, p);
  tile_params(a, p, R);
}

#if defined(LLMK_CPU_X86)  // the SIMD tiles (here and in int4_int8_avx512.h)
// Prefetch distances in row tiles (both in the tiles' first pass): the codes (into L2: prefetched into L1 they
// crowd out the tile's own lines; 1.1x at M = 1 and 16 against L1) and the scales and zero points, far enough
// ahead to cover a memory access at the tiles' pace.
constexpr int64_t kPrefetchTiles = 4, kPrefetchParamTiles = 4;

// Prefetches the scales and zero points of rows n.. (R of them, those below N): read by a later tile.
void prefetch_params(const Args& a, int64_t n, int R) {
  const int64_t G = a.K / a.group, ss = a.sdt == int(DType::F32) ? 4 : 2;
  for (int64_t r = n; r < std::min<int64_t>(n + R, a.N); r++) {
    const char* sp = static_cast<const char*>(a.scales) + r * G * ss;
    for (int64_t o = 0; o < G * ss; o += 64) __builtin_prefetch(sp + o);
    if (a.zeros)
      for (int64_t o = 0; o < G; o += 64) __builtin_prefetch(a.zeros + r * G + o);
  }
}

// Where a tile of R weight rows (n.., nr valid; missing ones repeat the last) × activation rows m0.. reads:
// the weight rows (QRow, all with the same chunk stride), their scales and zero points (offset roff) and the
// quantised x.
template <int R>
struct TilePtrs {
  QRow w[R];
  int64_t roff[R];
  const int8_t* xp;
  TilePtrs(const Args& a, int64_t n, int nr, int64_t m0) : xp(a.x->q + m0 * a.K) {
    for (int r = 0; r < R; r++) {
      const int64_t row = n + std::min(r, nr - 1);
      w[r] = a.q.row(row);
      roff[r] = row * (a.K / a.group);
    }
  }
};

// A tile's block factors for up to 16 consecutive blocks (local b), index r·MT + m: cs = scale · sa and
// zc = −zero · Σxq (int4_int8.h), made by the ISA's factors() (whose vector steps add the zero terms to the
// accumulators themselves and leave zc unset) or, when a group spans several blocks, copied from the
// portable set-up (RowParams, rows × all M).
template <int R, int MT>
struct Factors {
  alignas(64) float cs[R * MT][16];
  alignas(64) int32_t zc[R * MT][16];
  void copy(const Args& a, const RowParams& p, int64_t m0, int64_t b0, int64_t nb) {
    const int64_t NB = a.x->NB;
    for (int r = 0; r < R; r++)
      for (int m = 0; m < MT; m++) {
        const int64_t i = (r * a.M + m0 + m) * NB + b0;
        std::memcpy(cs[r * MT + m], p.cs.data() + i, size_t(nb) * sizeof(float));
        std::memcpy(zc[r * MT + m], p.zc.data() + i, size_t(nb) * sizeof(int32_t));
      }
    clear_from(nb);
  }
  // Lanes nb.. get cs = 0 and zc = 0, so that the zero-point terms (zero_terms) can read all 16.
  void clear_from(int64_t nb) {
    for (int i = 0; i < R * MT; i++)
      for (int64_t j = nb; j < 16; j++) {
        cs[i][j] = 0.f;
        zc[i][j] = 0;
      }
  }
  // Blocks b0 + j.. (j < nb) one at a time: the tail of the AVX2 factors().
  void scalar(const Args& a, const TilePtrs<R>& t, int64_t m0, int64_t b0, int64_t j, int64_t nb) {
    const QuantX& x = *a.x;
    for (; j < nb; j++)
      for (int r = 0; r < R; r++) {
        const int64_t off = t.roff[r] + b0 + j;
        const float sw = load_as_f32(a.scales, off, a.sdt);
        const int32_t z = a.zeros ? int32_t(a.zeros[off]) : 8;
        for (int m = 0; m < MT; m++) {
          const int64_t xm = (m0 + m) * x.NB + b0 + j;
          cs[r * MT + m][j] = sw * x.sa[size_t(xm)];
          zc[r * MT + m][j] = -z * x.sum[size_t(xm)];
        }
      }
    clear_from(nb);
  }
};

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "hsum_avx2.h"

// acc += float(zc) · cs over the block lanes h0.. (a multiple of 8) to 16 of f, as in int4_int8_avx512.h.
template <int R, int MT>
LLMK_ALWAYS_INLINE void zero_terms(const Factors<R, MT>& f, __m256 (&acc)[R][MT], int64_t h0 = 0) {
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++)
      for (int64_t h = h0; h < 16; h += 8)
        acc[r][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(f.zc[r * MT + m] + h))),
                                    _mm256_load_ps(f.cs[r * MT + m] + h), acc[r][m]);
}

// The block factors of a tile for blocks b0.. (nb ≤ 16) and their zero points' terms added to acc, as in
// int4_int8_avx512.h: 8 blocks per step (the scales float32 or bfloat16: F16C is not assumed here; a.inl is
// false for float16 scales), the tail by Factors::scalar and zero_terms.
template <int R, int MT>
LLMK_ALWAYS_INLINE void factors(const Args& a, const RowParams& p, const TilePtrs<R>& t, int64_t m0, int64_t b0, int64_t nb,
                                Factors<R, MT>& f, __m256 (&acc)[R][MT]) {
  const QuantX& x = *a.x;
  if (!a.inl) {
    f.copy(a, p, m0, b0, nb);
    return zero_terms<R, MT>(f, acc);
  }
  int64_t j = 0;
  for (; j + 8 <= nb; j += 8) {
    __m256 sa[MT], sum[MT];
    for (int m = 0; m < MT; m++) {
      const int64_t xm = (m0 + m) * x.NB + b0 + j;
      sa[m] = _mm256_loadu_ps(x.sa.data() + xm);
      sum[m] = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.sum.data() + xm)));
    }
    for (int r = 0; r < R; r++) {
      const int64_t off = t.roff[r] + b0 + j;
      const __m256 sw = a.sdt == int(DType::F32)
          ? _mm256_loadu_ps(static_cast<const float*>(a.scales) + off)
          : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(
                reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(a.scales) + off))), 16));
      const __m256 nz = a.zeros ? _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_cvtepu8_epi32(
                                      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.zeros + off)))))
                                : _mm256_set1_ps(-8.f);
      for (int m = 0; m < MT; m++) {
        const __m256 cs = _mm256_mul_ps(sw, sa[m]);
        _mm256_storeu_ps(f.cs[r * MT + m] + j, cs);
        acc[r][m] = _mm256_fmadd_ps(_mm256_mul_ps(nz, sum[m]), cs, acc[r][m]);
      }
    }
  }
  if (j == 16) return;
  f.scalar(a, t, m0, b0, j, nb);
  zero_terms<R, MT>(f, acc, j);
}

// R weight rows (n.., nr valid; missing ones repeat the last) × MT activation rows (m0..) into
// out[r·M + m0 + m], PF as in int4_int8_avx512.h: each decoded weight vector feeds MT vpmaddubsw pairs, each
// x vector R. CPB chunks of CH k per block. CH = 64: 32 packed bytes per step, low nibbles against the 32 even
// k, high nibbles against the 32 odd k; CH = 32 (BA = 32): 16 bytes, both nibble halves in one register.
// Int16 sums: ≤ 2·3810 per chunk, ≤ 4 chunks per block (BA ≤ 256): no saturation. Block ends as in
// int4_int8_avx512.h: int32 sum · (sa · scale) into acc, the zero point's terms 16 blocks at a time.
template <int CH, int CPB, int R, int MT, bool PF>
void tile(const Args& a, const RowParams& p, int64_t n, int nr, int64_t m0, float* out) {
  const int64_t K = a.K, NB = a.x->NB, M = a.M;
  const TilePtrs<R> t(a, n, nr, m0);
  const int8_t* xp = t.xp;
  if constexpr (PF) prefetch_params(a, n + kPrefetchParamTiles * R, R);
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 acc[R][MT];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) acc[r][m] = _mm256_setzero_ps();
  Factors<R, MT> f;
  int64_t off = 0;  // into every weight row
  for (int64_t b0 = 0; b0 < NB; b0 += 16) {
    const int64_t nb = std::min<int64_t>(16, NB - b0);
    factors<R, MT>(a, p, t, m0, b0, nb, f, acc);
    // One weight row at a time (its decoded chunk feeds all MT activation rows), x loaded where used (from
    // L1): with 16 ymm registers, holding every row's int16 sums and x vectors spilled the accumulators.
    for (int64_t b = 0; b < nb; b++, xp += CH * CPB, off += CH / 2 * CPB) {
      for (int r = 0; r < R; r++) {
        __m256i s[MT];
        for (int m = 0; m < MT; m++) s[m] = _mm256_setzero_si256();
        for (int c = 0; c < CPB; c++) {
          const int64_t o = off + c * (CH / 2);
          const int8_t* xc = xp + c * CH;
          const uint8_t* wp = t.w[r].at(o);  // 32 or 16 bytes from a multiple of that: one chunk
          if constexpr (PF)  // one line of a later row tile per 64 bytes of this one (QWeight: rows 4j apart)
            if (o % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetchTiles * R * (K / 2)), _MM_HINT_T1);
          if constexpr (CH == 64) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp));
            const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            for (int m = 0; m < MT; m++)
              s[m] = _mm256_add_epi16(s[m], _mm256_add_epi16(
                  _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + m * K))),
                  _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + m * K + 32)))));
          } else {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wp));
            const __m256i wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
            for (int m = 0; m < MT; m++)
              s[m] = _mm256_add_epi16(s[m], _mm256_maddubs_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + m * K))));
          }
        }
        for (int m = 0; m < MT; m++) {
          acc[r][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s[m], ones)), _mm256_set1_ps(f.cs[r * MT + m][b]),
                                      acc[r][m]);
        }
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) out[r * M + m0 + m] = hsum(acc[r][m]);
}
#pragma GCC pop_options
}  // namespace avx2

namespace avx512vnni {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")
constexpr bool VNNI = true;
#include "hsum_avx512.h"
#include "int4_int8_avx512.h"
#pragma GCC pop_options
}  // namespace avx512vnni

namespace avx512bw {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
constexpr bool VNNI = false;
#include "hsum_avx512.h"
#include "int4_int8_avx512.h"
#pragma GCC pop_options
}  // namespace avx512bw
#endif

using TileFn = void (*)(const Args&, const RowParams&, int64_t, int, int64_t, float*);

// The kernel's row tile: tiles of R weight rows × up to MT activation rows (tile[mt - 1] takes mt rows;
// first[]: the same, prefetching a later row tile's codes and scales, for the first pass over the rows), after
// the portable set-up of the block factors when a group spans several blocks (Args::inl false).
constexpr int kMaxMT = 4;
struct Kernel {
  int R = 1, MT = 1;
  bool f16 = true;  // the tiles make float16 scales' factors themselves (else the portable set-up does)
  TileFn first[kMaxMT] = {}, tile[kMaxMT] = {};
};

#if defined(LLMK_CPU_X86)
// Fills k.first / k.tile for mt = 1..MT from T<mt, PF>::fn.
template <template <int, bool> class T, int MT>
void fill_tiles(Kernel& k) {
  if constexpr (MT > 1) fill_tiles<T, MT - 1>(k);
  k.first[MT - 1] = T<MT, true>::fn;
  k.tile[MT - 1] = T<MT, false>::fn;
}

template <int R, int CPB, bool V>
struct Avx512Tile {
  template <int MT, bool PF>
  struct T {
    static constexpr TileFn fn = V ? avx512vnni::tile<R, MT, CPB, PF> : avx512bw::tile<R, MT, CPB, PF>;
  };
};

template <int CH, int CPB, int R>
struct Avx2Tile {
  template <int MT, bool PF>
  struct T {
    static constexpr TileFn fn = avx2::tile<CH, CPB, R, MT, PF>;
  };
};

template <int R, int MT, int CPB, bool V>
Kernel avx512_kernel() {
  Kernel k;
  k.R = R;
  k.MT = MT;
  fill_tiles<Avx512Tile<R, CPB, V>::template T, MT>(k);
  return k;
}

template <int CH, int CPB, int R, int MT>
Kernel avx2_kernel() {
  Kernel k;
  k.R = R;
  k.MT = MT;
  k.f16 = false;  // F16C is not assumed with AVX2
  fill_tiles<Avx2Tile<CH, CPB, R>::template T, MT>(k);
  return k;
}

// CH = 64 (BA = 64, 128 or 256: CPB = 1, 2, 4) or 32 (BA = 32). M ≥ 2: 4 weight rows × 2 activation rows
// (1.04x over 2 × 2 at M = 16 since the tile holds one row's sums at a time; 16 ymm registers); M = 1: 4 rows.
template <int CH, int CPB>
Kernel avx2_pick(bool wide) {
  return wide ? avx2_kernel<CH, CPB, 4, 2>() : avx2_kernel<CH, CPB, 4, 1>();
}
#endif

// Kernel for this ISA and block / chunk size; R = 0 means the portable loop. Sets x.CH.
Kernel pick(Int4Isa isa, int64_t M, QuantX& x) {
  Kernel k;
  k.R = 0;
  x.CH = std::min<int64_t>(x.BA, 64);
#if defined(LLMK_CPU_X86)
  const bool wide = M > 1;
  if ((isa == Int4Isa::Avx512Vnni || isa == Int4Isa::Avx512Bw) && x.BA % 128 == 0) {
    x.CH = 128;
    const bool v = isa == Int4Isa::Avx512Vnni, two = x.BA == 256;
    // VNNI, M ≥ 2, BA = 128: 6 weight rows × 2 activation rows (1.03x over 4 × 2 at M = 16; 8 × 1 and 4 × 1
    // 0.8x; on quads the same as 4 × 2). M = 1: 4 rows (8: 0.9x, 3: 0.8x, 2: 0.7x). Measured per call in one
    // process, same weight.
    if (v) return two ? (wide ? avx512_kernel<4, 2, 2, true>() : avx512_kernel<4, 1, 2, true>())
                      : (wide ? avx512_kernel<6, 2, 1, true>() : avx512_kernel<4, 1, 1, true>());
    return two ? (wide ? avx512_kernel<4, 2, 2, false>() : avx512_kernel<4, 1, 2, false>())
               : (wide ? avx512_kernel<4, 2, 1, false>() : avx512_kernel<4, 1, 1, false>());
  }
  if (isa != Int4Isa::Generic && x.BA % 32 == 0) {
    x.CH = x.BA % 64 == 0 ? 64 : 32;
    switch (x.BA) {
      case 32: return avx2_pick<32, 1>(wide);
      case 64: return avx2_pick<64, 1>(wide);
      case 128: return avx2_pick<64, 2>(wide);
      default: return avx2_pick<64, 4>(wide);  // 256
    }
  }
#else
  (void)isa; (void)M;
#endif
  return k;
}

void store(void* y, int ydt, const void* bias, int bdt, int64_t N, int64_t m, int64_t n, float v) {
  if (bias) v += load_as_f32(bias, n, bdt);
  store_from_f32(y, m * N + n, ydt, v);
}

}  // namespace
}  // namespace int8mode

int64_t int4_int8_block(int64_t group) {
  int64_t b = 256;
  while (group % b != 0) b /= 2;
  return b;
}

void int4_matmul_int8(const void* x, int xdt, const uint8_t* qweight, const void* scales, int sdt,
                      const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y, int ydt,
                      int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay) {
  using namespace int8mode;
  if (M <= 0 || N <= 0) return;
  if (int4_matmul_in_row_blocks(&int4_matmul_int8, x, xdt, qweight, scales, sdt, zeros, bias, bdt, perm, y, ydt, M, N, K,
                                group, lay))
    return;
  if (perm) check_perm(perm, K, "quant.matmul");
  QuantX qx;
  qx.BA = int4_int8_block(group);
  qx.NB = K / qx.BA;
  const Int4Isa isa = int4_isa();
  const Kernel kern = pick(isa, M, qx);
  qx.buf.resize(size_t(M * K + 64));
  qx.q = qx.buf.data() + (64 - reinterpret_cast<uintptr_t>(qx.buf.data()) % 64) % 64;
  qx.sa.resize(size_t(M * qx.NB));
  qx.sum.resize(size_t(M * qx.NB));
  qx.bad.assign(size_t(M), 0);
  quantise_x(x, xdt, perm, M, K, isa, qx);
  const Args a{QWeight{qweight, K / 2, lay}, scales, sdt, zeros, M, N, K, group, &qx, group == qx.BA && (kern.f16 || sdt != int(DType::F16))};
  parallel_for(N, std::max<int64_t>(16, 65536 / std::max<int64_t>(K * M, 1)), [&](int64_t n0, int64_t n1) {
    if (kern.R == 0) {
      for (int64_t n = n0; n < n1; n++)
        for (int64_t m = 0; m < M; m++) store(y, ydt, bias, bdt, N, m, n, dot_generic(a, n, m));
      return;
    }
    RowParams p;
    std::vector<float> out(size_t(kern.R * M));
    const bool plain = ydt == int(DType::F32) && !bias;
    // The first pass over a row tile prefetches later ones, except through quads in one or two passes: one
    // sequential stream that the hardware prefetchers follow (M = 1: 1.2x faster without; M = 2: 1.08-1.10x
    // AVX-512 VNNI, 1.035x AVX2; M = 4: 1.03-1.08x AVX-512; canonical rows and M ≥ 8 gain from it).
    const TileFn* first = lay.quads && M <= 2 * kern.MT ? kern.tile : kern.first;
    for (int64_t n = n0; n < n1; n += kern.R) {
      const int nr = int(std::min<int64_t>(kern.R, n1 - n));
      if (!a.inl) setup_portable(a, p, kern.R, n, nr);
      for (int64_t m0 = 0; m0 < M; m0 += kern.MT) {
        const int mt = int(std::min<int64_t>(kern.MT, M - m0));
        (m0 == 0 ? first : kern.tile)[mt - 1](a, p, n, nr, m0, out.data());
      }
      // Rows of x with non-finite blocks are stored too and overwritten below (no per-element test here).
      if (plain)
        for (int r = 0; r < nr; r++)
          for (int64_t m = 0; m < M; m++) static_cast<float*>(y)[m * N + n + r] = out[size_t(r * M + m)];
      else
        for (int r = 0; r < nr; r++)
          for (int64_t m = 0; m < M; m++) store(y, ydt, bias, bdt, N, m, n + r, out[size_t(r * M + m)]);
    }
    for (int64_t m = 0; m < M; m++)
      if (qx.bad[size_t(m)])
        for (int64_t n = n0; n < n1; n++) store(y, ydt, bias, bdt, N, m, n, dot_generic(a, n, m));
  });
}

}  // namespace llmk::cpu
