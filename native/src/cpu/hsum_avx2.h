// Horizontal sum of 8 floats, for the INT4 kernels' AVX2 regions: included inside a `#pragma GCC target`
// region that enables AVX2, in the including file's namespace. No include guard on purpose.
inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  return _mm_cvtss_f32(_mm_add_ss(lo, _mm_movehdup_ps(lo)));
}
