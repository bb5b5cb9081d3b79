// Horizontal sums of up to 16 zmm vectors at once, for AVX-512 regions: included inside a `#pragma GCC target`
// region that enables AVX-512F, in the including file's namespace. No include guard on purpose.
// Lane i of the result = Σ lanes of x[i], i < 16: a transpose-add tree (45 shuffles and adds for 16 sums instead
// of 16 horizontal sums of 8-10 instructions each). Slot 4r+q of the tree takes x[4q+r], so that lane 4q+r of
// the result holds the sum of x[4q+r].
LLMK_ALWAYS_INLINE __m512 vhsum16_v(const __m512* x) {
  __m512 y[8], z[4], w[2];
#pragma GCC unroll 8
  for (int k = 0; k < 8; k++) {  // [a | b] folded to 256 bits each
    const __m512 a = x[(2 * k) % 4 * 4 + (2 * k) / 4], b = x[(2 * k + 1) % 4 * 4 + (2 * k + 1) / 4];
    y[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++)  // 128-bit quad q: slot 4k+q folded to 4 lanes
    z[k] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * k], y[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y[2 * k], y[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
  for (int k = 0; k < 2; k++)  // quad q: slots 8k+q and 8k+4+q, 2 lanes each
    w[k] = _mm512_add_ps(_mm512_unpacklo_ps(z[2 * k], z[2 * k + 1]), _mm512_unpackhi_ps(z[2 * k], z[2 * k + 1]));
  return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(w[0]), _mm512_castps_pd(w[1]))),
                       _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(w[0]), _mm512_castps_pd(w[1]))));
  // lane 4q+r: slot 4r+q = x[4q+r]
}

// sums[i] = Σ lanes of x[i], i < 16.
LLMK_ALWAYS_INLINE void vhsum16(const __m512* x, float* sums) { _mm512_storeu_ps(sums, vhsum16_v(x)); }
