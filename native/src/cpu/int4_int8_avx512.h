// AVX-512 tile of the int8 mode (int4_int8.cpp), included once with VNNI = true (vpdpbusd) and once with
// VNNI = false (vpmaddubsw + vpmaddwd, AVX512BW only), each inside its own `#pragma GCC target` region and
// namespace. No include guard on purpose. Chunks of CH = 128 k: 64 packed bytes, low nibbles against the
// 64 even k, high nibbles against the 64 odd k. Int16 sums cannot saturate: a byte pair adds at most
// 2·15·127 = 3810 per vpmaddubsw lane, two per chunk, at most two chunks per block (BA ≤ 256).
// Per block: acc += float(Σ xq·code) · (sa · scale), the loop holding nothing but the codes, the dot products
// and one FMA per block; the zero point's term (−zero·Σxq) · (sa · scale) is added 16 blocks at a time, by
// factors() as it makes the blocks' float factors. Needs from the includer: Args, QuantX, RowParams, VNNI,
// Factors, prefetch_params, TilePtrs.

// acc += float(zc) · cs, lane j holding block j of f (lanes past the step's blocks hold cs = 0): the zero
// points' terms of 16 blocks, into the lanes that the end of the tile sums anyway.
template <int R, int MT>
LLMK_ALWAYS_INLINE void zero_terms(const Factors<R, MT>& f, __m512 (&acc)[R][MT]) {
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++)
      acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(f.zc[r * MT + m])),
                                  _mm512_load_ps(f.cs[r * MT + m]), acc[r][m]);
}

// The block factors f.cs of a tile (int4_int8.h, Factors) for blocks b0.. (nb ≤ 16 of them), and the zero
// points' terms of those blocks added to acc (lane j: block j, summed at the end of the tile): 16 blocks per
// step when each block has its own group (a.inl), else copied from the portable set-up's p.cs / p.zc. The zero
// term (−zero) · Σxq is formed in float32, exact (|·| ≤ 255 · 127 · 256 < 2^24), and goes straight into acc:
// 1.04-1.07x at M = 16 (AVX-512 VNNI, 4096², g = 128) against storing it as int32 and converting it back in a
// second pass.
template <int R, int MT>
LLMK_ALWAYS_INLINE void factors(const Args& a, const RowParams& p, const TilePtrs<R>& t, int64_t m0, int64_t b0, int64_t nb,
                                Factors<R, MT>& f, __m512 (&acc)[R][MT]) {
  const QuantX& x = *a.x;
  const int64_t NB = x.NB;
  if (!a.inl) {
    f.copy(a, p, m0, b0, nb);
    return zero_terms<R, MT>(f, acc);
  }
  // Unmasked loads for whole vectors (the common case), masked for the tail (lanes past nb: sa = Σxq = 0).
  const bool whole = nb == 16;
  const __mmask16 mk = whole ? __mmask16(0xFFFF) : __mmask16((1u << nb) - 1u);
  __m512 sa[MT], sum[MT];
  for (int m = 0; m < MT; m++) {
    const int64_t xm = (m0 + m) * NB + b0;
    sa[m] = whole ? _mm512_loadu_ps(x.sa.data() + xm) : _mm512_maskz_loadu_ps(mk, x.sa.data() + xm);
    sum[m] = _mm512_cvtepi32_ps(whole ? _mm512_loadu_si512(x.sum.data() + xm) : _mm512_maskz_loadu_epi32(mk, x.sum.data() + xm));
  }
  for (int r = 0; r < R; r++) {
    const int64_t off = t.roff[r] + b0;
    __m512 sw;
    if (a.sdt == int(DType::F32)) {
      const float* sp = static_cast<const float*>(a.scales) + off;
      sw = whole ? _mm512_loadu_ps(sp) : _mm512_maskz_loadu_ps(mk, sp);
    } else {
      const uint16_t* sp = static_cast<const uint16_t*>(a.scales) + off;
      const __m256i h = whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp)) : _mm256_maskz_loadu_epi16(mk, sp);
      sw = a.sdt == int(DType::F16) ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    const __m512 nz = a.zeros ? _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepu8_epi32(
                                    whole ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.zeros + off))
                                          : _mm_maskz_loadu_epi8(mk, a.zeros + off))))
                              : _mm512_set1_ps(-8.f);
    for (int m = 0; m < MT; m++) {
      const __m512 cs = _mm512_mul_ps(sw, sa[m]);
      _mm512_store_ps(f.cs[r * MT + m], cs);
      acc[r][m] = _mm512_fmadd_ps(_mm512_mul_ps(nz, sum[m]), cs, acc[r][m]);
    }
  }
}

// A zero vector made by a zero idiom of its own (no execution unit): with _mm512_setzero_si512 GCC copies one
// zero register into every block sum, a vector move per block and sum. AVX-512 VNNI on Zen 5, 4096², g = 128,
// one process: 1.02-1.04x at M = 1, 2 and 16, 1.09x at M = 4 in four runs; no change in a slower spell of the VM.
LLMK_ALWAYS_INLINE __m512i fresh_zero() {
  __m512i z;
  asm("vpxord %0, %0, %0" : "=v"(z));
  return z;
}

// R weight rows (n.., nr valid; missing ones repeat the last) × MT activation rows (m0..) into
// out[r·M + m0 + m]. PF (the first pass over these rows): prefetch a later row tile's codes into L2, one line per
// row per chunk, so that they arrive while this tile computes (the rows are short streams, 2 KiB at K = 4096,
// that the hardware prefetcher picks up late), and its scales and zero points. The block factors are made
// 16 blocks at a time inside the tile (factors()), so that their loads overlap the dot products.
template <int R, int MT, int CPB, bool PF>
void tile(const Args& a, const RowParams& p, int64_t n, int nr, int64_t m0, float* out) {
  const int64_t K = a.K, NB = a.x->NB, M = a.M;
  const TilePtrs<R> t(a, n, nr, m0);
  const int8_t* xp = t.xp;
  if constexpr (PF) prefetch_params(a, n + kPrefetchParamTiles * R, R);
  const __m512i m4 = _mm512_set1_epi8(15);
  const int64_t cs = t.w[0].cs;  // every row's chunk stride: a chunk of CH = 128 codes is one 64-byte chunk
  __m512 acc[R][MT];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) acc[r][m] = _mm512_setzero_ps();
  Factors<R, MT> f;
  int64_t off = 0;  // into every weight row's layout (chunk c at c·cs)
  for (int64_t b0 = 0; b0 < NB; b0 += 16) {
    const int64_t nb = std::min<int64_t>(16, NB - b0);
    factors<R, MT>(a, p, t, m0, b0, nb, f, acc);
    for (int64_t b = 0; b < nb; b++) {
      __m512i s[R][MT];
      for (int r = 0; r < R; r++)
        for (int m = 0; m < MT; m++) s[r][m] = fresh_zero();
      for (int c = 0; c < CPB; c++, xp += 128, off += cs) {
        __m512i xl[MT], xh[MT];
        for (int m = 0; m < MT; m++) {
          xl[m] = _mm512_loadu_si512(xp + m * K);
          xh[m] = _mm512_loadu_si512(xp + m * K + 64);
        }
        for (int r = 0; r < R; r++) {
          if constexpr (PF) _mm_prefetch(reinterpret_cast<const char*>(t.w[r].p + off + kPrefetchTiles * R * (K / 2)), _MM_HINT_T1);
          __m512i v = _mm512_loadu_si512(t.w[r].p + off);
          asm("" : "+v"(v));  // one load: else GCC folds it into both the and and the shift (1.04-1.12x)
          const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
          for (int m = 0; m < MT; m++) {
            if constexpr (VNNI) {
              s[r][m] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(s[r][m], lo, xl[m]), hi, xh[m]);
            } else {
              s[r][m] = _mm512_add_epi16(s[r][m], _mm512_add_epi16(_mm512_maddubs_epi16(lo, xl[m]),
                                                                   _mm512_maddubs_epi16(hi, xh[m])));
            }
          }
        }
      }
      for (int r = 0; r < R; r++)
        for (int m = 0; m < MT; m++) {
          const __m512i iv = VNNI ? s[r][m] : _mm512_madd_epi16(s[r][m], _mm512_set1_epi16(1));
          acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), _mm512_set1_ps(f.cs[r * MT + m][b]), acc[r][m]);
        }
    }
  }
  if constexpr (R * MT < 8) {
    for (int r = 0; r < R; r++)
      for (int m = 0; m < MT; m++) out[r * M + m0 + m] = _mm512_reduce_add_ps(acc[r][m]);
    return;
  }
  // All R·MT sums at once (vhsum16): 12 horizontal sums were a tenth of a 6 × 2 tile's time at K = 4096.
  static_assert(R * MT <= 16, "vhsum16 sums at most 16 vectors");
  __m512 v[16];
  for (int i = 0; i < 16; i++) v[i] = i < R * MT ? acc[i / MT][i % MT] : _mm512_setzero_ps();
  alignas(64) float sums[16];
  vhsum16(v, sums);
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) out[r * M + m0 + m] = sums[r * MT + m];
}
