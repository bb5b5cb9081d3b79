// float16 -> float32 for a row with F16C (exact, like f16_to_f32), included inside matmul.cpp's x86
// `#pragma GCC target` regions (which enable f16c); no include guard on purpose.
void cvt_f16(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < n; i++) d[i] = f16_to_f32(s[i]);
}
