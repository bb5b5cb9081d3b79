// MoE top-k routing for large T: one warp per token row (candidate of issue 17; compiled, not verified on
// a GPU). Selected with LLMK_MOE_TOPK=warp; moe_topk.cu's kernels stay the default.
//
// Lane l holds experts [l·EPL, (l+1)·EPL) of its row (E = 32·EPL), read with 16-byte loads when a lane's
// slice is 16 bytes or more; the warp loops over rows with the next row's logits already loading. The
// k-selection stays in registers: each lane keeps its best candidate, and one pick is two warp
// reductions (redux.sync max of the key code, then min of the expert index among the lanes that hold
// that code: ties go to the lower index) plus one shuffle of the weight; only the winning lane rescans
// its slice. No shared memory. Routing rules: ../cpu/moe_math.h (the CPU's, exactly).
#include "moe_topk_warp.h"

#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "../cpu/moe_math.h"

namespace llmk::cuda {

namespace {

using namespace llmk::moe_math;

constexpr unsigned kAll = 0xffffffffu;
constexpr int kWarpsPerCta = 8;

// A lane's slice of a row, raw (converted to float only when used).
template <typename T, int EPL>
struct Slice {
  static constexpr int kBytes = EPL * int(sizeof(T));
  T v[EPL];
  __device__ __forceinline__ void load(const T* p) {
    if constexpr (kBytes >= 16) {
#pragma unroll
      for (int c = 0; c < kBytes / 16; c++) {
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(p) + c);
        memcpy(&v[c * (16 / int(sizeof(T)))], &q, 16);
      }
    } else {
#pragma unroll
      for (int i = 0; i < EPL; i++) v[i] = __ldg(p + i);
    }
  }
};

__device__ __forceinline__ uint64_t shfl_u64(uint64_t v, int src) {
  const uint32_t lo = __shfl_sync(kAll, uint32_t(v), src), hi = __shfl_sync(kAll, uint32_t(v >> 32), src);
  return (uint64_t(hi) << 32) | lo;
}

// Merges the top-2 of the lane `off` away into t (butterfly step over the lanes of one group).
__device__ __forceinline__ void merge_top2_xor(Top2& t, int off) {
  const uint32_t oca = __shfl_xor_sync(kAll, t.ca, off), ocb = __shfl_xor_sync(kAll, t.cb, off);
  const float oa = __shfl_xor_sync(kAll, t.a, off), ob = __shfl_xor_sync(kAll, t.b, off);
  if (oca > t.ca) {
    const bool keep_a = t.ca >= ocb;  // our best is the other side's runner-up candidate
    t.cb = keep_a ? t.ca : ocb;
    t.b = keep_a ? t.a : ob;
    t.ca = oca;
    t.a = oa;
  } else if (oca > t.cb) {
    t.cb = oca;
    t.b = oa;
  }
}

// One warp per row; lpg = lanes per expert group (groups > 0), a power of two.
template <typename T, int EPL>
__global__ void __launch_bounds__(kWarpsPerCta * 32) topk_warp_kernel(MoeTopkParams a, int lpg) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerCta;
  const int E = 32 * EPL, e0 = lane * EPL, k = a.k, G = a.groups;
  const T* logits = static_cast<const T*>(a.logits);
  int64_t t = int64_t(blockIdx.x) * kWarpsPerCta + (int(threadIdx.x) >> 5);
  Slice<T, EPL> cur;
  if (t < a.tokens) cur.load(logits + t * E + e0);
  for (; t < a.tokens; t += warps) {
    float x[EPL];
#pragma unroll
    for (int i = 0; i < EPL; i++) x[i] = to_f32<T>(cur.v[i]);
    if (t + warps < a.tokens) cur.load(logits + (t + warps) * E + e0);  // next row in flight

    float sc[EPL];
    if (!a.sigmoid) {
      float m = -INFINITY;
#pragma unroll
      for (int i = 0; i < EPL; i++) m = fmaxf(m, x[i]);  // fmaxf skips NaN
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(kAll, m, off));
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < EPL; i++) { sc[i] = softmax_numer(x[i], m); s += sc[i]; }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(kAll, s, off);
#pragma unroll
      for (int i = 0; i < EPL; i++) sc[i] = s > 0.f ? sc[i] / s : 0.f;
    } else {
#pragma unroll
      for (int i = 0; i < EPL; i++) sc[i] = sigmoid_score(x[i]);
    }
    uint32_t code[EPL];
    Top2 t2;
#pragma unroll
    for (int i = 0; i < EPL; i++) {
      const float key = select_key(x[i], sc[i], a.bias, e0 + i);
      code[i] = ord_key(key);
      t2.push(key);
    }
    if (G > 0) {  // group top-2 over the group's lanes, then the rank of each group among all
      for (int off = 1; off < lpg; off <<= 1) merge_top2_xor(t2, off);
      const uint64_t mine = pack(ord_key(group_score(t2, E / G, a.bias != nullptr)), uint32_t(lane / lpg));
      int rank = 0;
      for (int h = 0; h < G; h++) rank += shfl_u64(mine, h * lpg) > mine;
      if (rank >= a.group_topk)
#pragma unroll
        for (int i = 0; i < EPL; i++) code[i] = 0u;
    }
    auto best_of_lane = [&](uint32_t& bc, int& bi) {
      bc = 0u;
      bi = 0;
#pragma unroll
      for (int i = 0; i < EPL; i++)
        if (code[i] > bc) { bc = code[i]; bi = i; }
    };
    uint32_t bc;
    int bi;
    best_of_lane(bc, bi);
    float dsum = 0.f, my_w = 0.f;
    int my_id = 0;
    for (int j = 0; j < k; j++) {
      const uint32_t top = __reduce_max_sync(kAll, bc);
      const uint32_t win = __reduce_min_sync(kAll, bc == top ? uint32_t(e0 + bi) : 0xffffffffu);
      const int owner = int(win) / EPL;
      float w = 0.f;
      if (lane == owner) {
#pragma unroll
        for (int i = 0; i < EPL; i++)
          if (i == bi) { w = sc[i]; code[i] = 0u; }
        best_of_lane(bc, bi);
      }
      w = __shfl_sync(kAll, w, owner);
      dsum += w;
      if (lane == j) { my_w = w; my_id = int(win); }
    }
    if (lane < k) {
      a.weights[t * k + lane] = (a.renormalize && dsum > 0.f ? my_w / dsum : my_w) * a.scale;
      a.ids[t * k + lane] = my_id;
    }
  }
}

// Elements per lane for E experts (E = 32 · EPL), 0 when E does not fit.
int epl_of(int E) {
  for (int p : {1, 2, 4, 8, 16})
    if (E == 32 * p) return p;
  return 0;
}

bool selected() {
  const char* e = std::getenv("LLMK_MOE_TOPK");
  return e && std::strcmp(e, "warp") == 0;
}

// Lanes per group (0: no groups), or -1 when the grouping does not map onto whole lanes.
int lanes_per_group(const MoeTopkParams& a, int epl) {
  if (a.groups <= 0) return 0;
  const int gs = a.experts / a.groups;
  if (gs % epl != 0) return -1;
  const int lpg = gs / epl;
  return (lpg & (lpg - 1)) == 0 ? lpg : -1;
}

template <typename T>
bool launch_typed(const MoeTopkParams& a, int epl, int lpg, cudaStream_t st) {
  const int64_t want = (a.tokens + kWarpsPerCta - 1) / kWarpsPerCta;
  const unsigned blocks = unsigned(std::min<int64_t>(want, int64_t(sm_count()) * 8));  // ≤ 64 warps per SM
  switch (epl) {
    case 1: topk_warp_kernel<T, 1><<<blocks, kWarpsPerCta * 32, 0, st>>>(a, lpg); break;
    case 2: topk_warp_kernel<T, 2><<<blocks, kWarpsPerCta * 32, 0, st>>>(a, lpg); break;
    case 4: topk_warp_kernel<T, 4><<<blocks, kWarpsPerCta * 32, 0, st>>>(a, lpg); break;
    case 8: topk_warp_kernel<T, 8><<<blocks, kWarpsPerCta * 32, 0, st>>>(a, lpg); break;
    default: topk_warp_kernel<T, 16><<<blocks, kWarpsPerCta * 32, 0, st>>>(a, lpg); break;
  }
  check_launch("moe_topk_warp");
  return true;
}

}  // namespace

const char* moe_topk_warp_path(const MoeTopkParams& a) {
  if (!selected()) return nullptr;
  const int epl = epl_of(a.experts);
  if (!epl || a.k < 1 || a.k > 32) return nullptr;
  const int lpg = lanes_per_group(a, epl);
  if (lpg < 0) return nullptr;
  const int slice_bytes = epl * int(dtype_size(a.dtype));
  if (slice_bytes >= 16 && reinterpret_cast<uintptr_t>(a.logits) % 16 != 0) return nullptr;
  static const char* const names[2][5] = {{"warp/1", "warp/2", "warp/4", "warp/8", "warp/16"},
                                          {"warp/1+groups", "warp/2+groups", "warp/4+groups", "warp/8+groups", "warp/16+groups"}};
  int li = 0;
  while ((1 << li) < epl) li++;
  return names[lpg > 0][li];
}

bool moe_topk_warp(const MoeTopkParams& a, void* stream) {
  if (!moe_topk_warp_path(a) || a.tokens == 0) return false;
  const int epl = epl_of(a.experts), lpg = lanes_per_group(a, epl);
  cudaStream_t st = as_stream(stream);
  switch (a.dtype) {
    case DType::F32: return launch_typed<float>(a, epl, lpg, st);
    case DType::F16: return launch_typed<__half>(a, epl, lpg, st);
    case DType::BF16: return launch_typed<__nv_bfloat16>(a, epl, lpg, st);
    default: return false;
  }
}

}  // namespace llmk::cuda
