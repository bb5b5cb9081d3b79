// AVX-512 tile of the int8 mode (int4_int8.cpp), included once with VNNI = true (vpdpbusd) and once with
// VNNI = false (vpmaddubsw + vpmaddwd, AVX512BW only), each inside its own `#pragma GCC target` region and
// namespace. No include guard on purpose. Chunks of CH = 128 k: 64 packed bytes, low nibbles against the
// 64 even k, high nibbles against the 64 odd k. Int16 sums cannot saturate: a byte pair adds at most
// 2·15·127 = 3810 per vpmaddubsw lane, two per chunk, at most two chunks per block (BA ≤ 256).
// Per block: the integer sum starts at −zero·Σxq (lane 0; exact in int32) and ends as
// acc += float(Σ xq·(code − zero)) · (sa · scale), both factors from tile_params, so the loop holds nothing
// but the codes, the dot products and one FMA per block. Needs from the includer: Args, QuantX, RowParams,
// VNNI, tile_params.

template <int R, int MT, int CPB>
void tile(const Args& a, RowParams& p, int64_t n, int nr, int64_t m0, float* out) {
  const QuantX& x = *a.x;
  const int64_t K = a.K, NB = x.NB;
  constexpr int cpb = CPB;
  tile_params(a, p, R, MT, m0);
  const float* cs = p.cs.data();
  const int32_t* zc = p.zc.data();
  const uint8_t* w[R];
  for (int r = 0; r < R; r++) w[r] = a.q + (n + std::min(r, nr - 1)) * (K / 2);
  const int8_t* xp = x.q + m0 * K;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[R][MT];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) acc[r][m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < NB; b++) {
    __m512i s[R][MT];
    for (int r = 0; r < R; r++)
      for (int m = 0; m < MT; m++)
        s[r][m] = VNNI ? _mm512_zextsi128_si512(_mm_cvtsi32_si128(zc[(r * MT + m) * NB + b])) : _mm512_setzero_si512();
    for (int c = 0; c < cpb; c++, xp += 128) {
      __m512i xl[MT], xh[MT];
      for (int m = 0; m < MT; m++) {
        xl[m] = _mm512_loadu_si512(xp + m * K);
        xh[m] = _mm512_loadu_si512(xp + m * K + 64);
      }
      for (int r = 0; r < R; r++) {
        __m512i v = _mm512_loadu_si512(w[r]);
        asm("" : "+v"(v));  // one load per code vector (GCC would fold it into both the and and the shift)
        w[r] += 64;
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
        const int i = r * MT + m;
        __m512i iv = s[r][m];
        if constexpr (!VNNI)
          iv = _mm512_add_epi32(_mm512_madd_epi16(iv, _mm512_set1_epi16(1)),
                                _mm512_zextsi128_si512(_mm_cvtsi32_si128(zc[i * NB + b])));
        acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), _mm512_set1_ps(cs[i * NB + b]), acc[r][m]);
      }
  }
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) out[r * MT + m] = _mm512_reduce_add_ps(acc[r][m]);
}
