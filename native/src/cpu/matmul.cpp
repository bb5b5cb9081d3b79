#include "matmul.h"
#include <algorithm>
#include <vector>
#include "../core/half.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

constexpr int64_t MB = 4, KB = 256, NB = 512;  // rows of A, depth, columns of B per block

// Converts rows [r0, r1) of a [rows, cols] matrix to float32.
void to_f32(const void* src, DType t, int64_t r0, int64_t r1, int64_t cols, float* dst) {
  for (int64_t i = 0; i < (r1 - r0) * cols; i++) dst[i] = load_as_f32(src, r0 * cols + i, int(t));
}

// acc[i, 0:nb] += Σ_k arow[i, k] · B[k, n0:n0+nb] over k in [k0, k1), for MB rows at once: each row of B
// is loaded once for the four accumulator rows (which stay in L1). Compiled twice and picked at load time
// (AVX2+FMA where the CPU has it) since shipped binaries must run on any x86-64 (no host-specific -march flags).
__attribute__((target_clones("arch=haswell", "default")))
void block_kernel(const float* arow, int64_t K, const float* B, int64_t N, int64_t n0, int64_t nb, int64_t k0,
                  int64_t k1, float* acc) {
  float* c0 = acc;
  float* c1 = acc + NB;
  float* c2 = acc + 2 * NB;
  float* c3 = acc + 3 * NB;
  for (int64_t kk = k0; kk < k1; kk++) {
    const float a0 = arow[kk], a1 = arow[K + kk], a2 = arow[2 * K + kk], a3 = arow[3 * K + kk];
    const float* brow = B + kk * N + n0;
    for (int64_t j = 0; j < nb; j++) {
      const float b = brow[j];
      c0[j] += a0 * b;
      c1[j] += a1 * b;
      c2[j] += a2 * b;
      c3[j] += a3 * b;
    }
  }
}

}  // namespace

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype) {
  // B as float32 once (for halves); rows of A converted per block (zero-padded to MB rows).
  std::vector<float> b32;
  const float* B = static_cast<const float*>(b);
  if (dtype != DType::F32) {
    b32.resize(size_t(K * N));
    parallel_for(K, 64, [&](int64_t s, int64_t e) { to_f32(b, dtype, s, e, N, b32.data() + s * N); });
    B = b32.data();
  }
  const int64_t mblocks = (M + MB - 1) / MB, nblocks = (N + NB - 1) / NB;
  // Tasks are (row block, column block) pairs so that small M still uses every thread.
  parallel_for(mblocks * nblocks, 1, [&](int64_t s, int64_t e) {
    std::vector<float> arow(size_t(MB * K)), acc(size_t(MB * NB));
    int64_t loaded = -1;
    for (int64_t task = s; task < e; task++) {
      const int64_t mi = task / nblocks, ni = task % nblocks;
      const int64_t m0 = mi * MB, mb = std::min(MB, M - m0);
      if (mi != loaded) {
        std::fill(arow.begin(), arow.end(), 0.f);
        to_f32(a, dtype, m0, m0 + mb, K, arow.data());
        loaded = mi;
      }
      const int64_t n0 = ni * NB, nb = std::min(NB, N - n0);
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t k0 = 0; k0 < K; k0 += KB) block_kernel(arow.data(), K, B, N, n0, nb, k0, std::min(K, k0 + KB), acc.data());
      for (int64_t i = 0; i < mb; i++)
        for (int64_t j = 0; j < nb; j++) store_from_f32(out, (m0 + i) * N + n0 + j, int(dtype), acc[size_t(i * NB + j)]);
    }
  });
}

}  // namespace llmk::cpu
