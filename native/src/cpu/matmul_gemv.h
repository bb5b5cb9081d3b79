// Streaming GEMV-style float32 matmul for M <= GEMV_M_MAX, included by matmul_driver.h (same ISA region and
// preamble; uses GEMV_M_MAX, GEMV_U and gemv_chunk(N) from matmul.cpp, store_tile from the driver).
// No include guard on purpose.
// With so few rows B is read once from memory and that read is the whole cost, so B is walked row by row
// (each row slice read contiguously, GEMV_U rows at a time) into a cache-resident float32 y[rows][nc], instead
// of the column-panel walk above (256-byte pieces of B a row stride apart).

// y[0:R, 0:nc] += Σ_u a[i, k+u] · b[u][0:nc] over U rows of B (pointers b[0..U-1]); a rows lda apart.
template <int R, int U>
LLMK_ALWAYS_INLINE void gemv_rows(const float* a, int64_t lda, int64_t k, const float* const* b, float* y, int64_t nc) {
  V c[R][U];
#pragma GCC unroll 16
  for (int i = 0; i < R; i++)
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) c[i][u] = vbcast(a + i * lda + k + u);
  int64_t j = 0;
  for (; j + L <= nc; j += L) {
    V bv[U];
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) bv[u] = vload(b[u] + j);
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      V acc = vload(y + i * nc + j);
#pragma GCC unroll 16
      for (int u = 0; u < U; u++) acc = vfma(c[i][u], bv[u], acc);
      vstore(y + i * nc + j, acc);
    }
  }
  for (; j < nc; j++)
    for (int i = 0; i < R; i++) {
      float s = y[i * nc + j];
      for (int u = 0; u < U; u++) s += a[i * lda + k + u] * b[u][j];
      y[i * nc + j] = s;
    }
}

// y[0:R, 0:nc] = A[0:R, :] · B[:, n0:n0+nc]; A float32 rows lda apart; B of dtype j.dt (half rows converted
// GEMV_U at a time into bbuf).
template <int R>
void gemv_block(const Job& j, const float* a, int64_t lda, int64_t n0, int64_t nc, float* bbuf, float* y) {
  std::memset(y, 0, size_t(R * nc) * sizeof(float));
  const float* rows[GEMV_U];
  auto fetch = [&](int64_t k, int n) {
    for (int u = 0; u < n; u++) {
      const int64_t at = (k + u) * j.N + n0;
      if (j.dt == 0) rows[u] = static_cast<const float*>(j.b) + at;
      else { load_row(j.b, j.dt, at, nc, bbuf + u * nc); rows[u] = bbuf + u * nc; }
    }
  };
  int64_t k = 0;
  for (; k + GEMV_U <= j.K; k += GEMV_U) { fetch(k, GEMV_U); gemv_rows<R, GEMV_U>(a, lda, k, rows, y, nc); }
  for (; k < j.K; k++) { fetch(k, 1); gemv_rows<R, 1>(a, lda, k, rows, y, nc); }
}

// Tasks [t0, t1): column blocks of gemv_chunk(N), all M rows each.
void gemv_tasks(const Job& j, int64_t t0, int64_t t1) {
  const float* a = static_cast<const float*>(j.a);
  if (j.dt != 0) {
    float* af = scratch(0, j.M * j.K);
    for (int64_t i = 0; i < j.M; i++) load_row(j.a, j.dt, i * j.K, j.K, af + i * j.K);
    a = af;
  }
  const int64_t chunk = gemv_chunk(j.N);
  float* bbuf = scratch(1, GEMV_U * chunk);
  float* y = scratch(2, GEMV_M_MAX * chunk);
  for (int64_t t = t0; t < t1; t++) {
    const int64_t n0 = t * chunk, nc = std::min(chunk, j.N - n0);
    switch (j.M) {
      case 1: gemv_block<1>(j, a, j.K, n0, nc, bbuf, y); break;
      case 2: gemv_block<2>(j, a, j.K, n0, nc, bbuf, y); break;
      case 3: gemv_block<3>(j, a, j.K, n0, nc, bbuf, y); break;
      default: gemv_block<4>(j, a, j.K, n0, nc, bbuf, y); break;
    }
    store_tile(y, j, 0, j.M, n0, nc);
  }
}
