// Register-blocked float32 GEMM body, included once per instruction set by matmul.cpp inside a
// `#pragma GCC target` region and its own namespace, so every function here is compiled for that ISA.
// No include guard on purpose; it must not include headers itself. The including namespace defines:
//   V (a vector of L floats), L; vzero, vload, vstore, vbcast, vfma (always inline);
//   cvt_f16 / cvt_to_f16 (a row of float16 to / from float32); KC (the deepest pack_a call).
// The dense matmul's whole-matrix driver is matmul_driver.h, included after this file by matmul.cpp only.
//
// BUILDING BLOCK for other CPU kernels (attention tiles, expert layers): the stable interface is
//   micro<R, NV>(kc, a, as, b, ldb, c, ldc, acc, cols)   C[R×cols] (acc ? += : =) A·B, R×NV vectors in registers;
//   micro_rows<NV, MAXR>(rows, ...)                     the same for a run-time row count ≤ MAXR;
//   pack_a / pack_b<NVT> / load_row                      A slivers [k][rows], B panels [k][NV·L], any float dtype.
// A caller includes this file in its own ISA regions the way matmul.cpp does (same V/L/vload… preamble),
// packs its operands (e.g. Kᵀ panels for Q·Kᵀ) and runs its epilogue (scale, mask, online softmax,
// activation, routing weight) on the C tile while it is still in L1, right after the last micro call of a
// K loop: that is the epilogue hook, at no cost beyond the epilogue itself. Signatures here are only ever
// added to, never changed.

// C[0:R, 0:cols] (acc ? += : =) A·B over kc steps: A packed as [k][as] (R rows used), B rows of NV*L
// floats ldb apart (zero-padded beyond cols). R×NV accumulators live in registers.
template <int R, int NV>
LLMK_ALWAYS_INLINE void micro(int64_t kc, const float* a, int64_t as, const float* b, int64_t ldb, float* c,
                              int64_t ldc, bool acc, int64_t cols) {
  constexpr int NR = NV * L;
  // Accumulate from zero and add C at the end: C's lines (often out of cache: the dense driver keeps C in
  // the output across K blocks) are prefetched now and arrive while the K loop runs.
  V r[R][NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; i++) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) r[i][v] = vzero();
    if (acc)
#pragma GCC unroll 16
      for (int x = 0; x < NR; x += 16) __builtin_prefetch(c + i * ldc + x, 1);
  }
  for (int64_t k = 0; k < kc; k++, a += as, b += ldb) {
    V bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) bv[v] = vload(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      const V ai = vbcast(a + i);
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) r[i][v] = vfma(ai, bv[v], r[i][v]);
    }
  }
  if (cols == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < R; i++)
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) vstore(c + i * ldc + v * L, acc ? r[i][v] + vload(c + i * ldc + v * L) : r[i][v]);
  } else {
    float t[NR];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) vstore(t + v * L, r[i][v]);
      for (int64_t j = 0; j < cols; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[j] : t[j];
    }
  }
}

#include "load_row.inc"

// A float32 sliver of `rows` rows (lds apart) and kc columns as [k][rows], TL columns at a time through the
// ISA's vtranspose_rows (rows <= TL; the scalar loop costed 6 % of a 512³ matmul, the transpose about 1 %).
template <int R = TL>
LLMK_ALWAYS_INLINE void pack_sliver_f32(const float* s, int64_t lds, int64_t rows, int64_t kc, float* d) {
  if constexpr (R > 1) {
    if (rows != R) return pack_sliver_f32<R - 1>(s, lds, rows, kc, d);
  }
  int64_t k = 0;
  for (; k + TL <= kc; k += TL) {
    // The next sliver's rows (short streams the hardware prefetcher picks up late), a line per row at a time;
    // past the last row of A this prefetches unused lines, which cannot fault.
    if (k % 16 == 0)
#pragma GCC unroll 8
      for (int i = 0; i < R; i++) __builtin_prefetch(s + (R + i) * lds + k);
    vtranspose_rows<R>(s + k, lds, d + k * R);
  }
  for (; k < kc; k++)
    for (int i = 0; i < R; i++) d[k * R + i] = s[i * lds + k];
}

// Rows [m0, m0+mc) × columns [k0, k0+kc) (kc <= KC) of A as float32 slivers of mr rows: sliver s at
// dst + s*mr*kc, laid out [k][rows of the sliver] (the last sliver may have fewer rows, and is that much narrower).
inline void pack_a(const void* a, int dt, int64_t K, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, float* dst) {
  float row[KC];
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t rows = std::min(mr, mc - i0);
    float* d = dst + i0 * kc;
    if (dt == 0) {  // float32 in place
      const float* s = static_cast<const float*>(a) + (m0 + i0) * K + k0;
      if (rows <= TL) {
        pack_sliver_f32(s, K, rows, kc, d);
        continue;
      }
      for (int64_t k = 0; k < kc; k++, d += rows)  // k outer: contiguous stores, one read stream per row
        for (int64_t i = 0; i < rows; i++) d[i] = s[i * K + k];
      continue;
    }
    for (int64_t i = 0; i < rows; i++) {
      const int64_t at = (m0 + i0 + i) * K + k0;
      load_row(a, dt, at, kc, row);
      for (int64_t k = 0; k < kc; k++) d[k * rows + i] = row[k];
    }
  }
}

// Rows [k0, k0+kc) × columns [n0, n0+nc) of B as float32 panels of nr = NVT*L columns: panel p at
// dst + p*nr*kc, laid out [k][nr], zero beyond the last column.
template <int NVT>
void pack_b(const void* b, int dt, int64_t N, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  constexpr int64_t NR = NVT * L;
  int64_t p0 = 0;
  if (dt == 0) {  // float32 full panels row by row: each B row read once, in order (panel by panel: 2-5 % slower)
    const int64_t full = nc / NR * NR;
    for (int64_t k = 0; k < kc; k++) {
      const float* s = static_cast<const float*>(b) + (k0 + k) * N + n0;
      float* d = dst + k * NR;
      for (int64_t p = 0; p < full; p += NR, d += NR * kc)
#pragma GCC unroll 16
        for (int v = 0; v < NVT; v++) vstore(d + v * L, vload(s + p + v * L));
    }
    p0 = full;
  }
  for (; p0 < nc; p0 += NR) {
    const int64_t cols = std::min(NR, nc - p0);
    float* d = dst + p0 * kc;
    for (int64_t k = 0; k < kc; k++, d += NR) {
      const int64_t base = (k0 + k) * N + n0 + p0;
      if (dt == 0 && cols == NR) {
        const float* s = static_cast<const float*>(b) + base;
#pragma GCC unroll 16
        for (int v = 0; v < NVT; v++) vstore(d + v * L, vload(s + v * L));
        continue;
      }
      load_row(b, dt, base, cols, d);
      for (int64_t j = cols; j < NR; j++) d[j] = 0.f;
    }
  }
}

// micro<rows, NV> for a run-time row count 1 <= rows <= MAXR.
template <int NV, int MAXR, int R = 1>
LLMK_ALWAYS_INLINE void micro_rows(int64_t rows, int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                                   int64_t ldc, bool acc, int64_t cols) {
  if constexpr (R < MAXR) {
    if (rows != R) return micro_rows<NV, MAXR, R + 1>(rows, kc, a, b, ldb, c, ldc, acc, cols);
  }
  micro<R, NV>(kc, a, R, b, ldb, c, ldc, acc, cols);
}
