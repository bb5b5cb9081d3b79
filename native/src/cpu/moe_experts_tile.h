// One expert GEMM tile on the register-blocked micro-kernel of matmul_kernel.h, included once per ISA
// by moe_experts_gemm.cpp right after matmul_kernel.h (same namespace, so micro_rows/pack_a and the
// ISA's V, L, MR are in scope). No include guard on purpose.
//
// C[r * ldc + c] = Σ_k W[r0 + r, k] · X[c, k]: the weight rows are the GEMM's A (packed into slivers
// of MR rows, converted from their dtype by pack_a), the expert's gathered tokens its B (packed here
// into [k][NR] panels, zero beyond the last token). So each weight row is read once per call whatever
// the number of tokens, and a token's NaN stays in its own column.
template <int NVT>
void expert_tile(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols,
                 float* c, int64_t ldc) {
  constexpr int64_t NR = NVT * L;
  constexpr int64_t CB = 256;  // token columns per packed chunk of B
  float* ap = scratch(0, MC * KC);
  float* bp = scratch(1, KC * CB);
  for (int64_t m0 = 0; m0 < rows; m0 += MC) {
    const int64_t mc = std::min(MC, rows - m0);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      pack_a(w, wdt, K, r0 + m0, mc, k0, kc, MR, ap);
      for (int64_t c0 = 0; c0 < cols; c0 += CB) {
        const int64_t cc = std::min(CB, cols - c0), panels = (cc + NR - 1) / NR;
        for (int64_t j = 0; j < panels * NR; j++) {
          float* d = bp + (j / NR) * NR * kc + j % NR;
          if (j < cc) {
            const float* s = x + (c0 + j) * K + k0;
            for (int64_t k = 0; k < kc; k++) d[k * NR] = s[k];
          } else {
            for (int64_t k = 0; k < kc; k++) d[k * NR] = 0.f;
          }
        }
        for (int64_t p = 0; p < panels; p++)
          for (int64_t i0 = 0; i0 < mc; i0 += MR)
            micro_rows<NVT, MR>(std::min<int64_t>(MR, mc - i0), kc, ap + i0 * kc, bp + p * NR * kc, NR,
                                c + (m0 + i0) * ldc + c0 + p * NR, ldc, k0 > 0, std::min(NR, cc - p * NR));
      }
    }
  }
}

// Up to kDotsMax tokens: dot products along k instead. R weight rows at a time are streamed from
// memory once; every group of up to 4 tokens then passes over them (R × MT accumulators, each weight
// vector loaded once per group, the rows staying in L1/L2), so a decode step runs at memory speed and
// no weight is transposed. Half weights are converted R rows at a time into a buffer. Measured on
// AVX-512 (H = 2048, I = 1024): 1.7× less CPU time than packing the weights for the micro-kernel at 64
// tokens per expert, equal at 256, 11% more at 512 — hence the micro-kernel only above 256.
constexpr int64_t kDotsMax = 256;

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

void expert_dots(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols, float* c,
                 int64_t ldc) {
  constexpr int R = 4;
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

void tile(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols, float* c,
          int64_t ldc) {
  if (cols <= kDotsMax) expert_dots(w, wdt, K, r0, rows, x, cols, c, ldc);
  else expert_tile<NV>(w, wdt, K, r0, rows, x, cols, c, ldc);
}
