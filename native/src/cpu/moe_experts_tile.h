// Expert GEMM tiles, included once per ISA by moe_experts_gemm.cpp right after matmul_kernel.h (same
// namespace, so load_row, scratch and the ISA's V, L, MR, NV are in scope). No include guard on purpose.
//
// C[r * ldc + c] = Σ_k W[r0 + r, k] · X[c, k]: each weight row is read once per call whatever the number
// of tokens, and a token's NaN stays in its own column.
// Few tokens (expert_dots): dot products along k. R weight rows at a time are streamed from
// memory once; every group of up to 4 tokens then passes over them (R × MT accumulators, each weight
// vector loaded once per group, the rows staying in L1/L2), so a decode step runs at memory speed and
// no weight is transposed. Half weights are converted R rows at a time into a buffer.

template <int MT, int R>
LLMK_ALWAYS_INLINE void dots(const float* const* wr, int nr, int64_t K, const float* x, float* c, int64_t ldc) {
  V acc[R][MT];
  for (int i = 0; i < R; i++)
    for (int m = 0; m < MT; m++) acc[i][m] = vzero();
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    V xv[MT];
    for (int m = 0; m < MT; m++) xv[m] = vload(x + m * K + k);
    for (int i = 0; i < R; i++) {
      const V wv = vload(wr[i] + k);
      for (int m = 0; m < MT; m++) acc[i][m] = vfma(wv, xv[m], acc[i][m]);
    }
  }
  for (int i = 0; i < nr; i++)
    for (int m = 0; m < MT; m++) {
      float t[L];
      vstore(t, acc[i][m]);
      float s = 0.f;
      for (int l = 0; l < L; l++) s += t[l];
      for (int64_t kk = k; kk < K; kk++) s += wr[i][kk] * x[m * K + kk];
      c[i * ldc + m] = s;
    }
}

template <int R>
void expert_dots(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols, float* c,
                 int64_t ldc) {
  float* wb = scratch(2, R * K);
  for (int64_t r = 0; r < rows; r += R) {
    const int nr = int(std::min<int64_t>(R, rows - r));
    const float* wr[R];
    for (int i = 0; i < R; i++) {
      const int64_t row = r0 + r + std::min(i, nr - 1);
      if (wdt == 0) {
        wr[i] = static_cast<const float*>(w) + row * K;
      } else {
        load_row(w, wdt, row * K, K, wb + i * K);
        wr[i] = wb + i * K;
      }
    }
    for (int64_t m0 = 0; m0 < cols; m0 += 4) {
      const float* xm = x + m0 * K;
      float* cm = c + r * ldc + m0;
      switch (std::min<int64_t>(4, cols - m0)) {
        case 1: dots<1, R>(wr, nr, K, xm, cm, ldc); break;
        case 2: dots<2, R>(wr, nr, K, xm, cm, ldc); break;
        case 3: dots<3, R>(wr, nr, K, xm, cm, ldc); break;
        default: dots<4, R>(wr, nr, K, xm, cm, ldc); break;
      }
    }
  }
}

// Above kPackMin tokens, moe_experts packs each expert's tokens once per GEMM (pack_tokens) and every
// work item of that expert runs an outer-product kernel on them (tile_packed) that broadcasts the
// weights straight from their rows: no weight is packed or transposed. Tokens are padded to a multiple
// of L only (not of NR = NV·L): a tail of 40 tokens then costs 48 columns of FMAs, not 64. Per K block
// of KD at k0 the panels lie at dst + k0 * P + p * NR * kc (P = tokens rounded up to L), each [k][w],
// w = min(NR, P − p·NR) columns, zero beyond the last token.
constexpr int64_t kPackMin = 32, KD = 128;

int64_t packed_size(int64_t cols, int64_t K) {
  return cols > kPackMin ? (cols + L - 1) / L * L * K : 0;
}

void pack_tokens(const float* x, int64_t cols, int64_t K, float* dst) {
  constexpr int64_t NR = NV * L;
  const int64_t P = (cols + L - 1) / L * L;
  for (int64_t k0 = 0; k0 < K; k0 += KD) {
    const int64_t kc = std::min(KD, K - k0);
    for (int64_t p0 = 0; p0 < P; p0 += NR) {
      const int64_t w = std::min(NR, P - p0);
      float* panel = dst + k0 * P + p0 * kc;
      for (int64_t j = 0; j < w; j++) {
        const float* s = x + (p0 + j) * K + k0;
        float* d = panel + j;
        if (p0 + j < cols)
          for (int64_t k = 0; k < kc; k++) d[k * w] = s[k];
        else
          for (int64_t k = 0; k < kc; k++) d[k * w] = 0.f;
      }
    }
  }
}

// t[R][NW·L] = A·B over kc steps, A = R float32 rows lda apart read in place, B a packed panel [k][NW·L].
template <int R, int NW>
LLMK_ALWAYS_INLINE void micro_direct(int64_t kc, const float* a, int64_t lda, const float* b, float* t) {
  V r[R][NW];
#pragma GCC unroll 16
  for (int i = 0; i < R; i++)
#pragma GCC unroll 16
    for (int v = 0; v < NW; v++) r[i][v] = vzero();
  for (int64_t k = 0; k < kc; k++, b += NW * L) {
    V bv[NW];
#pragma GCC unroll 16
    for (int v = 0; v < NW; v++) bv[v] = vload(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      const V ai = vbcast(a + i * lda + k);
#pragma GCC unroll 16
      for (int v = 0; v < NW; v++) r[i][v] = vfma(ai, bv[v], r[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; i++)
#pragma GCC unroll 16
    for (int v = 0; v < NW; v++) vstore(t + i * NW * L + v * L, r[i][v]);
}

template <int NW, int R = 1>
LLMK_ALWAYS_INLINE void micro_direct_rows(int64_t rows, int64_t kc, const float* a, int64_t lda, const float* b, float* t) {
  if constexpr (R < MR) {
    if (rows != R) return micro_direct_rows<NW, R + 1>(rows, kc, a, lda, b, t);
  }
  micro_direct<R, NW>(kc, a, lda, b, t);
}

// Dispatch on the panel width in vectors (NW = 1 .. NV).
template <int NW = 1>
void micro_direct_panel(int64_t nw, int64_t rows, int64_t kc, const float* a, int64_t lda, const float* b, float* t) {
  if constexpr (NW < NV) {
    if (nw != NW) return micro_direct_panel<NW + 1>(nw, rows, kc, a, lda, b, t);
  }
  micro_direct_rows<NW>(rows, kc, a, lda, b, t);
}

void tile_packed(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* bp, int64_t cols,
                 float* c, int64_t ldc) {
  constexpr int64_t NR = NV * L;
  const int64_t P = (cols + L - 1) / L * L;
  const float* a = static_cast<const float*>(w) + r0 * K;
  if (wdt != 0) {  // half weights: the item's rows converted once
    float* conv = scratch(0, rows * K);
    for (int64_t r = 0; r < rows; r++) load_row(w, wdt, (r0 + r) * K, K, conv + r * K);
    a = conv;
  }
  alignas(64) float t[MR * NR];
  for (int64_t k0 = 0; k0 < K; k0 += KD) {
    const int64_t kc = std::min(KD, K - k0);
    for (int64_t p0 = 0; p0 < P; p0 += NR) {
      const int64_t pw = std::min(NR, P - p0), nc = std::min(pw, cols - p0);
      for (int64_t i0 = 0; i0 < rows; i0 += MR) {
        const int64_t mr = std::min<int64_t>(MR, rows - i0);
        micro_direct_panel(pw / L, mr, kc, a + i0 * K + k0, K, bp + k0 * P + p0 * kc, t);
        for (int64_t i = 0; i < mr; i++) {
          float* ci = c + (i0 + i) * ldc + p0;
          const float* ti = t + i * pw;
          if (k0 == 0) std::memcpy(ci, ti, size_t(nc) * sizeof(float));
          else for (int64_t j = 0; j < nc; j++) ci[j] += ti[j];
        }
      }
    }
  }
}

// One token (decode): 8 weight rows in flight instead of 4, more memory streams for the same
// registers (8 accumulators); 6% less time per byte measured at T = 1.
void tile(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols, float* c,
          int64_t ldc) {
  if (cols == 1) expert_dots<8>(w, wdt, K, r0, rows, x, cols, c, ldc);
  else expert_dots<4>(w, wdt, K, r0, rows, x, cols, c, ldc);
}
