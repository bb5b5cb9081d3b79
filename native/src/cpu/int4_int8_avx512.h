// AVX-512 tile of the int8 mode (int4_int8.cpp), included once with VNNI = true (vpdpbusd) and once with
// VNNI = false (vpmaddubsw + vpmaddwd, AVX512BW only), each inside its own `#pragma GCC target` region and
// namespace. No include guard on purpose. Chunks of CH = 128 k: 64 packed bytes, low nibbles against the
// 64 even k, high nibbles against the 64 odd k. Int16 sums cannot saturate: a byte pair adds at most
// 2·15·127 = 3810 per vpmaddubsw lane, two per chunk, at most two chunks per block (BA ≤ 256).
// Per block: the integer sum starts at −zero·Σxq (lane 0; exact in int32) and ends as
// acc += float(Σ xq·(code − zero)) · (sa · scale), both factors from tile_params, so the loop holds nothing
// but the codes, the dot products and one FMA per block. Needs from the includer: Args, QuantX, RowParams,
// VNNI, setup_portable, prefetch_params, TilePtrs.

// p.cs / p.zc of rows n.. × all M activation rows (int4_int8.h), 16 blocks per step when each block has its
// own group (bpg = 1: every group of 32…256); else the portable set-up. Also prefetches the next row tile's
// scales and zero points (read here, once per row tile).
template <int R>
void setup(const Args& a, RowParams& p, int64_t n, int nr) {
  const QuantX& x = *a.x;
  const int64_t NB = x.NB, G = a.K / a.group, M = a.M;
  prefetch_params(a, n + kPrefetchParamTiles * R, R);
  if (setup_portable(a, p, R, n, nr, G == NB)) return;
  // Unmasked loads and stores for whole vectors (masked stores are slow on some CPUs), masked for the tail.
  const auto step = [&](int64_t off, int r, int64_t b, __mmask16 mk, bool whole) {
    __m512 sw;
    if (a.sdt == int(DType::F32)) {
      const float* sp = static_cast<const float*>(a.scales) + off + b;
      sw = whole ? _mm512_loadu_ps(sp) : _mm512_maskz_loadu_ps(mk, sp);
    } else {
      const uint16_t* sp = static_cast<const uint16_t*>(a.scales) + off + b;
      const __m256i h = whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp)) : _mm256_maskz_loadu_epi16(mk, sp);
      sw = a.sdt == int(DType::F16) ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    const __m512i nz = a.zeros ? _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepu8_epi32(
                                     whole ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.zeros + off + b))
                                           : _mm_maskz_loadu_epi8(mk, a.zeros + off + b)))
                               : _mm512_set1_epi32(-8);
    for (int64_t m = 0; m < M; m++) {
      const int64_t xm = m * NB + b, i = (r * M + m) * NB + b;
      if (whole) {
        _mm512_storeu_ps(p.cs.data() + i, _mm512_mul_ps(sw, _mm512_loadu_ps(x.sa.data() + xm)));
        _mm512_storeu_si512(p.zc.data() + i, _mm512_mullo_epi32(nz, _mm512_loadu_si512(x.sum.data() + xm)));
      } else {
        _mm512_mask_storeu_ps(p.cs.data() + i, mk, _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(mk, x.sa.data() + xm)));
        _mm512_mask_storeu_epi32(p.zc.data() + i, mk, _mm512_mullo_epi32(nz, _mm512_maskz_loadu_epi32(mk, x.sum.data() + xm)));
      }
    }
  };
  for (int r = 0; r < R; r++) {
    const int64_t off = (n + std::min(r, nr - 1)) * G;
    int64_t b = 0;
    for (; b + 16 <= NB; b += 16) step(off, r, b, 0xFFFF, true);
    if (b < NB) step(off, r, b, __mmask16((1u << (NB - b)) - 1u), false);
  }
}

// R weight rows (n.., nr valid; missing ones repeat the last) × MT activation rows (m0..) into
// out[r·M + m0 + m]. PF (the first pass over these rows): prefetch a later row tile's codes into L2, one line per
// row per chunk, so that they arrive while this tile computes (the rows are short streams, 2 KiB at K = 4096,
// that the hardware prefetcher picks up late).
template <int R, int MT, int CPB, bool PF>
void tile(const Args& a, const RowParams& p, int64_t n, int nr, int64_t m0, float* out) {
  const int64_t K = a.K, NB = a.x->NB, M = a.M;
  auto [cs, zc, w, xp] = TilePtrs<R>(a, p, n, nr, m0);
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[R][MT];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) acc[r][m] = _mm512_setzero_ps();
  int64_t off = 0;  // into every weight row
  for (int64_t b = 0; b < NB; b++, cs++, zc++) {
    __m512i s[R][MT];
    for (int r = 0; r < R; r++)
      for (int m = 0; m < MT; m++)
        s[r][m] = VNNI ? _mm512_zextsi128_si512(_mm_cvtsi32_si128(zc[(r * M + m) * NB])) : _mm512_setzero_si512();
    for (int c = 0; c < CPB; c++, xp += 128, off += 64) {
      __m512i xl[MT], xh[MT];
      for (int m = 0; m < MT; m++) {
        xl[m] = _mm512_loadu_si512(xp + m * K);
        xh[m] = _mm512_loadu_si512(xp + m * K + 64);
      }
      for (int r = 0; r < R; r++) {
        if constexpr (PF) _mm_prefetch(reinterpret_cast<const char*>(w[r] + off + kPrefetchTiles * R * (K / 2)), _MM_HINT_T1);
        const __m512i v = _mm512_loadu_si512(w[r] + off);
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
        __m512i iv = s[r][m];
        if constexpr (!VNNI)
          iv = _mm512_add_epi32(_mm512_madd_epi16(iv, _mm512_set1_epi16(1)),
                                _mm512_zextsi128_si512(_mm_cvtsi32_si128(zc[(r * M + m) * NB])));
        acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), _mm512_set1_ps(cs[(r * M + m) * NB]), acc[r][m]);
      }
  }
  for (int r = 0; r < R; r++)
    for (int m = 0; m < MT; m++) out[r * M + m0 + m] = _mm512_reduce_add_ps(acc[r][m]);
}
