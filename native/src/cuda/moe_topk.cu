// CUDA MoE top-k routing (docs/architecture.md §4.1): one fused kernel for E <= 512 (scores, optional groups,
// selection and normalisation with the row held in registers, warp shuffles, 16-byte loads when the
// rows are aligned) and a general kernel (one CTA per token, bitonic sort in shared memory) for
// 512 < E <= 1024. The routing rules live in ../cpu/moe_math.h and are the CPU's exactly.
#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "moe.h"
#include "moe_topk_warp.h"  // LLMK_MOE_TOPK=warp candidate (issue 17), off by default
#include "../cpu/moe_math.h"

namespace llmk::cuda {

namespace {

using namespace llmk::moe_math;

constexpr int kFusedThreads = 128;
constexpr int kGeneralThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

template <typename T> __device__ __forceinline__ void unpack16(const uint4& v, float* out);
template <> __device__ __forceinline__ void unpack16<float>(const uint4& v, float* out) {
  out[0] = __uint_as_float(v.x); out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z); out[3] = __uint_as_float(v.w);
}
template <> __device__ __forceinline__ void unpack16<__half>(const uint4& v, float* out) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __half2 h = *reinterpret_cast<const __half2*>(&w[i]);
    float2 f = __half22float2(h);
    out[2 * i] = f.x; out[2 * i + 1] = f.y;
  }
}
template <> __device__ __forceinline__ void unpack16<__nv_bfloat16>(const uint4& v, float* out) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    out[2 * i] = __uint_as_float(w[i] << 16);
    out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ uint64_t shfl_xor_u64(uint64_t v, int off) {
  uint32_t lo = uint32_t(v), hi = uint32_t(v >> 32);
  lo = __shfl_xor_sync(kFull, lo, off);
  hi = __shfl_xor_sync(kFull, hi, off);
  return (uint64_t(hi) << 32) | lo;
}

// Per-CTA shared memory layout of the fused kernel (tok tokens per CTA).
struct FusedSmem {
  int64_t gkey, keys, sw, si, flags, total;
  __host__ __device__ FusedSmem(int tok, int E, int G, int k) {
    gkey = 0;
    keys = gkey + int64_t(tok) * G * 8;
    sw = keys + (G > 0 ? int64_t(tok) * E * 4 : 0);
    si = sw + int64_t(tok) * k * 4;
    flags = si + int64_t(tok) * k * 4;
    total = flags + int64_t(tok) * G;
  }
};

// VEC elements per load (16 bytes, or 1 = scalar), TPT lanes per token, NCH loads per lane.
template <typename T, int VEC, int TPT, int NCH>
__global__ void __launch_bounds__(kFusedThreads) topk_fused_kernel(MoeTopkParams a) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int VPL = VEC * NCH;
  constexpr int TOK = kFusedThreads / TPT;
  const int gl = int(threadIdx.x) % TPT;
  const int tl = int(threadIdx.x) / TPT;
  const int64_t t = int64_t(blockIdx.x) * TOK + tl;
  const bool valid = t < a.tokens;
  const int E = a.experts, k = a.k, G = a.groups;
  const int nvec = E / VEC;
  const T* row = static_cast<const T*>(a.logits) + (valid ? t : 0) * int64_t(E);

  float x[VPL];
#pragma unroll
  for (int c = 0; c < NCH; c++) {
    const int vi = c * TPT + gl;
    if (valid && vi < nvec) {
      if constexpr (VEC == 1) {
        x[c] = to_f32<T>(row[vi]);
      } else {
        uint4 v = __ldg(reinterpret_cast<const uint4*>(row) + vi);
        unpack16<T>(v, &x[c * VEC]);
      }
    } else {
#pragma unroll
      for (int v = 0; v < VEC; v++) x[c * VEC + v] = 0.f;
    }
  }
  auto idx_of = [&](int i) { return ((i / VEC) * TPT + gl) * VEC + (i % VEC); };
  // in_e: register i holds an expert of the row (idx_of(i) < E); lanes past nvec hold padding whose
  // idx_of is >= E and must never index bias[] (review fix: was an out-of-bounds read of bias).
  auto in_e = [&](int i) { return ((i / VEC) * TPT + gl) < nvec; };
  auto in_row = [&](int i) { return valid && in_e(i); };

  float sc[VPL];
  if (!a.sigmoid) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < VPL; i++) if (in_row(i)) m = fmaxf(m, x[i]);  // fmaxf skips NaN
#pragma unroll
    for (int off = TPT / 2; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(kFull, m, off));
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < VPL; i++) { sc[i] = in_row(i) ? softmax_numer(x[i], m) : 0.f; s += sc[i]; }
#pragma unroll
    for (int off = TPT / 2; off > 0; off >>= 1) s += __shfl_xor_sync(kFull, s, off);
#pragma unroll
    for (int i = 0; i < VPL; i++) sc[i] = s > 0.f ? sc[i] / s : 0.f;
  } else {
#pragma unroll
    for (int i = 0; i < VPL; i++) sc[i] = sigmoid_score(x[i]);
  }

  FusedSmem lay(TOK, E, G, k);
  uint32_t code[VPL];
  const int gs = G > 0 ? E / G : 1;
  const int glanes = gs / VEC;  // lanes of one group in a chunk row (register path)
  if (G > 0 && gs % VEC == 0 && (glanes & (glanes - 1)) == 0 && glanes <= TPT) {
    // Register path: every VEC-chunk lies inside one group and a group's chunks of one chunk row are
    // an aligned run of `glanes` lanes, so group top-2 = local top-2 merged by xor shuffles.
    float kf[VPL];
#pragma unroll
    for (int i = 0; i < VPL; i++) {
      kf[i] = in_row(i) ? select_key(x[i], sc[i], a.bias, idx_of(i)) : 0.f;
      code[i] = in_row(i) ? ord_key(kf[i]) : 0u;
    }
    uint64_t gkey[NCH];
#pragma unroll
    for (int c = 0; c < NCH; c++) {
      Top2 t2;
#pragma unroll
      for (int v = 0; v < VEC; v++) if (code[c * VEC + v] != 0u) t2.push(kf[c * VEC + v]);
      for (int off = 1; off < glanes; off <<= 1) {
        const uint32_t oca = __shfl_xor_sync(kFull, t2.ca, off), ocb = __shfl_xor_sync(kFull, t2.cb, off);
        const float oa = __shfl_xor_sync(kFull, t2.a, off), ob = __shfl_xor_sync(kFull, t2.b, off);
        if (t2.ca >= oca) {
          if (oca > t2.cb) { t2.cb = oca; t2.b = oa; }
        } else {
          if (t2.ca >= ocb) { t2.cb = t2.ca; t2.b = t2.a; } else { t2.cb = ocb; t2.b = ob; }
          t2.ca = oca; t2.a = oa;
        }
      }
      const int row = c * TPT + gl;
      gkey[c] = (valid && row < nvec) ? pack(ord_key(group_score(t2, gs, a.bias != nullptr)), uint32_t(row / glanes)) : 0;
    }
    int rank[NCH];
#pragma unroll
    for (int c = 0; c < NCH; c++) rank[c] = 0;
    for (int h = 0; h < G; h++) {
      const int ch = (h * glanes) / TPT, src = (h * glanes) % TPT;
      uint64_t v = 0;
#pragma unroll
      for (int c = 0; c < NCH; c++) if (c == ch) v = gkey[c];
      const uint32_t lo = __shfl_sync(kFull, uint32_t(v), src, TPT), hi = __shfl_sync(kFull, uint32_t(v >> 32), src, TPT);
      const uint64_t other = (uint64_t(hi) << 32) | lo;
#pragma unroll
      for (int c = 0; c < NCH; c++) rank[c] += other > gkey[c];
    }
#pragma unroll
    for (int i = 0; i < VPL; i++)
      if (rank[i / VEC] >= a.group_topk) code[i] = 0u;
  } else if (G > 0) {
    float* keys = reinterpret_cast<float*>(smem + lay.keys) + int64_t(tl) * E;
    uint64_t* gk = reinterpret_cast<uint64_t*>(smem + lay.gkey) + int64_t(tl) * G;
    unsigned char* flags = smem + lay.flags + int64_t(tl) * G;
#pragma unroll
    for (int i = 0; i < VPL; i++) {
      const int e = idx_of(i);
      const float key = in_e(i) ? select_key(x[i], sc[i], a.bias, e) : 0.f;
      code[i] = in_row(i) ? ord_key(key) : 0u;
      if (in_e(i)) keys[e] = key;
    }
    __syncwarp();
    for (int g = gl; g < G; g += TPT) {
      Top2 t2;
      int r = g % gs;  // rotated start: spreads the lanes over the banks
      for (int e = 0; e < gs; e++) {
        t2.push(keys[g * gs + r]);
        if (++r == gs) r = 0;
      }
      gk[g] = pack(ord_key(group_score(t2, gs, a.bias != nullptr)), uint32_t(g));
    }
    __syncwarp();
    for (int g = gl; g < G; g += TPT) {
      const uint64_t mine = gk[g];
      int rank = 0;
      for (int h = 0; h < G; h++) rank += gk[h] > mine;
      flags[g] = rank < a.group_topk;
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < VPL; i++)
      if (code[i] != 0u && !flags[idx_of(i) / gs]) code[i] = 0u;
  } else {
#pragma unroll
    for (int i = 0; i < VPL; i++)
      code[i] = in_row(i) ? ord_key(select_key(x[i], sc[i], a.bias, idx_of(i))) : 0u;
  }

  float* sw = reinterpret_cast<float*>(smem + lay.sw) + int64_t(tl) * k;
  int32_t* si = reinterpret_cast<int32_t*>(smem + lay.si) + int64_t(tl) * k;
  float dsum = 0.f;
  for (int j = 0; j < k; j++) {
    uint64_t best = 0;
#pragma unroll
    for (int i = 0; i < VPL; i++) best = max(best, pack(code[i], uint32_t(idx_of(i))));
#pragma unroll
    for (int off = TPT / 2; off > 0; off >>= 1) best = max(best, shfl_xor_u64(best, off));
    const int win = int(packed_index(best));
    float w = 0.f;
#pragma unroll
    for (int i = 0; i < VPL; i++)
      if (idx_of(i) == win) { w = sc[i]; code[i] = 0u; }
    w = __shfl_sync(kFull, w, (win / VEC) % TPT, TPT);
    if (gl == j % TPT) { sw[j] = w; si[j] = win; }
    dsum += w;
  }
  if (valid) {
    float* wout = a.weights + t * k;
    int32_t* iout = a.ids + t * k;
    for (int j = gl; j < k; j += TPT) {
      float w = sw[j];
      if (a.renormalize && dsum > 0.f) w /= dsum;
      wout[j] = w * a.scale;
      iout[j] = si[j];
    }
  }
}

// ---- general path: one CTA per token, bitonic sort of packed candidates in shared memory ----

template <typename Op>
__device__ float block_reduce(float v, float* red, Op op) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, nw = int(blockDim.x) >> 5;
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(kFull, v, off));
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < nw; w++) v = op(v, red[w]);
  return v;
}

template <typename T>
__global__ void __launch_bounds__(kGeneralThreads) topk_general_kernel(MoeTopkParams a, int P) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int E = a.experts, k = a.k, G = a.groups;
  uint64_t* cand = reinterpret_cast<uint64_t*>(smem);                 // [P]
  uint64_t* gk = cand + P;                                           // [G]
  float* sc = reinterpret_cast<float*>(gk + G);                      // [E]
  float* keyf = sc + E;                                              // [E]
  float* red = keyf + E;                                             // [32]
  unsigned char* flags = reinterpret_cast<unsigned char*>(red + 32);  // [G]
  const int tid = int(threadIdx.x), nt = int(blockDim.x);
  for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    const T* row = static_cast<const T*>(a.logits) + t * E;
    for (int e = tid; e < E; e += nt) keyf[e] = to_f32<T>(row[e]);
    __syncthreads();
    if (!a.sigmoid) {
      float m = -INFINITY;
      for (int e = tid; e < E; e += nt) m = fmaxf(m, keyf[e]);
      m = block_reduce(m, red, [](float p, float q) { return fmaxf(p, q); });
      float s = 0.f;
      for (int e = tid; e < E; e += nt) { sc[e] = softmax_numer(keyf[e], m); s += sc[e]; }
      s = block_reduce(s, red, [](float p, float q) { return p + q; });
      for (int e = tid; e < E; e += nt) sc[e] = s > 0.f ? sc[e] / s : 0.f;
    } else {
      for (int e = tid; e < E; e += nt) sc[e] = sigmoid_score(keyf[e]);
    }
    for (int e = tid; e < P; e += nt) {
      if (e < E) {
        keyf[e] = select_key(keyf[e], sc[e], a.bias, e);
        cand[e] = pack(ord_key(keyf[e]), uint32_t(e));
      } else {
        cand[e] = 0;
      }
    }
    __syncthreads();
    if (G > 0) {
      const int gs = E / G;
      for (int g = tid; g < G; g += nt) {
        Top2 t2;
        for (int e = 0; e < gs; e++) t2.push(keyf[g * gs + e]);
        gk[g] = pack(ord_key(group_score(t2, gs, a.bias != nullptr)), uint32_t(g));
      }
      __syncthreads();
      for (int g = tid; g < G; g += nt) {
        int rank = 0;
        for (int h = 0; h < G; h++) rank += gk[h] > gk[g];
        flags[g] = rank < a.group_topk;
      }
      __syncthreads();
      for (int e = tid; e < E; e += nt) if (!flags[e / gs]) cand[e] = 0;
      __syncthreads();
    }
    for (int size = 2; size <= P; size <<= 1) {
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int i = tid; i < P / 2; i += nt) {
          const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
          const bool desc = (lo & size) == 0;
          const uint64_t p = cand[lo], q = cand[hi];
          if ((p < q) == desc) { cand[lo] = q; cand[hi] = p; }
        }
        __syncthreads();
      }
    }
    if (tid == 0) {
      float d = 0.f;
      for (int j = 0; j < k; j++) d += sc[packed_index(cand[j])];
      red[0] = d;
    }
    __syncthreads();
    const float dsum = red[0];
    for (int j = tid; j < k; j += nt) {
      const uint32_t e = packed_index(cand[j]);
      float w = sc[e];
      if (a.renormalize && dsum > 0.f) w /= dsum;
      a.weights[t * k + j] = w * a.scale;
      a.ids[t * k + j] = int32_t(e);
    }
    __syncthreads();
  }
}

int pow2ceil(int v) { int p = 1; while (p < v) p <<= 1; return p; }

struct FusedCfg { int vec = 0, tpt = 0, nch = 0; };

FusedCfg choose_fused(const MoeTopkParams& a) {
  FusedCfg c;
  if (a.experts > 512) return c;
  const int esz = int(dtype_size(a.dtype));
  const bool aligned = (reinterpret_cast<uintptr_t>(a.logits) % 16 == 0) && (int64_t(a.experts) * esz) % 16 == 0;
  if (aligned) {
    c.vec = 16 / esz;
    const int nvec = a.experts / c.vec;
    if (nvec <= 32) { c.tpt = pow2ceil(nvec); c.nch = 1; }
    else { c.tpt = 32; c.nch = (nvec + 31) / 32; }
  } else {
    c.vec = 1; c.tpt = 32;
    c.nch = pow2ceil((a.experts + 31) / 32);
  }
  return c;
}

template <typename T, int VEC, int TPT, int NCH>
void launch_fused(const MoeTopkParams& a, cudaStream_t s) {
  constexpr int TOK = kFusedThreads / TPT;
  FusedSmem lay(TOK, a.experts, a.groups, a.k);
  auto kern = topk_fused_kernel<T, VEC, TPT, NCH>;
  if (lay.total > 48 * 1024)
    cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(lay.total))),
                  "moe_topk smem attribute");
  const int64_t blocks = (a.tokens + TOK - 1) / TOK;
  kern<<<unsigned(blocks), kFusedThreads, size_t(lay.total), s>>>(a);
  check_launch("moe_topk_fused");
}

template <typename T>
bool dispatch_fused(const MoeTopkParams& a, const FusedCfg& c, cudaStream_t s) {
#define LLMK_MOE_CASE(V, P, N) \
  if (c.vec == V && c.tpt == P && c.nch == N) { launch_fused<T, V, P, N>(a, s); return true; }
  constexpr int V16 = 16 / int(sizeof(T));
  LLMK_MOE_CASE(V16, 1, 1) LLMK_MOE_CASE(V16, 2, 1) LLMK_MOE_CASE(V16, 4, 1) LLMK_MOE_CASE(V16, 8, 1)
  LLMK_MOE_CASE(V16, 16, 1) LLMK_MOE_CASE(V16, 32, 1) LLMK_MOE_CASE(V16, 32, 2)
  if constexpr (V16 == 4) { LLMK_MOE_CASE(4, 32, 3) LLMK_MOE_CASE(4, 32, 4) }
  LLMK_MOE_CASE(1, 32, 1) LLMK_MOE_CASE(1, 32, 2) LLMK_MOE_CASE(1, 32, 4) LLMK_MOE_CASE(1, 32, 8)
  LLMK_MOE_CASE(1, 32, 16)
#undef LLMK_MOE_CASE
  return false;
}

template <typename T>
void launch_general(const MoeTopkParams& a, cudaStream_t s) {
  const int P = pow2ceil(a.experts);
  const int64_t bytes = int64_t(P) * 8 + int64_t(a.groups) * 8 + int64_t(a.experts) * 8 + 32 * 4 + a.groups;
  auto kern = topk_general_kernel<T>;
  if (bytes > 48 * 1024)
    cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes))),
                  "moe_topk smem attribute");
  const int64_t blocks = std::min<int64_t>(a.tokens, int64_t(sm_count()) * 8);
  kern<<<unsigned(blocks), kGeneralThreads, size_t(bytes), s>>>(a, P);
  check_launch("moe_topk_general");
}

template <typename T>
void topk_typed(const MoeTopkParams& a, cudaStream_t s) {
  FusedCfg c = choose_fused(a);
  if (c.vec && dispatch_fused<T>(a, c, s)) return;
  launch_general<T>(a, s);
}

}  // namespace

const char* moe_topk_path(const MoeTopkParams& a) {
  if (const char* w = moe_topk_warp_path(a)) return w;
  static thread_local char buf[64];
  FusedCfg c = choose_fused(a);
  if (!c.vec) return "general";
  const char* grp = "";
  if (a.groups > 0) {
    const int gs = a.experts / a.groups, gl = gs / c.vec;
    grp = (gs % c.vec == 0 && (gl & (gl - 1)) == 0 && gl <= c.tpt) ? "+groups/regs" : "+groups/smem";
  }
  snprintf(buf, sizeof buf, "fused/%dx%dx%d%s", c.vec, c.tpt, c.nch, grp);
  return buf;
}

void moe_topk(const MoeTopkParams& a, void* stream) {
  // The kernels rely on these (the ops layer checks them for users; this guards direct C++ callers):
  // a k beyond the experts that survive group selection would read past the selected set.
  LLMK_CHECK(a.experts >= 1 && a.experts <= 1024, Arg, "moe_topk: experts must be in [1, 1024], got %d", a.experts);
  LLMK_CHECK(a.groups == 0 || (a.groups > 0 && a.experts % a.groups == 0 && a.group_topk >= 1 && a.group_topk <= a.groups),
             Arg, "moe_topk: groups %d / groupTopk %d do not divide %d experts", a.groups, a.group_topk, a.experts);
  const int kept = a.groups > 0 ? a.experts / a.groups * a.group_topk : a.experts;
  LLMK_CHECK(a.k >= 1 && a.k <= kept, Arg, "moe_topk: k = %d must be in [1, %d] (experts kept)", a.k, kept);
  if (a.tokens == 0 || moe_topk_warp(a, stream)) return;
  cudaStream_t s = as_stream(stream);
  LLMK_DISPATCH_FLOAT(a.dtype, T, topk_typed<T>(a, s));
}

}  // namespace llmk::cuda
