// float16 <-> float32 for a row with F16C (exact like f16_to_f32; round to nearest even like f32_to_f16), included inside matmul.cpp's x86
// `#pragma GCC target` regions (which enable f16c); no include guard on purpose.
void cvt_f16(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < n; i++) d[i] = f16_to_f32(s[i]);
}
void cvt_to_f16(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++) d[i] = f32_to_f16(s[i]);
}
