// AVX-512 tile of the int8 mode (int4_int8.cpp), included once with VNNI = true (vpdpbusd) and once with
// VNNI = false (vpmaddubsw + vpmaddwd, AVX512BW only), each inside its own `#pragma GCC target` region and
// namespace. No include guard on purpose. Chunks of CH = 128 k: 64 packed bytes, low nibbles against the
// 64 even k, high nibbles against the 64 odd k. Int16 sums cannot saturate: a byte pair adds at most
// 2·15·127 = 3810 per vpmaddubsw lane, two per chunk, at most two chunks per block (BA ≤ 256).
// Block ends: acc += float(Σ xq·code) · (sa · scale); the zero point is applied once per output as
// − Σ_blocks (zero · scale) · (sa · Σ xq) (zero_term). Needs from the includer: Args, QuantX, RowParams, VNNI, zero_term.

template <int R, int MT>
void tile(const Args& a, const RowParams& p, int64_t n, int nr, int64_t m0, float* out) {
  const QuantX& x = *a.x;
  const int64_t K = a.K, NB = x.NB, cpb = x.BA / 128;
  const uint8_t* qr[R];
  for (int r = 0; r < R; r++) qr[r] = a.q + (n + std::min(r, nr - 1)) * (K / 2);
  const __m512i m4 = _mm512_set1_epi8(15), ones = _mm512_set1_epi16(1);
  __m512 acc[R][MT];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) acc[r][m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < NB; b++) {
    __m512i s[R][MT];
    for (int r = 0; r < R; r++)
      for (int m = 0; m < MT; m++) s[r][m] = _mm512_setzero_si512();
    const int8_t* xb = x.q.data() + m0 * K + b * x.BA;
    for (int64_t c = 0; c < cpb; c++) {
      __m512i xl[MT], xh[MT];
      for (int m = 0; m < MT; m++) {
        xl[m] = _mm512_loadu_si512(xb + m * K + c * 128);
        xh[m] = _mm512_loadu_si512(xb + m * K + c * 128 + 64);
      }
      for (int r = 0; r < R; r++) {
        const uint8_t* wp = qr[r] + (b * x.BA + c * 128) / 2;
        _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetch), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(wp);
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
    __m512 sav[MT];
    for (int m = 0; m < MT; m++) sav[m] = _mm512_set1_ps(x.sa[size_t((m0 + m) * NB + b)]);
    for (int r = 0; r < R; r++) {
      const __m512 swv = _mm512_set1_ps(p.sw[size_t(r * NB + b)]);
      for (int m = 0; m < MT; m++) {
        const __m512i iv = VNNI ? s[r][m] : _mm512_madd_epi16(s[r][m], ones);
        acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), _mm512_mul_ps(swv, sav[m]), acc[r][m]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) out[r * MT + m] = _mm512_reduce_add_ps(acc[r][m]) - zero_term(a, p, r, m0 + m);
}
