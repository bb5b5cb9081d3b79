#include "matmul.h"
#include "common.cuh"

namespace llmk::cuda {
namespace {

// 64x64 output tile per block, 16x16 threads, each computing a 4x4 micro-tile from shared-memory
// panels of A (64x16) and B (16x64). Tails are zero-filled on load and masked on store.
constexpr int TM = 64, TN = 64, TK = 16;

// No __launch_bounds__: with (256) ptxas capped the kernel at 64 registers and spilled 8 bytes;
// unbounded it uses 64-72 registers without spilling on sm_80..sm_90 (-Xptxas -v).
template <typename T>
__global__ void matmul_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                              int64_t M, int64_t N, int64_t K) {
  __shared__ float As[TK][TM + 4];
  __shared__ float Bs[TK][TN + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = int64_t(blockIdx.y) * TM, n0 = int64_t(blockIdx.x) * TN;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += TK) {
    for (int i = threadIdx.x; i < TM * TK; i += 256) {
      int r = i / TK, kk = i % TK;
      int64_t gm = m0 + r, gk = k0 + kk;
      As[kk][r] = (gm < M && gk < K) ? to_f32(a[gm * K + gk]) : 0.f;
    }
    for (int i = threadIdx.x; i < TK * TN; i += 256) {
      int kk = i / TN, cidx = i % TN;
      int64_t gk = k0 + kk, gn = n0 + cidx;
      Bs[kk][cidx] = (gk < K && gn < N) ? to_f32(b[gk * N + gn]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TK; kk++) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; i++) av[i] = As[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int64_t gm = m0 + ty * 4 + i;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      int64_t gn = n0 + tx * 4 + j;
      if (gn < N) c[gm * N + gn] = from_f32<T>(acc[i][j]);
    }
  }
}

// grid.y is limited to 65535 tiles of rows: taller A runs as several launches over row bands.
constexpr int64_t kMaxRowsPerLaunch = int64_t(65535) * TM;

template <typename T>
void launch(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, void* stream) {
  for (int64_t m0 = 0; m0 < M; m0 += kMaxRowsPerLaunch) {
    const int64_t rows = M - m0 < kMaxRowsPerLaunch ? M - m0 : kMaxRowsPerLaunch;
    dim3 grid(unsigned(ceil_div(N, TN)), unsigned(ceil_div(rows, TM)));
    matmul_kernel<T><<<grid, 256, 0, as_stream(stream)>>>(static_cast<const T*>(a) + m0 * K, static_cast<const T*>(b),
                                                          static_cast<T*>(out) + m0 * N, rows, N, K);
    check_launch("matmul");
  }
}

}  // namespace

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype, void* stream) {
  if (M == 0 || N == 0) return;
  if (ceil_div(N, TN) > 0x7fffffff) throw Error(ErrCode::Shape, "matmul: N too large for the CUDA tiled kernel");
  LLMK_DISPATCH_FLOAT(dtype, T, launch<T>(a, b, out, M, N, K, stream));
}

}  // namespace llmk::cuda
