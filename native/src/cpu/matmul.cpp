#include "matmul.h"
#include <algorithm>
#include <vector>
#include "../core/half.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

// Converts rows [r0, r1) of a [rows, cols] matrix to float32.
void to_f32(const void* src, DType t, int64_t r0, int64_t r1, int64_t cols, float* dst) {
  for (int64_t i = 0; i < (r1 - r0) * cols; i++) dst[i] = load_as_f32(src, r0 * cols + i, int(t));
}

// acc[i, 0:nb] += Σ_k arow[i, k] · B[k, n0:n0+nb] for k in [k0, k1) and i < mb. Compiled twice and
// picked at load time (AVX2+FMA where the CPU has it) since shipped binaries cannot use -march=native.
__attribute__((target_clones("arch=haswell", "default")))
void block_kernel(const float* arow, int64_t K, const float* B, int64_t N, int64_t n0, int64_t nb, int64_t k0,
                  int64_t k1, int64_t mb, float* acc, int64_t ldacc) {
  for (int64_t i = 0; i < mb; i++) {
    float* c = acc + i * ldacc;
    for (int64_t kk = k0; kk < k1; kk++) {
      const float av = arow[i * K + kk];
      const float* brow = B + kk * N + n0;
      for (int64_t j = 0; j < nb; j++) c[j] += av * brow[j];
    }
  }
}

}  // namespace

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype) {
  // B as float32 once (for halves); rows of A converted per block. The inner loop runs along N over
  // contiguous rows of B and C so the compiler vectorises it.
  std::vector<float> b32;
  const float* B = static_cast<const float*>(b);
  if (dtype != DType::F32) {
    b32.resize(size_t(K * N));
    parallel_for(K, 64, [&](int64_t s, int64_t e) { to_f32(b, dtype, s, e, N, b32.data() + s * N); });
    B = b32.data();
  }
  constexpr int64_t MB = 4, KB = 256, NB = 512;
  parallel_for((M + MB - 1) / MB, 1, [&](int64_t bs, int64_t be) {
    std::vector<float> arow(size_t(MB * K)), acc(size_t(MB * NB));
    for (int64_t blk = bs; blk < be; blk++) {
      int64_t m0 = blk * MB, m1 = std::min(M, m0 + MB), mb = m1 - m0;
      to_f32(a, dtype, m0, m1, K, arow.data());
      for (int64_t n0 = 0; n0 < N; n0 += NB) {
        int64_t nb = std::min(NB, N - n0);
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t k0 = 0; k0 < K; k0 += KB) {
          block_kernel(arow.data(), K, B, N, n0, nb, k0, std::min(K, k0 + KB), mb, acc.data(), NB);
        }
        for (int64_t i = 0; i < mb; i++)
          for (int64_t j = 0; j < nb; j++) store_from_f32(out, (m0 + i) * N + n0 + j, int(dtype), acc[size_t(i * NB + j)]);
      }
    }
  });
}

}  // namespace llmk::cpu
