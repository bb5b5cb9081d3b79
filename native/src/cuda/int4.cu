// INT4 weight-only matmul, CUDA kernels (docs/architecture.md §4.3).
//
// Paths of int4_matmul:
//  * mma (x float16/bfloat16, prepared layout, 16-byte aligned x): one kernel template over tile
//    configurations. Weights arrive as the tuned layout of cpu/int4.h: each lane's 16 bytes of a
//    16(n)×64(k) block are exactly its B fragments for 4 k16 steps × 2 n8 tiles of mma.m16n8k16, so
//    they are dequantised in registers (nibble | exponent magic → (q − zero) exactly in half → × scale)
//    and fed straight to the tensor cores. x and weights stream through a multi-stage cp.async pipeline.
//      M ≤ 16  : 16×128 tiles (4 warps), 4 stages, split-K to fill the SMs (memory-bound GEMV regime;
//                each packed weight byte is read once).
//      M ≤ 64  : 64×128 tiles (4 warps), 4 stages (+ split-K when the grid is small).
//      M > 64  : 128×128 tiles (8 warps), 4 stages (+ split-K when the grid is small).
//    Other tile configurations (kTiles) stay selectable with LLMK_INT4_TILE=<id> for tuning.
//    N tails (N % 64 ≠ 0, N % 16 == 0) are guarded per 16-row block; K tails (K % 64 ≠ 0) per k16 step.
//    Split-K partials (float32) are reduced, with the bias, by a second small kernel.
//  * general (anything else: float32 x, shapes with N or K not a multiple of 16, x or prepared weights
//    not 16-byte aligned, e.g. a view with an odd element offset): one warp per output column and 8
//    rows, float32 math, scalar loads only, reads either layout; launched in row blocks of at most
//    65535·8 rows (grid.y limit), so any M works.
#include "int4.h"
#include "int4_lean.h"  // LLMK_INT4_LEAN=1 candidate (issue 17), off by default

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "common.cuh"
#include "ptx.cuh"
#include "../core/dtype.h"
#include "../core/error.h"

namespace llmk::cuda {

namespace {

// ---------------------------------------------------------------- small device helpers

__device__ __forceinline__ float ld_scale(const void* p, int64_t i, int dt) { return load_as_f32(p, i, dt); }

template <typename T> struct MmaTraits;
template <> struct MmaTraits<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // half 1024 + q for a nibble q in the low mantissa bits
  static constexpr float kBase = 1024.f;
  __device__ __forceinline__ static T2 splat(float v) { return __float2half2_rn(v); }
};
template <> struct MmaTraits<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // bfloat16 128 + q
  static constexpr float kBase = 128.f;
  __device__ __forceinline__ static T2 splat(float v) { return __float2bfloat162_rn(v); }
};

template <typename T2>
__device__ __forceinline__ uint32_t as_u32(T2 v) { return *reinterpret_cast<uint32_t*>(&v); }
template <typename T2>
__device__ __forceinline__ T2 from_u32(uint32_t v) { return *reinterpret_cast<T2*>(&v); }

// ---------------------------------------------------------------- tensor-core kernel

template <typename T, int BM, int BN, int WM, int WN>
struct MmaCfg {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int kWTM = BM / WM, kWTN = BN / WN;
  static constexpr int kMT = kWTM / 16, kNB = kWTN / 16;
  static constexpr int kAStage = BM * 64;     // elements of T
  static constexpr int kBStage = BN / 16 * 512;  // bytes
  static constexpr int kSStage = 4 * BN * 4;     // bytes: up to 4 groups of BN scales (≤ 4 bytes each)
  static constexpr int kZStage = 4 * BN;         // bytes: up to 4 groups of BN zero points
  static_assert(kWTM % 16 == 0 && kWTN % 16 == 0, "warp tile");
  static int smem_bytes(int stages) { return stages * (kAStage * int(sizeof(T)) + kBStage + kSStage + kZStage); }
};

template <typename T, int BM, int BN, int WM, int WN, int STAGES>
__global__ void __launch_bounds__(WM* WN * 32)
    int4_mma_kernel(const T* __restrict__ x, const uint8_t* __restrict__ qw, const void* __restrict__ scales,
                    int sdt, const uint8_t* __restrict__ zeros, const void* __restrict__ bias, int bdt,
                    T* __restrict__ y, float* __restrict__ partial, int M, int N, int K, int group_shift,
                    int kb_per_split) {
  // group_shift = log2(group) for power-of-two groups, -1 when the whole row is one group (group = K):
  // no integer division in the loop.
  using Cfg = MmaCfg<T, BM, BN, WM, WN>;
  using Tr = MmaTraits<T>;
  using T2 = typename Tr::T2;
  constexpr int kThreads = Cfg::kThreads, kMT = Cfg::kMT, kNB = Cfg::kNB;
  extern __shared__ uint4 smem_raw[];
  T* sA = reinterpret_cast<T*>(smem_raw);
  uint8_t* sB = reinterpret_cast<uint8_t*>(sA + STAGES * Cfg::kAStage);
  uint8_t* sS = sB + STAGES * Cfg::kBStage;
  uint8_t* sZ = sS + STAGES * Cfg::kSStage;
  const int esize = sdt == 0 ? 4 : 2;
  auto group_of = [group_shift](int k) { return group_shift >= 0 ? k >> group_shift : 0; };

  const int KB = (K + 63) / 64;
  const int NB16 = N / 16;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const int m0 = blockIdx.y * BM, nb0 = blockIdx.x * (BN / 16);
  const int kb_begin = blockIdx.z * kb_per_split;
  const int kb_end = min(KB, kb_begin + kb_per_split);
  const int nkb = kb_end - kb_begin;

  auto load_stage = [&](int stage, int kb) {
    T* a = sA + stage * Cfg::kAStage;
#pragma unroll
    for (int i = tid; i < BM * 8; i += kThreads) {
      const int r = i >> 3, c = i & 7;
      const int gm = m0 + r, gk = kb * 64 + c * 8;
      const bool ok = gm < M && gk < K;
      const T* src = ok ? x + int64_t(gm) * K + gk : x;
      cp_async16(smem_u32(a + r * 64 + ((c ^ (r & 7)) * 8)), src, ok);
    }
    uint8_t* b = sB + stage * Cfg::kBStage;
#pragma unroll
    for (int i = tid; i < (BN / 16) * 32; i += kThreads) {
      const int j = i >> 5, c = i & 31;
      const int nb = nb0 + j;
      const bool ok = nb < NB16;
      const uint8_t* src = ok ? qw + (int64_t(nb) * KB + kb) * 512 + c * 16 : qw;
      cp_async16(smem_u32(b + j * 512 + c * 16), src, ok);
    }
    // Scales (and zeros) of the groups this k-block touches, [G, N] rows: BN contiguous values each.
    const int g_first = group_of(kb * 64), g_last = group_of(min(kb * 64 + 64, K) - 1);
    const int s_chunks = BN * esize / 16;  // ≤ 32 < kThreads
    uint8_t* sst = sS + stage * Cfg::kSStage;
    for (int slot = 0; slot <= g_last - g_first; slot++) {
      if (tid < s_chunks) {
        const int n = nb0 * 16 + tid * 16 / esize;
        const bool ok = n < N;
        const uint8_t* src = ok ? static_cast<const uint8_t*>(scales) + (int64_t(g_first + slot) * N + n) * esize : qw;
        cp_async16(smem_u32(sst + slot * BN * esize + tid * 16), src, ok);
      }
      if (zeros && tid < BN / 16) {
        const int n = nb0 * 16 + tid * 16;
        const bool ok = n < N;
        const uint8_t* src = ok ? zeros + int64_t(g_first + slot) * N + n : qw;
        cp_async16(smem_u32(sZ + stage * Cfg::kZStage + slot * BN + tid * 16), src, ok);
      }
    }
  };

#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if (s < nkb) load_stage(s, kb_begin + s);
    cp_async_commit();
  }

  float acc[kMT][kNB * 2][4];
#pragma unroll
  for (int i = 0; i < kMT; i++)
#pragma unroll
    for (int j = 0; j < kNB * 2; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  // Per-thread scale / zero cache for its two rows of each 16-row block (reloaded when the group changes).
  int cur_group = -1;
  T2 s2[kNB][2], z2[kNB][2];
  const int row_in_blk = lane >> 2;

  for (int it = 0; it < nkb; it++) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    {
      const int nxt = it + STAGES - 1;
      if (nxt < nkb) load_stage(nxt % STAGES, kb_begin + nxt);
      cp_async_commit();
    }
    const int st = it % STAGES;
    const int kb = kb_begin + it;
    const T* a_st = sA + st * Cfg::kAStage;
    uint4 bw[kNB];
#pragma unroll
    for (int j = 0; j < kNB; j++)
      bw[j] = *reinterpret_cast<const uint4*>(sB + st * Cfg::kBStage + (wn * kNB + j) * 512 + lane * 16);

#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
      const int k = kb * 64 + kc * 16;
      if (k >= K) break;
      const int gi = group_of(k);
      if (gi != cur_group) {
        cur_group = gi;
        const int slot = gi - group_of(kb * 64);
#pragma unroll
        for (int j = 0; j < kNB; j++) {
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int ln = (wn * kNB + j) * 16 + h * 8 + row_in_blk;  // column within the CTA tile
            const float s = ld_scale(sS + st * Cfg::kSStage, slot * BN + ln, sdt);
            const float z = zeros ? float(sZ[st * Cfg::kZStage + slot * BN + ln]) : 8.f;
            s2[j][h] = Tr::splat(s);
            z2[j][h] = Tr::splat(Tr::kBase + z);
          }
        }
      }
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; mt++) {
        const int mi = lane >> 3, r = lane & 7;
        const int row = wm * Cfg::kWTM + mt * 16 + r + (mi & 1) * 8;
        const int chunk = kc * 2 + (mi >> 1);
        ldmatrix_x4(a[mt], smem_u32(a_st + row * 64 + ((chunk ^ (row & 7)) * 8)));
      }
#pragma unroll
      for (int j = 0; j < kNB; j++) {
        const uint32_t w = kc == 0 ? bw[j].x : kc == 1 ? bw[j].y : kc == 2 ? bw[j].z : bw[j].w;
        uint32_t b[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const T2 v = from_u32<T2>(((w >> (4 * i)) & 0x000F000Fu) | Tr::kMagic);
          b[i] = as_u32(__hmul2(__hsub2(v, z2[j][i >> 1]), s2[j][i >> 1]));
        }
#pragma unroll
        for (int mt = 0; mt < kMT; mt++) {
          Mma16816<T>::run(acc[mt][2 * j], a[mt], b[0], b[1]);
          Mma16816<T>::run(acc[mt][2 * j + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();

  // Epilogue.
#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int j = 0; j < kNB; j++) {
      const int nb = nb0 + wn * kNB + j;
      if (nb >= NB16) continue;
#pragma unroll
      for (int sub = 0; sub < 2; sub++) {
        const int col = nb * 16 + sub * 8 + 2 * (lane & 3);
        float b0 = 0.f, b1 = 0.f;
        if (!partial && bias) { b0 = load_as_f32(bias, col, bdt); b1 = load_as_f32(bias, col + 1, bdt); }
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int row = m0 + wm * Cfg::kWTM + mt * 16 + row_in_blk + h * 8;
          if (row >= M) continue;
          const float v0 = acc[mt][2 * j + sub][2 * h], v1 = acc[mt][2 * j + sub][2 * h + 1];
          if (partial) {
            *reinterpret_cast<float2*>(partial + (int64_t(blockIdx.z) * M + row) * N + col) = make_float2(v0, v1);
          } else {
            T2 o;
            o.x = from_f32<T>(v0 + b0);
            o.y = from_f32<T>(v1 + b1);
            *reinterpret_cast<T2*>(y + int64_t(row) * N + col) = o;
          }
        }
      }
    }
}

template <typename T>
__global__ void splitk_reduce_kernel(const float* __restrict__ partial, int splits, const void* __restrict__ bias,
                                     int bdt, T* __restrict__ y, int64_t M, int64_t N) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < splits; s++) v += partial[s * total + i];
    if (bias) v += load_as_f32(bias, i % N, bdt);
    y[i] = from_f32<T>(v);
  }
}

// ---------------------------------------------------------------- general path

// Nibble (n, k) of either layout.
template <bool PREP>
__device__ __forceinline__ int nibble_at(const uint8_t* q, int64_t n, int64_t k, int64_t K) {
  if (!PREP) return (q[n * (K / 2) + (k >> 1)] >> ((k & 1) * 4)) & 15;
  const int64_t KB = (K + 63) / 64;
  const int64_t nb = n >> 4, r = n & 15, g = r & 7, kb = k >> 6, kk = k & 63, kc = kk >> 4, j = kk & 15;
  const int64_t t = (j & 7) >> 1;
  const int slot = int((r >= 8 ? 2 : 0) + (j >= 8 ? 1 : 0) + ((j & 1) ? 4 : 0));
  // The little-endian 32-bit word holds slot i in bits 4i..4i+3: byte i/2, nibble i&1. Read the byte,
  // so this path makes no alignment assumption about q.
  const uint8_t b = q[(nb * KB + kb) * 512 + ((g * 4 + t) * 4 + kc) * 4 + (slot >> 1)];
  return int((b >> ((slot & 1) * 4)) & 15u);
}

constexpr int kGenRows = 8;   // activation rows per warp
constexpr int kGenWarps = 8;  // output columns per block

template <typename T, bool PREP>
__global__ void __launch_bounds__(kGenWarps * 32)
    int4_general_kernel(const T* __restrict__ x, const uint8_t* __restrict__ q, const void* __restrict__ scales,
                        int sdt, const uint8_t* __restrict__ zeros, const void* __restrict__ bias, int bdt,
                        T* __restrict__ y, int64_t M, int64_t N, int64_t K, int64_t group) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kGenWarps + (threadIdx.x >> 5);
  const int64_t m0 = int64_t(blockIdx.y) * kGenRows;
  if (n >= N) return;
  const int64_t G = K / group;
  float acc[kGenRows];
#pragma unroll
  for (int i = 0; i < kGenRows; i++) acc[i] = 0.f;
  int64_t cur = -1;
  float s = 0.f, z = 8.f;
  for (int64_t k = 2 * lane; k < K; k += 64) {
    const int64_t gi = k / group;  // group is even, so k and k+1 share it
    if (gi != cur) {
      cur = gi;
      const int64_t idx = PREP ? gi * N + n : n * G + gi;
      s = ld_scale(scales, idx, sdt);
      z = zeros ? float(zeros[idx]) : 8.f;
    }
    const float w0 = s * (float(nibble_at<PREP>(q, n, k, K)) - z);
    const float w1 = s * (float(nibble_at<PREP>(q, n, k + 1, K)) - z);
#pragma unroll
    for (int i = 0; i < kGenRows; i++) {
      const int64_t m = m0 + i;
      if (m < M) acc[i] += to_f32(x[m * K + k]) * w0 + to_f32(x[m * K + k + 1]) * w1;
    }
  }
#pragma unroll
  for (int i = 0; i < kGenRows; i++) {
    float v = acc[i];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    acc[i] = v;
  }
  if (lane == 0) {
    const float b = bias ? load_as_f32(bias, n, bdt) : 0.f;
#pragma unroll
    for (int i = 0; i < kGenRows; i++)
      if (m0 + i < M) y[(m0 + i) * N + n] = from_f32<T>(acc[i] + b);
  }
}

// ---------------------------------------------------------------- conversions

template <typename T>
__global__ void gather_cols_kernel(const T* __restrict__ x, const int32_t* __restrict__ perm, T* __restrict__ out,
                                   int64_t M, int64_t K, int* err_flag) {
  const int64_t total = M * K;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / K, j = i % K;
    const int32_t p = perm[j];
    if (p < 0 || p >= K) {
      if (err_flag) atomicExch(err_flag, 1);
      out[i] = from_f32<T>(0.f);
    } else {
      out[i] = x[m * K + p];
    }
  }
}

__global__ void quantize_kernel(const void* __restrict__ w, int wdt, int64_t N, int64_t K, int64_t group, bool sym,
                                uint8_t* __restrict__ q, void* __restrict__ scales, int sdt,
                                uint8_t* __restrict__ zeros) {
  const int64_t G = K / group;
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= N * G) return;
  const int64_t n = i / G, g = i % G, base = n * K + g * group;
  float mn = 0.f, mx = 0.f, amax = 0.f;
  for (int64_t j = 0; j < group; j++) {
    const float v = load_as_f32(w, base + j, wdt);
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
    amax = fmaxf(amax, fabsf(v));
  }
  float s;
  int zero = 8;
  if (sym) {
    s = amax / 7.f;
  } else {
    s = (mx - mn) / 15.f;
  }
  store_from_f32(scales, i, sdt, s);
  s = load_as_f32(scales, i, sdt);  // the rounded scale
  if (!sym) {
    zero = s > 0.f ? int(fminf(15.f, fmaxf(0.f, rintf(-mn / s)))) : 8;
    zeros[i] = uint8_t(zero);
  }
  for (int64_t j = 0; j < group; j += 2) {
    int qq[2];
    for (int e = 0; e < 2; e++) {
      const float v = load_as_f32(w, base + j + e, wdt);
      const float r = s > 0.f ? rintf(__fdiv_rn(v, s)) : 0.f;
      qq[e] = r != r ? zero : int(fminf(15.f, fmaxf(0.f, r + float(zero))));
    }
    q[n * (K / 2) + (g * group + j) / 2] = uint8_t(qq[0] | (qq[1] << 4));
  }
}

__global__ void dequantize_kernel(const uint8_t* __restrict__ q, const void* __restrict__ scales, int sdt,
                                  const uint8_t* __restrict__ zeros, int64_t N, int64_t K, int64_t group,
                                  void* __restrict__ out, int odt) {
  const int64_t G = K / group, total = N * (K / 2);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / (K / 2), k = (i % (K / 2)) * 2, gi = k / group;
    const float s = load_as_f32(scales, n * G + gi, sdt);
    const float z = zeros ? float(zeros[n * G + gi]) : 8.f;
    const uint8_t b = q[i];
    store_from_f32(out, n * K + k, odt, s * (float(b & 15) - z));
    store_from_f32(out, n * K + k + 1, odt, s * (float(b >> 4) - z));
  }
}

__global__ void pack_prepared_kernel(const uint8_t* __restrict__ q, int64_t N, int64_t K, uint32_t* __restrict__ out) {
  const int64_t KB = (K + 63) / 64, total = (N / 16) * KB * 128;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t blk = i / 128, w = i % 128, nb = blk / KB, kb = blk % KB;
    const int lane = int(w / 4), kc = int(w % 4), g = lane >> 2, t = lane & 3;
    uint32_t word = 0;
#pragma unroll
    for (int slot = 0; slot < 8; slot++) {
      const int64_t row = nb * 16 + g + ((slot & 2) ? 8 : 0);
      const int64_t k = kb * 64 + kc * 16 + 2 * t + ((slot & 1) ? 8 : 0) + ((slot & 4) ? 1 : 0);
      const uint32_t v = k < K ? uint32_t((q[row * (K / 2) + (k >> 1)] >> ((k & 1) * 4)) & 15) : 0u;
      word |= v << (4 * slot);
    }
    out[i] = word;
  }
}

__global__ void unpack_prepared_kernel(const uint8_t* __restrict__ pq, int64_t N, int64_t K, uint8_t* __restrict__ q) {
  const int64_t total = N * (K / 2);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / (K / 2), k = (i % (K / 2)) * 2;
    q[i] = uint8_t(nibble_at<true>(pq, n, k, K) | (nibble_at<true>(pq, n, k + 1, K) << 4));
  }
}

template <typename E>
__global__ void transpose_kernel(const E* __restrict__ in, int64_t R, int64_t C, E* __restrict__ out) {
  const int64_t total = R * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    out[c * R + r] = in[i];
  }
}

int grid_for(int64_t total, int threads) {
  return int(std::max<int64_t>(1, std::min<int64_t>(ceil_div(total, threads), int64_t(sm_count()) * 32)));
}

void transpose_any(const void* in, int64_t R, int64_t C, int esize, void* out, cudaStream_t st) {
  const int grid = grid_for(R * C, 256);
  if (esize == 4) transpose_kernel<uint32_t><<<grid, 256, 0, st>>>(static_cast<const uint32_t*>(in), R, C, static_cast<uint32_t*>(out));
  else if (esize == 2) transpose_kernel<uint16_t><<<grid, 256, 0, st>>>(static_cast<const uint16_t*>(in), R, C, static_cast<uint16_t*>(out));
  else transpose_kernel<uint8_t><<<grid, 256, 0, st>>>(static_cast<const uint8_t*>(in), R, C, static_cast<uint8_t*>(out));
  check_launch("int4 transpose");
}

// ---------------------------------------------------------------- planning

// Tile configurations of the mma kernel: {BM, BN} (warps and stages in run_matmul).
struct Tile { int bm, bn; const char* name; };
constexpr Tile kTiles[] = {{16, 64, "mma16"}, {64, 128, "mma64"}, {128, 128, "mma128"},
                           {128, 128, "mma128w8"}, {16, 128, "mma16n128"}, {128, 256, "mma128n256"}};
constexpr int kNumTiles = int(sizeof(kTiles) / sizeof(kTiles[0]));

struct Plan {
  int cfg = -1;  // -1 general, else an index into kTiles
  int splits = 1, kb_per_split = 0;
  int bm = 0, bn = 0;
};

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) % 16) == 0; }

// weights_aligned: prepared qweight, scales and zeros all 16-byte aligned (cp.async sources). Tensors
// from Tensor::empty always are; a caller of the C++ API passing offset views gets the general path.
Plan make_plan(int64_t M, int64_t N, int64_t K, int xdt, bool prepared, const void* x, int sms,
               bool weights_aligned = true) {
  Plan p;
  const bool aligned = (x == nullptr || aligned16(x)) && weights_aligned;
  if (!prepared || !is_half(DType(xdt)) || !int4_fast_layout(N, K) || !aligned || M <= 0 ||
      M > int64_t(65535) * 128 || N > int64_t(1) << 30 || K > int64_t(1) << 30) {
    return p;
  }
  // Defaults from H200 measurements at the bench shapes (native/tests/test_int4 with LLMK_INT4_TIME=1):
  // 16×128 tiles beat 16×64 by 1.25-1.4× for M ≤ 16, 64×128 is best for M ≤ 64, and 8 warps on
  // 128×128 tiles beat 4 warps by 1.1-1.4× above that.
  p.cfg = M <= 16 ? 4 : M <= 64 ? 1 : 3;
  // Developer knob for tuning: LLMK_INT4_TILE=<id> forces a tile configuration (kTiles below).
  if (const char* e = std::getenv("LLMK_INT4_TILE")) {
    const int id = std::atoi(e);
    if (id >= 0 && id < kNumTiles) p.cfg = id;
  }
  p.bm = kTiles[p.cfg].bm;
  p.bn = kTiles[p.cfg].bn;
  if (ceil_div(M, p.bm) > 65535) { p.cfg = 2; p.bm = kTiles[2].bm; p.bn = kTiles[2].bn; }
  const int64_t KB = ceil_div(K, 64);
  const int64_t ctas = ceil_div(N, p.bn) * ceil_div(M, p.bm);
  const int64_t target = int64_t(sms) * (p.bm == 16 ? 4 : 2);
  const int64_t min_kb = p.bm == 16 ? 4 : 8;
  int64_t splits = 1;
  if (ctas < target) splits = std::min<int64_t>(ceil_div(target, ctas), std::max<int64_t>(1, KB / min_kb));
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, 64));
  const int64_t per = ceil_div(KB, splits);
  p.kb_per_split = int(per);
  p.splits = int(ceil_div(KB, per));
  return p;
}

constexpr int kStagesSmall = 6, kStagesBig = 4;

// log2(group) for a power of two; -1 for the single-group case (group == K, any K).
int group_shift(int64_t group, int64_t K) {
  if ((group & (group - 1)) == 0) {
    int s = 0;
    while ((int64_t(1) << s) < group) s++;
    return s;
  }
  LLMK_CHECK(group == K, Internal, "int4: group %lld is neither a power of two nor K", (long long)group);
  return -1;
}

template <typename T, int BM, int BN, int WM, int WN, int STAGES>
void launch_mma(const Plan& p, const T* x, const uint8_t* qw, const void* scales, int sdt, const uint8_t* zeros,
                const void* bias, int bdt, T* y, float* partial, int64_t M, int64_t N, int64_t K, int64_t group,
                cudaStream_t st) {
  using Cfg = MmaCfg<T, BM, BN, WM, WN>;
  const int smem = Cfg::smem_bytes(STAGES);
  auto kern = int4_mma_kernel<T, BM, BN, WM, WN, STAGES>;
  if (smem > 48 * 1024) cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)), "int4 mma smem");
  dim3 grid(unsigned(ceil_div(N, BN)), unsigned(ceil_div(M, BM)), unsigned(p.splits));
  kern<<<grid, Cfg::kThreads, smem, st>>>(x, qw, scales, sdt, zeros, bias, bdt, y, p.splits > 1 ? partial : nullptr,
                                         int(M), int(N), int(K), group_shift(group, K), p.kb_per_split);
  check_launch("int4_mma_kernel");
  if (p.splits > 1) {
    splitk_reduce_kernel<T><<<grid_for(M * N, 256), 256, 0, st>>>(partial, p.splits, bias, bdt, y, M, N);
    check_launch("int4 splitk_reduce");
  }
}

template <typename T>
void run_matmul(const Plan& p, const T* x, const uint8_t* qw, const void* scales, int sdt, const uint8_t* zeros,
                bool prepared, const void* bias, int bdt, T* y, float* partial, int64_t M, int64_t N, int64_t K,
                int64_t group, cudaStream_t st) {
  if constexpr (!std::is_same<T, float>::value) {
    if (p.cfg == 0) return launch_mma<T, 16, 64, 1, 4, kStagesSmall>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.cfg == 1) return launch_mma<T, 64, 128, 2, 2, kStagesBig>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.cfg == 2) return launch_mma<T, 128, 128, 2, 2, kStagesBig>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.cfg == 3) return launch_mma<T, 128, 128, 2, 4, kStagesBig>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.cfg == 4) return launch_mma<T, 16, 128, 1, 4, kStagesBig>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.cfg == 5) return launch_mma<T, 128, 256, 2, 4, 3>(p, x, qw, scales, sdt, zeros, bias, bdt, y, partial, M, N, K, group, st);
  }
  // grid.y is limited to 65535: launch row blocks of at most 65535 · kGenRows rows.
  constexpr int64_t kMaxRows = int64_t(65535) * kGenRows;
  for (int64_t m0 = 0; m0 < M; m0 += kMaxRows) {
    const int64_t mc = std::min(kMaxRows, M - m0);
    dim3 grid(unsigned(ceil_div(N, kGenWarps)), unsigned(ceil_div(mc, kGenRows)));
    if (prepared)
      int4_general_kernel<T, true><<<grid, kGenWarps * 32, 0, st>>>(x + m0 * K, qw, scales, sdt, zeros, bias, bdt,
                                                                    y + m0 * N, mc, N, K, group);
    else
      int4_general_kernel<T, false><<<grid, kGenWarps * 32, 0, st>>>(x + m0 * K, qw, scales, sdt, zeros, bias, bdt,
                                                                     y + m0 * N, mc, N, K, group);
    check_launch("int4_general_kernel");
  }
}

int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

// ---------------------------------------------------------------- launchers

void int4_quantize(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric, uint8_t* qweight,
                   void* scales, int sdt, uint8_t* zeros, void* stream) {
  const int64_t total = N * (K / group);
  if (total == 0) return;
  quantize_kernel<<<unsigned(ceil_div(total, 128)), 128, 0, as_stream(stream)>>>(w, wdt, N, K, group, symmetric,
                                                                                 qweight, scales, sdt, zeros);
  check_launch("int4 quantize_kernel");
}

void int4_dequantize(const uint8_t* qweight, const void* scales, int sdt, const uint8_t* zeros, int64_t N, int64_t K,
                     int64_t group, void* out, int odt, void* stream) {
  const int64_t total = N * (K / 2);
  if (total == 0) return;
  dequantize_kernel<<<grid_for(total, 256), 256, 0, as_stream(stream)>>>(qweight, scales, sdt, zeros, N, K, group, out, odt);
  check_launch("int4 dequantize_kernel");
}

void int4_prepare(const uint8_t* qweight, const void* scales, int esize_scales, const uint8_t* zeros, int64_t N,
                  int64_t K, int64_t group, uint8_t* pq, void* pscales, uint8_t* pzeros, void* stream) {
  cudaStream_t st = as_stream(stream);
  const int64_t words = (N / 16) * ceil_div(K, 64) * 128;
  if (words > 0) {
    pack_prepared_kernel<<<grid_for(words, 256), 256, 0, st>>>(qweight, N, K, reinterpret_cast<uint32_t*>(pq));
    check_launch("int4 pack_prepared_kernel");
  }
  const int64_t G = K / group;
  if (N * G > 0) {
    transpose_any(scales, N, G, esize_scales, pscales, st);
    if (zeros) transpose_any(zeros, N, G, 1, pzeros, st);
  }
}

void int4_unprepare(const uint8_t* pq, const void* pscales, int esize_scales, const uint8_t* pzeros, int64_t N,
                    int64_t K, int64_t group, uint8_t* qweight, void* scales, uint8_t* zeros, void* stream) {
  cudaStream_t st = as_stream(stream);
  const int64_t total = N * (K / 2);
  if (total > 0) {
    unpack_prepared_kernel<<<grid_for(total, 256), 256, 0, st>>>(pq, N, K, qweight);
    check_launch("int4 unpack_prepared_kernel");
  }
  const int64_t G = K / group;
  if (N * G > 0) {
    transpose_any(pscales, G, N, esize_scales, scales, st);
    if (pzeros) transpose_any(pzeros, G, N, 1, zeros, st);
  }
}

void permute_cols(const void* x, const int32_t* perm, void* out, int64_t M, int64_t K, int esize, int* err_flag,
                  void* stream) {
  if (M * K == 0) return;
  cudaStream_t st = as_stream(stream);
  const int grid = grid_for(M * K, 256);
  if (esize == 4)
    gather_cols_kernel<float><<<grid, 256, 0, st>>>(static_cast<const float*>(x), perm, static_cast<float*>(out), M, K, err_flag);
  else if (esize == 2)
    gather_cols_kernel<__half><<<grid, 256, 0, st>>>(static_cast<const __half*>(x), perm, static_cast<__half*>(out), M, K, err_flag);
  else
    LLMK_CHECK(false, Internal, "permute_cols: unsupported element size %d", esize);
  check_launch("int4 permute_cols");
}

int64_t int4_matmul_workspace(int64_t M, int64_t N, int64_t K, int64_t group, int xdt, bool prepared,
                              bool has_perm) {
  const Plan p = make_plan(M, N, K, xdt, prepared, nullptr, sm_count());
  int64_t b = 0;
  if (has_perm) b += align256(M * K * int64_t(dtype_size(DType(xdt))));
  const int64_t lean = b + int4_lean_plan(M, N, K, group, xdt, prepared, nullptr).workspace;
  if (p.splits > 1) b += align256(int64_t(p.splits) * M * N * 4);
  return std::max(b, lean);
}

const char* int4_matmul_path(int64_t M, int64_t N, int64_t K, int xdt, bool prepared, const void* x, int* splits) {
  const Plan p = make_plan(M, N, K, xdt, prepared, x, sm_count());
  if (splits) *splits = p.splits;
  return p.cfg >= 0 ? kTiles[p.cfg].name : "general";
}

void int4_matmul(const Int4MatmulParams& a, void* workspace, int64_t workspace_bytes, int* err_flag, void* stream) {
  const int64_t M = a.M, N = a.N, K = a.K;
  if (M <= 0 || N <= 0) return;
  cudaStream_t st = as_stream(stream);
  char* ws = static_cast<char*>(workspace);
  LLMK_CHECK(ws == nullptr || aligned16(ws), Internal, "int4 matmul: workspace must be 16-byte aligned");
  const int xdt = int(a.xdt), sdt = int(a.sdt), bdt = int(a.bdt);
  const void* x = a.x;
  int64_t used = 0;
  const int64_t xbytes = M * K * int64_t(dtype_size(a.xdt));
  if (a.perm) {
    LLMK_CHECK(workspace_bytes >= align256(xbytes), Internal, "int4 matmul: workspace too small");
    void* xp = ws;
    const int grid = grid_for(M * K, 256);
    LLMK_DISPATCH_FLOAT(xdt, T, gather_cols_kernel<T><<<grid, 256, 0, st>>>(static_cast<const T*>(x), a.perm,
                                                                             static_cast<T*>(xp), M, K, err_flag));
    check_launch("int4 gather_cols_kernel");
    x = xp;
    used = align256(xbytes);
  }
  Int4MatmulParams gathered = a;  // x' (the gathered copy when act-order)
  gathered.x = x;
  if (int4_lean_matmul(gathered, ws + used, workspace_bytes - used, stream)) return;
  const bool wal = aligned16(a.qweight) && aligned16(a.scales) && (a.zeros == nullptr || aligned16(a.zeros));
  const Plan p = make_plan(M, N, K, xdt, a.prepared, x, sm_count(), wal);
  float* partial = nullptr;
  if (p.splits > 1) {
    LLMK_CHECK(workspace_bytes >= used + int64_t(p.splits) * M * N * 4, Internal, "int4 matmul: workspace too small");
    partial = reinterpret_cast<float*>(ws + used);
  }
  LLMK_DISPATCH_FLOAT(xdt, T, run_matmul<T>(p, static_cast<const T*>(x), a.qweight, a.scales, sdt, a.zeros, a.prepared,
                                            a.bias, bdt, static_cast<T*>(a.y), partial, M, N, K, a.group, st));
}

}  // namespace llmk::cuda
