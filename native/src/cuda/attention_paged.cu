// Serving attention on CUDA (attention_paged.h): one CTA per (query token, query head), 4 warps striding
// over the row's visible keys with an online softmax each, merged through shared memory by their LSE. Keys
// and values are read in place (contiguous for varlen, through the block table for paged). Simple and
// bounds-checked first; compiled, not verified on a GPU.
#include "attention_paged.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../core/dtype.h"
#include "../core/error.h"
#include "common.cuh"

namespace llmk::cuda {
namespace {

constexpr int WARPS = 4, MAXD_LANE = 8;  // D <= 256 = 32 lanes × 8

__device__ __forceinline__ void raise(int* flag) {
  if (flag) atomicExch(flag, 1);
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Checks the offsets, lengths and tables once (one thread per sequence); the attention kernel clamps as well.
__global__ void check_serving(ServingParams p) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b > p.B) return;
  if (b == 0 && (p.cu_q[0] != 0 || p.cu_q[p.B] != p.total_q)) raise(p.err_flag);
  if (p.cu_k && b == 0 && (p.cu_k[0] != 0 || p.cu_k[p.B] != p.total_k)) raise(p.err_flag);
  if (b == p.B) return;
  if (p.cu_q[b + 1] < p.cu_q[b]) raise(p.err_flag);
  if (p.cu_k && p.cu_k[b + 1] < p.cu_k[b]) raise(p.err_flag);
  if (p.seq_lens && (p.seq_lens[b] < 0 || int64_t(p.seq_lens[b]) > p.max_pages * p.page_size)) raise(p.err_flag);
}

template <typename T>
__global__ void __launch_bounds__(WARPS * 32) serving_kernel(ServingParams p) {
  __shared__ float sm_m[WARPS], sm_l[WARPS], sm_acc[WARPS][256];
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t D = p.D, hkv = h / (p.Hq / p.Hkv);
  // The sequence of token t: the last b with cu_q[b] <= t (binary search; offsets already checked).
  int64_t lo_b = 0, hi_b = p.B - 1;
  while (lo_b < hi_b) {
    const int64_t mid = (lo_b + hi_b + 1) / 2;
    if (p.cu_q[mid] <= t) lo_b = mid; else hi_b = mid - 1;
  }
  const int64_t b = lo_b, q0 = p.cu_q[b], nq = int64_t(p.cu_q[b + 1]) - q0, r = t - q0;
  int64_t nk = 0, k0 = 0;
  if (p.cu_k) {
    k0 = p.cu_k[b];
    nk = int64_t(p.cu_k[b + 1]) - k0;
    if (k0 < 0 || nk < 0 || k0 + nk > p.total_k) nk = 0;
  } else {
    nk = p.seq_lens[b];
    if (nk < 0 || nk > p.max_pages * p.page_size) nk = 0;
  }
  if (r < 0 || r >= nq) nk = 0;  // inconsistent offsets (flagged by check_serving): the row sees nothing
  // Visible keys [lo, hi] of row r (bottom-right aligned), as the CPU's key_range.
  const int64_t diag = r + nk - nq;
  int64_t lo = 0, hi = nk - 1;
  if (p.causal && diag < hi) hi = diag;
  if (p.win_right >= 0 && diag + p.win_right < hi) hi = diag + p.win_right;
  if (p.win_left >= 0 && diag - p.win_left > lo) lo = diag - p.win_left;

  const T* q = static_cast<const T*>(p.q) + (t * p.Hq + h) * D;
  float qv[MAXD_LANE], acc[MAXD_LANE];
#pragma unroll
  for (int i = 0; i < MAXD_LANE; i++) {
    const int64_t d = lane + 32 * i;
    qv[i] = d < D ? to_f32(q[d]) * p.scale : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t j = lo + warp; j <= hi; j += WARPS) {
    int64_t row;
    if (p.cu_k) {
      row = ((k0 + j) * p.Hkv + hkv) * D;
    } else {
      const int64_t page = p.block_tables[b * p.max_pages + j / p.page_size];
      if (page < 0 || page >= p.num_pages) {  // never dereferenced
        if (lane == 0) raise(p.err_flag);
        continue;
      }
      row = ((page * p.page_size + j % p.page_size) * p.Hkv + hkv) * D;
    }
    const T* kr = static_cast<const T*>(p.k) + row;
    const T* vr = static_cast<const T*>(p.v) + row;
    float part = 0.f;
#pragma unroll
    for (int i = 0; i < MAXD_LANE; i++) {
      const int64_t d = lane + 32 * i;
      if (d < D) part += qv[i] * to_f32(kr[d]);
    }
    float s = warp_sum(part);
    if (p.softcap > 0.f) s = p.softcap * tanhf(s / p.softcap);
    const float mn = fmaxf(m, s);
    const float alpha = __expf(m - mn), pj = __expf(s - mn);
    l = l * alpha + pj;
#pragma unroll
    for (int i = 0; i < MAXD_LANE; i++) {
      const int64_t d = lane + 32 * i;
      acc[i] = acc[i] * alpha + (d < D ? pj * to_f32(vr[d]) : 0.f);
    }
    m = mn;
  }
  if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
  for (int i = 0; i < MAXD_LANE; i++) {
    const int64_t d = lane + 32 * i;
    if (d < D) sm_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < WARPS; w++) M = fmaxf(M, sm_m[w]);
  float L = 0.f;
  for (int w = 0; w < WARPS; w++) L += M == -INFINITY ? 0.f : sm_l[w] * __expf(sm_m[w] - M);
  T* out = static_cast<T*>(p.out) + (t * p.Hq + h) * D;
  for (int64_t d = threadIdx.x; d < D; d += WARPS * 32) {
    float o = 0.f;
    if (L > 0.f)
      for (int w = 0; w < WARPS; w++) o += sm_m[w] == -INFINITY ? 0.f : sm_acc[w][d] * __expf(sm_m[w] - M);
    out[d] = from_f32<T>(L > 0.f ? o / L : 0.f);
  }
  if (p.lse && threadIdx.x == 0) p.lse[h * p.total_q + t] = L > 0.f ? M + logf(L) : -INFINITY;
}

template <typename T>
__global__ void append_kernel(T* kc, T* vc, const T* k, const T* v, const int32_t* slots, int64_t row, int64_t num_slots,
                              int* flag) {
  const int64_t t = blockIdx.x;
  const int64_t s = slots[t];
  if (s == -1) return;
  if (s < -1 || s >= num_slots) {
    if (threadIdx.x == 0) raise(flag);
    return;
  }
  for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
    kc[s * row + i] = k[t * row + i];
    vc[s * row + i] = v[t * row + i];
  }
}

template <typename T>
void launch(const ServingParams& p, cudaStream_t st) {
  check_serving<<<unsigned(ceil_div(p.B + 1, 128)), 128, 0, st>>>(p);
  check_launch("attention_serving check");
  if (p.total_q == 0 || p.B == 0) return;
  serving_kernel<T><<<dim3(unsigned(p.total_q), unsigned(p.Hq)), WARPS * 32, 0, st>>>(p);
  check_launch("attention_serving");
}

template <typename T>
void launch_append(void* kc, void* vc, const void* k, const void* v, const int32_t* slots, int64_t n, int64_t row,
                   int64_t num_slots, int* flag, cudaStream_t st) {
  append_kernel<T><<<unsigned(n), 128, 0, st>>>(static_cast<T*>(kc), static_cast<T*>(vc), static_cast<const T*>(k),
                                                 static_cast<const T*>(v), slots, row, num_slots, flag);
  check_launch("attention_cache_append");
}

}  // namespace

void attention_serving(const ServingParams& p, void* stream) {
  LLMK_CHECK(p.D <= 32 * MAXD_LANE && p.total_q < (int64_t(1) << 31) && p.Hq <= 65535, Shape,
             "attention (CUDA serving): sizes out of the kernel's range");
  const cudaStream_t st = as_stream(stream);
  switch (DType(p.dtype)) {
    case DType::F32: return launch<float>(p, st);
    case DType::F16: return launch<__half>(p, st);
    default: return launch<__nv_bfloat16>(p, st);
  }
}

void attention_cache_append(void* k_cache, void* v_cache, const void* k, const void* v, const int32_t* slots, int64_t n,
                            int64_t row_elems, int64_t num_slots, int dtype, int* err_flag, void* stream) {
  if (n == 0) return;
  LLMK_CHECK(n < (int64_t(1) << 31), Shape, "KvCache.append (CUDA): too many tokens in one call");
  const cudaStream_t st = as_stream(stream);
  switch (DType(dtype)) {
    case DType::F32: return launch_append<float>(k_cache, v_cache, k, v, slots, n, row_elems, num_slots, err_flag, st);
    case DType::F16: return launch_append<__half>(k_cache, v_cache, k, v, slots, n, row_elems, num_slots, err_flag, st);
    default: return launch_append<__nv_bfloat16>(k_cache, v_cache, k, v, slots, n, row_elems, num_slots, err_flag, st);
  }
}

}  // namespace llmk::cuda
