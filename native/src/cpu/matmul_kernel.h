// Register-blocked float32 GEMM body, included once per instruction set by matmul.cpp inside a
// `#pragma GCC target` region and its own namespace, so every function here is compiled for that ISA.
// No include guard on purpose; it must not include headers itself. The including namespace defines:
//   V (a vector of L floats), L; MR (rows of the main microkernel), NV and NVS (vectors per row of
//   the main and the small-M microkernel); vzero, vload, vstore, vbcast, vfma (always inline).
//   cvt_f16 / cvt_to_f16 (a row of float16 to / from float32).
// It uses from the enclosing file: Job, MC, NC, KC, SMALL_M, SMALL_M_MAX, scratch.
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
  V r[R][NV];
  if (acc && cols == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < R; i++)
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) r[i][v] = vload(c + i * ldc + v * L);
  } else if (acc) {
    float t[NR] = {};
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      for (int64_t j = 0; j < cols; j++) t[j] = c[i * ldc + j];
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) r[i][v] = vload(t + v * L);
    }
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < R; i++)
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) r[i][v] = vzero();
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
      for (int v = 0; v < NV; v++) vstore(c + i * ldc + v * L, r[i][v]);
  } else {
    float t[NR];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) vstore(t + v * L, r[i][v]);
      for (int64_t j = 0; j < cols; j++) c[i * ldc + j] = t[j];
    }
  }
}

#include "load_row.inc"

// Rows [m0, m0+mc) × columns [k0, k0+kc) (kc <= KC) of A as float32 slivers of mr rows: sliver s at
// dst + s*mr*kc, laid out [k][rows of the sliver] (the last sliver may have fewer rows, and is that much narrower).
inline void pack_a(const void* a, int dt, int64_t K, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, float* dst) {
  float row[KC];
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t rows = std::min(mr, mc - i0);
    float* d = dst + i0 * kc;
    for (int64_t i = 0; i < rows; i++) {
      const int64_t at = (m0 + i0 + i) * K + k0;
      const float* s = row;
      if (dt == 0) s = static_cast<const float*>(a) + at;
      else load_row(a, dt, at, kc, row);
      for (int64_t k = 0; k < kc; k++) d[k * rows + i] = s[k];
    }
  }
}

// A float32 tile [mc, nc] (row stride nc) rounded into out at (m0, n0).
inline void store_tile(const float* tile, const Job& j, int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
  for (int64_t i = 0; i < mc; i++) {
    const float* s = tile + i * nc;
    const int64_t at = (m0 + i) * j.N + n0;
    if (j.dt == 0) {
      std::memcpy(static_cast<float*>(j.out) + at, s, size_t(nc) * sizeof(float));
    } else if (j.dt == 1) {
      cvt_to_f16(s, static_cast<uint16_t*>(j.out) + at, nc);
    } else {
      uint16_t* d = static_cast<uint16_t*>(j.out) + at;
      for (int64_t c = 0; c < nc; c++) d[c] = f32_to_bf16(s[c]);
    }
  }
}

// Rows [k0, k0+kc) × columns [n0, n0+nc) of B as float32 panels of nr = NVT*L columns: panel p at
// dst + p*nr*kc, laid out [k][nr], zero beyond the last column.
template <int NVT>
void pack_b(const void* b, int dt, int64_t N, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  constexpr int64_t NR = NVT * L;
  for (int64_t p0 = 0; p0 < nc; p0 += NR) {
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

// Tasks [t0, t1) of the job: task = (row block of MC, column block of NC). Per K block of KC: A's rows are
// packed into slivers of MRT rows, B's columns into panels of NR (or read in place: float32 with little
// reuse), then every (panel, sliver) pair is one microkernel call (the panel stays in L1 across slivers).
template <int MRT, int NVT>
void tasks(const Job& j, int64_t t0, int64_t t1) {
  constexpr int64_t NR = NVT * L;
  const int64_t nblocks = (j.N + NC - 1) / NC;
  const bool f32 = j.dt == 0, direct_c = f32 && j.M <= SMALL_M_MAX;
  float* ap = scratch(0, MC * KC);
  float* bp = scratch(1, NC * KC);
  float* cb = scratch(2, MC * NC);
  for (int64_t t = t0; t < t1; t++) {
    const int64_t m0 = (t / nblocks) * MC, mc = std::min(MC, j.M - m0);
    const int64_t n0 = (t % nblocks) * NC, nc = std::min(NC, j.N - n0);
    float* c = direct_c ? static_cast<float*>(j.out) + m0 * j.N + n0 : cb;
    const int64_t ldc = direct_c ? j.N : nc;
    const int64_t panels = (nc + NR - 1) / NR, full = nc / NR;
    // Panels read in place (float32, B not packed): all full ones; the ragged last one is packed.
    const int64_t direct = (f32 && !j.pack_b) ? full : 0;
    for (int64_t k0 = 0; k0 < j.K; k0 += KC) {
      const int64_t kc = std::min(KC, j.K - k0);
      pack_a(j.a, j.dt, j.K, m0, mc, k0, kc, MRT, ap);
      pack_b<NVT>(j.b, j.dt, j.N, k0, kc, n0 + direct * NR, nc - direct * NR, bp);
      for (int64_t p = 0; p < panels; p++) {
        const bool in_place = p < direct;
        const float* bpan = in_place ? static_cast<const float*>(j.b) + k0 * j.N + n0 + p * NR
                                     : bp + (p - direct) * NR * kc;
        const int64_t ldb = in_place ? j.N : NR, cols = std::min(NR, nc - p * NR);
        for (int64_t i0 = 0; i0 < mc; i0 += MRT)
          micro_rows<NVT, MRT>(std::min<int64_t>(MRT, mc - i0), kc, ap + i0 * kc, bpan, ldb,
                               c + i0 * ldc + p * NR, ldc, k0 > 0, cols);
      }
    }
    if (!direct_c) store_tile(cb, j, m0, mc, n0, nc);
  }
}

void run(const Job& j, int64_t t0, int64_t t1) {
  if (j.M <= SMALL_M_MAX) tasks<SMALL_M, NVS>(j, t0, t1);
  else tasks<MR, NV>(j, t0, t1);
}

#if defined(LLMK_MATMUL_GEMV)  // the dense matmul's streaming small-M path (matmul.cpp defines it)
#include "matmul_gemv.h"
#endif
