// The int8 mode's activation quantisation (int4_int8.h, QuantX): per row and block of BA k, sa = amax / 127
// and xq = clamp(round(x · (127 / amax)), ±127) with round-to-nearest-even, stored in the chunk layout of
// the kernel (CH/2 even k, then CH/2 odd k), and Σ xq. The SIMD versions compute the same values: the same
// float product x · inv, rounded by vcvtps2dq (nearest even, as the scalar 1.5·2²³ trick), and amax as the
// largest |x| bit pattern (integer max: equal to the float max for finite values; above 0x7F800000 = Inf
// or NaN, i.e. a non-finite block).
#include <algorithm>
#include <cmath>
#include <cstring>
#include "simd_x86.h"

#include "../core/dtype.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "int4_int8.h"
#include "int4_isa.h"

namespace llmk::cpu::int8mode {
namespace {

constexpr uint32_t kInfBits = 0x7F800000u;

// sa, the reciprocal factor and the bad flag of one block from its largest |x| bit pattern.
inline float block_scale(uint32_t amax_bits, QuantX& x, int64_t m, int64_t b) {
  const bool finite = amax_bits < kInfBits;
  float amax;
  std::memcpy(&amax, &amax_bits, sizeof amax);
  x.sa[size_t(m * x.NB + b)] = finite ? amax / 127.f : NAN;
  if (!finite) x.bad[size_t(m)] = 1;
  return finite && amax > 0.f ? 127.f / amax : 0.f;  // 0 for non-finite blocks: xq = 0 there
}

// A block of zeros, Inf or NaN: xq = 0, Σ = 0 (a non-finite block is recomputed with the float math).
inline void zero_block(int8_t* q, int64_t BA, QuantX& x, int64_t m, int64_t b) {
  std::memset(q, 0, size_t(BA));
  x.sum[size_t(m * x.NB + b)] = 0;
}

inline uint32_t abs_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u & 0x7FFFFFFFu;
}

// One block (BA floats from xr) into q (chunk layout), portable.
void block_generic(const float* xr, int64_t BA, int64_t CH, int8_t* q, QuantX& x, int64_t m, int64_t b) {
  uint32_t mb = 0;
  for (int64_t k = 0; k < BA; k++) mb = std::max(mb, abs_bits(xr[k]));
  const float inv = block_scale(mb, x, m, b);
  if (inv == 0.f) return zero_block(q, BA, x, m, b);
  // Round to nearest even by adding and subtracting 1.5·2^23 (= nearbyint for |v| ≤ 127, no libm call).
  const auto rnd = [inv](float v) { return int(std::min(127.f, std::max(-127.f, (v * inv + 12582912.f) - 12582912.f))); };
  int32_t sum = 0;
  for (int64_t c = 0; c < BA; c += CH)
    for (int64_t j = 0; j < CH / 2; j++) {
      const int e = rnd(xr[c + 2 * j]), o = rnd(xr[c + 2 * j + 1]);
      q[c + j] = int8_t(e);
      q[c + CH / 2 + j] = int8_t(o);
      sum += e + o;
    }
  x.sum[size_t(m * x.NB + b)] = sum;
}

#if defined(LLMK_CPU_X86)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
// CH = 128, BA a multiple of 128.
void block_avx512(const float* xr, int64_t BA, int8_t* q, QuantX& x, int64_t m, int64_t b) {
  __m512i mb = _mm512_setzero_si512();
  const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
  for (int64_t k = 0; k < BA; k += 16) mb = _mm512_max_epu32(mb, _mm512_and_si512(_mm512_loadu_si512(xr + k), absmask));
  const float s = block_scale(_mm512_reduce_max_epu32(mb), x, m, b);
  if (s == 0.f) return zero_block(q, BA, x, m, b);
  const __m512 inv = _mm512_set1_ps(s);
  const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  __m512i sum = _mm512_setzero_si512();
  for (int64_t c = 0; c < BA; c += 128)
    for (int64_t j = 0; j < 64; j += 16) {  // x[c + 2j .. c + 2j + 31]
      const auto rq = [&](const float* p) {
        return _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv))));
      };
      const __m512i a = rq(xr + c + 2 * j), bb = rq(xr + c + 2 * j + 16);
      sum = _mm512_add_epi32(sum, _mm512_add_epi32(a, bb));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c + j), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(a, ev, bb)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c + 64 + j), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(a, od, bb)));
    }
  x.sum[size_t(m * x.NB + b)] = _mm512_reduce_add_epi32(sum);
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
// BA a multiple of CH (32 or 64): amax and the rounding in vector code, the chunk layout by a scalar pass.
void block_avx2(const float* xr, int64_t BA, int64_t CH, int8_t* q, QuantX& x, int64_t m, int64_t b) {
  __m256i mb = _mm256_setzero_si256();
  const __m256i absmask = _mm256_set1_epi32(0x7FFFFFFF);
  for (int64_t k = 0; k < BA; k += 8)
    mb = _mm256_max_epu32(mb, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + k)), absmask));
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), mb);
  const float s = block_scale(*std::max_element(lanes, lanes + 8), x, m, b);
  if (s == 0.f) return zero_block(q, BA, x, m, b);
  const __m256 inv = _mm256_set1_ps(s);
  const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
  alignas(32) int32_t t[256];
  __m256i sum = _mm256_setzero_si256();
  for (int64_t k = 0; k < BA; k += 8) {
    const __m256i v = _mm256_max_epi32(nlim, _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + k), inv))));
    sum = _mm256_add_epi32(sum, v);
    _mm256_store_si256(reinterpret_cast<__m256i*>(t + k), v);
  }
  for (int64_t c = 0; c < BA; c += CH)
    for (int64_t j = 0; j < CH / 2; j++) {
      q[c + j] = int8_t(t[c + 2 * j]);
      q[c + CH / 2 + j] = int8_t(t[c + 2 * j + 1]);
    }
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), sum);
  x.sum[size_t(m * x.NB + b)] = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#pragma GCC pop_options
#endif

}  // namespace

void quantise_x(const void* xs, int xdt, const int32_t* perm, int64_t M, int64_t K, Int4Isa isa, QuantX& x) {
  const bool direct = xdt == int(DType::F32) && !perm;  // x itself is the float32 copy
  if (!direct) x.xf.resize(size_t(M * K));
  x.xr = direct ? static_cast<const float*>(xs) : x.xf.data();
  parallel_for(M, std::max<int64_t>(1, 4096 / K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      if (!direct) {
        float* xr = x.xf.data() + m * K;
        for (int64_t k = 0; k < K; k++) xr[k] = load_as_f32(xs, m * K + (perm ? perm[k] : k), xdt);
      }
      for (int64_t b = 0; b < x.NB; b++) {
        const float* xr = x.xr + m * K + b * x.BA;
        int8_t* q = x.q + m * K + b * x.BA;
#if defined(LLMK_CPU_X86)
        if (x.CH == 128 && int(isa) >= int(Int4Isa::Avx512Bw)) { block_avx512(xr, x.BA, q, x, m, b); continue; }
        if (x.CH % 32 == 0 && x.BA <= 256 && int(isa) >= int(Int4Isa::Avx2)) { block_avx2(xr, x.BA, x.CH, q, x, m, b); continue; }
#else
        (void)isa;
#endif
        block_generic(xr, x.BA, x.CH, q, x, m, b);
      }
    }
  });
}

}  // namespace llmk::cpu::int8mode
