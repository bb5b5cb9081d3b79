// Whole-matrix driver of the dense CPU matmul, included once per instruction set by matmul.cpp right after
// matmul_kernel.h (same ISA region and namespace). No include guard on purpose. Uses from matmul.cpp: Job,
// MC, KC, SMALL_M, SMALL_M_MAX, scratch, from the ISA's namespace MR, NV, NVS, PACK_B_MIN_M, and for the
// streaming path (matmul_gemv.h) GEMV_M_MAX, GEMV_U, gemv_chunk.
//
// Blocking as in BLIS/GotoBLAS: a task is a block of rows × up to NT_MAX columns of C. Per K block of KC the
// task packs its B columns once into panels of NR (an L3/L2-resident block, reused by every row of the task),
// then per MC rows packs A into slivers of MR (an L2-resident block) and runs every (panel, sliver) pair
// through the micro-kernel, panels outer, so each KC×NR panel stays in L1 across the slivers. Float32 C is
// accumulated in the output itself across K blocks (the micro-kernel prefetches it); half outputs go through
// a float32 tile of MC rows.

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

// Tasks [t0, t1) of the job's grid (j.row_tasks × column blocks of j.nt).
template <int MRT, int NVT>
void tasks(const Job& j, int64_t t0, int64_t t1) {
  constexpr int64_t NR = NVT * L, MCB = MC / MRT * MRT;  // row blocks: whole slivers
  const bool f32 = j.dt == 0;
  const int64_t col_tasks = (j.N + j.nt - 1) / j.nt;
  float* ap = scratch(0, MCB * KC);
  float* bp = scratch(1, KC * ((j.nt + NR - 1) / NR * NR));
  float* cb = f32 ? nullptr : scratch(2, MCB * j.nt);
  for (int64_t t = t0; t < t1; t++) {
    const int64_t m0 = (t / col_tasks) * j.mt, mt = std::min(j.mt, j.M - m0);
    const int64_t n0 = (t % col_tasks) * j.nt, nc = std::min(j.nt, j.N - n0);
    const int64_t panels = (nc + NR - 1) / NR;
    // Panels read in place (float32, B not packed): all full ones; the ragged last one is packed.
    const int64_t direct = (f32 && j.M < PACK_B_MIN_M) ? nc / NR : 0;
    // Float32: every row of the task per K block; otherwise MC rows at a time through cb.
    const int64_t rstep = f32 ? mt : MCB;
    for (int64_t r0 = m0; r0 < m0 + mt; r0 += rstep) {
      const int64_t rows = std::min(rstep, m0 + mt - r0);
      for (int64_t k0 = 0; k0 < j.K; k0 += KC) {
        const int64_t kc = std::min(KC, j.K - k0);
        pack_b<NVT>(j.b, j.dt, j.N, k0, kc, n0 + direct * NR, nc - direct * NR, bp);
        for (int64_t i0 = r0; i0 < r0 + rows; i0 += MCB) {
          const int64_t mc = std::min(MCB, r0 + rows - i0);
          pack_a(j.a, j.dt, j.K, i0, mc, k0, kc, MRT, ap);
          float* c = f32 ? static_cast<float*>(j.out) + i0 * j.N + n0 : cb + (i0 - r0) * nc;
          const int64_t ldc = f32 ? j.N : nc;
          for (int64_t p = 0; p < panels; p++) {
            const bool in_place = p < direct;
            const float* bpan = in_place ? static_cast<const float*>(j.b) + k0 * j.N + n0 + p * NR
                                         : bp + (p - direct) * NR * kc;
            const int64_t ldb = in_place ? j.N : NR, cols = std::min(NR, nc - p * NR);
            for (int64_t s = 0; s < mc; s += MRT)
              micro_rows<NVT, MRT>(std::min<int64_t>(MRT, mc - s), kc, ap + s * kc, bpan, ldb, c + s * ldc + p * NR,
                                   ldc, k0 > 0, cols);
          }
        }
      }
      if (!f32) store_tile(cb, j, r0, rows, n0, nc);
    }
  }
}

void run(const Job& j, int64_t t0, int64_t t1) {
  if (j.M <= SMALL_M_MAX) tasks<SMALL_M, NVS>(j, t0, t1);
  else tasks<MR, NV>(j, t0, t1);
}

#include "matmul_gemv.h"
