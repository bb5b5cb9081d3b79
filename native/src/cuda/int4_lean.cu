// INT4 weight-only matmul, lean kernel for M ≤ 16 (candidate of issue 17; compiled, not verified on a GPU).
// Selected with LLMK_INT4_LEAN=1; int4.cu's default path is unchanged.
//
// Against int4_mma_kernel (docs: shared/notes/gpu-perf-review.md, hypotheses #1, #2, #4):
//  * weights go global → registers (16 bytes per lane per 16×64 block, a ring of DEPTH blocks in
//    flight per warp): no shared-memory stage, no barrier in the main loop, one pointer advanced by a
//    constant; group size, scale dtype, zero points and the scale mode are template constants;
//  * the CTA's x slice (M rows × its k range) is staged in shared memory once, then read by ldmatrix
//    (rows ≥ M read row M−1: their outputs are never stored, so no zero fill is needed);
//  * split-K partials are reduced inside the same launch: the last CTA of each n-tile (atomic ticket
//    after a fence) sums them and adds the bias; tickets live in per-(device, stream) counters that the
//    last CTA resets, so no memset and no second kernel;
//  * LLMK_INT4_F32SCALE=1: (q − zero) goes to the tensor cores unscaled, per-group float32 sums are
//    scaled by an FFMA at each group boundary (no HMUL2 per weight; scale precision stays float32).
//  * LLMK_INT4_SWAPAB=1 (M ≤ 8): weights as the m16 operand, x as n8: one mma per weight word.
// Knobs for the sweep: LLMK_INT4_SPLITS=<n> (split-K count), LLMK_INT4_LEAN_DEPTH=4|8|16 (blocks in
// flight per warp). Depths 4 and 16 and SWAP exist only for float16 x and scales without zero points.
// Applies when: x float16/bfloat16 and 16-byte aligned, prepared layout, M ≤ 16, N % 16 == 0,
// K % 16 == 0, and group a power of two ≥ 64 or group == K. Anything else returns false (default path).
#include "int4_lean.h"

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "common.cuh"
#include "ptx.cuh"
#include "int4.h"
#include "../core/dtype.h"
#include "../core/error.h"

namespace llmk::cuda {

namespace {

constexpr int kWarps = 4;              // one 16-column n-block per warp
constexpr int kThreads = kWarps * 32;  // CTA covers 64 output columns
constexpr int kTileN = kWarps * 16;
constexpr int kMaxXSmem = 44 * 1024;   // x slice per CTA (bytes; + static smem stays under the 48 KB default)

// ---------------------------------------------------------------- device helpers (cp.async, ldmatrix, mma: ptx.cuh)

__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {  // read-once weights: skip L1
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Element type traits: the "magic" exponent that turns a nibble in the low mantissa bits into base + q.
template <typename T> struct Lean;
template <> struct Lean<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024 + q
  static constexpr float kBase = 1024.f;
  __device__ __forceinline__ static T2 splat(float v) { return __float2half2_rn(v); }
};
template <> struct Lean<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // 128 + q
  static constexpr float kBase = 128.f;
  __device__ __forceinline__ static T2 splat(float v) { return __float2bfloat162_rn(v); }
};

template <typename T2> __device__ __forceinline__ uint32_t u32_of(T2 v) { uint32_t u; memcpy(&u, &v, 4); return u; }
template <typename T2> __device__ __forceinline__ T2 t2_of(uint32_t u) { T2 v; memcpy(&v, &u, 4); return v; }

// ---------------------------------------------------------------- kernel

// grid (ceil(N/64), 1, splits). bpg_shift: log2(group/64), or 30 when the whole row is one group.
// SWAP (M ≤ 8, hypothesis #3): the dequantised weights are the m16 operand (one prepared word is exactly
// an A fragment of a 16×16 tile) and x the n8 operand: one mma per word instead of two.
template <typename T, typename S, bool ZEROS, bool F32S, int DEPTH, bool SWAP>
__global__ void __launch_bounds__(kThreads)
    int4_lean_kernel(const T* __restrict__ x, const uint4* __restrict__ qw, const S* __restrict__ scales,
                     const uint8_t* __restrict__ zeros, const void* __restrict__ bias, int bdt, T* __restrict__ y,
                     float* __restrict__ partial, int* __restrict__ tickets, int M, int N, int K, int KB, int kpb,
                     int bpg_shift) {
  using Tr = Lean<T>;
  using T2 = typename Tr::T2;
  extern __shared__ uint4 smem_x[];
  __shared__ int s_last;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int kb0 = blockIdx.z * kpb;
  const int nkb = min(kpb, KB - kb0);
  const int row_chunks = nkb * 8;  // 16-byte chunks of one x row in this CTA's k range

  // Stage x[0:M, kb0*64 : (kb0+nkb)*64] once; chunk c of row r lands at c ^ (r & 7) (conflict-free ldmatrix).
  for (int i = tid; i < M * row_chunks; i += kThreads) {
    const int r = i / row_chunks, c = i - r * row_chunks;
    const int gk = kb0 * 64 + c * 8;
    const bool ok = gk < K;
    cp_async16(smem_u32(smem_x + r * row_chunks + (c ^ (r & 7))), ok ? x + int64_t(r) * K + gk : x, ok);
  }
  cp_async_commit();

  const int nb = blockIdx.x * kWarps + warp;  // this warp's 16-column block
  const bool active = nb < N / 16;
  const int nkw = active ? nkb : 0;
  const uint4* wp = qw + (int64_t(active ? nb : 0) * KB + kb0) * 32 + lane;

  // Weight ring: DEPTH blocks in flight per warp before the first use.
  uint4 ring[DEPTH];
#pragma unroll
  for (int i = 0; i < DEPTH; i++) ring[i] = i < nkw ? ldg_stream(wp + i * 32) : make_uint4(0, 0, 0, 0);

  // ldmatrix row addresses. A operand (x): lane feeds matrix lane >> 3 = row half + 2 · chunk parity,
  // chunk kc*2 + hi sits at koff0 ^ (kc * 32). SWAP (x as the B operand): matrix q = lane >> 3 is chunk
  // 4p + q of k16-step pair p, at koff0 ^ (p * 64).
  const int r16 = SWAP ? (lane & 7) : (lane & 7) + ((lane >> 3) & 1) * 8, hi = SWAP ? lane >> 3 : lane >> 4;
  const int rr = min(r16, M - 1);
  const unsigned xrow = smem_u32(smem_x + rr * row_chunks);
  const unsigned koff0 = unsigned((hi ^ (rr & 7)) * 16);

  cp_async_wait<0>();
  __syncthreads();

  float acc[2][4], gacc[2][4];
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc[j][e] = gacc[j][e] = 0.f;

  // Scale / zero cache. B side (dequantisation): columns nb*16 + g + 8h. C side (F32S): nb*16 + 8j + 2t + e.
  // The next group's values are loaded one group ahead (raw), so a group change never waits on memory.
  T2 s2[2], z2[2];
  float sc[2][2];
  S nsB[2], nsC[2][2];
  uint8_t nz[2] = {8, 8};
  int cur_g = -1;
  const int colB = nb * 16 + g, colC = nb * 16 + 2 * t;
  const int last_g = (kb0 + max(nkw, 1) - 1) >> bpg_shift;
  // Row pointers of the next group to fetch, advanced by one [G, N] row per group.
  const int64_t g_first = int64_t(kb0 >> bpg_shift) * N;
  constexpr bool kScaleC = F32S && !SWAP;  // scales applied on C columns (else per weight row, B side / SWAP rows)
  const S* s_next = scales + g_first + (kScaleC ? colC : colB);
  const uint8_t* z_next = ZEROS ? zeros + g_first + colB : nullptr;
  auto fetch = [&]() {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      if (ZEROS) nz[h] = z_next[8 * h];
      if (!kScaleC) nsB[h] = s_next[8 * h];
    }
    if (kScaleC)
#pragma unroll
      for (int j = 0; j < 2; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) nsC[j][e] = s_next[8 * j + e];
    s_next += N;
    if (ZEROS) z_next += N;
  };
  auto flush = [&]() {  // F32S: acc += scale · group sum
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        acc[j][e] = fmaf(SWAP ? sc[0][e >> 1] : sc[j][e & 1], gacc[j][e], acc[j][e]);
        gacc[j][e] = 0.f;
      }
  };
  auto use_fetched = [&]() {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      if (ZEROS) z2[h] = Tr::splat(Tr::kBase + float(nz[h]));
      if (!F32S) s2[h] = Tr::splat(to_f32<S>(nsB[h]));
      if (F32S && SWAP) sc[0][h] = to_f32<S>(nsB[h]);  // C rows g, g + 8
    }
    if (kScaleC)
#pragma unroll
      for (int j = 0; j < 2; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) sc[j][e] = to_f32<S>(nsC[j][e]);
  };
  if (!ZEROS) z2[0] = z2[1] = Tr::splat(Tr::kBase + 8.f);  // symmetric: zero point 8 throughout
  if (active) fetch();

  auto block = [&](const uint4& w, int i) {
    const int gi = (kb0 + i) >> bpg_shift;
    if (gi != cur_g) {
      if (F32S && cur_g >= 0) flush();
      cur_g = gi;
      use_fetched();
      if (gi < last_g) fetch();
    }
    const unsigned xb = xrow + unsigned(i) * 128u;
    uint32_t xf[2][4];  // SWAP: B fragments of k16 steps (2p, 2p + 1) in xf[p]
    if (SWAP) {
      ldmatrix_x4(xf[0], xb + koff0);
      ldmatrix_x4(xf[1], xb + (koff0 ^ 64u));
    }
#pragma unroll
    for (int kc = 0; kc < 4; kc++) {
      uint32_t a[4];
      if (!SWAP) ldmatrix_x4(a, xb + (koff0 ^ unsigned(kc * 32)));
      const uint32_t wd = kc == 0 ? w.x : kc == 1 ? w.y : kc == 2 ? w.z : w.w;
      uint32_t b[4];
#pragma unroll
      for (int q = 0; q < 4; q++) {
        const T2 v = t2_of<T2>(((wd >> (4 * q)) & 0x000F000Fu) | Tr::kMagic);
        const T2 d = __hsub2(v, z2[q >> 1]);  // q − zero, exact
        b[q] = u32_of(F32S ? d : __hmul2(d, s2[q >> 1]));
      }
      if (SWAP) {  // slots (0|4, 2|6, 1|5, 3|7) = A fragment rows (g, g+8) × k (2t, 2t+8)
        const uint32_t wa[4] = {b[0], b[2], b[1], b[3]};
        Mma16816<T>::run(F32S ? gacc[0] : acc[0], wa, xf[kc >> 1][2 * (kc & 1)], xf[kc >> 1][2 * (kc & 1) + 1]);
      } else {
        Mma16816<T>::run(F32S ? gacc[0] : acc[0], a, b[0], b[1]);
        Mma16816<T>::run(F32S ? gacc[1] : acc[1], a, b[2], b[3]);
      }
    }
  };

  const uint4* wnext = wp + DEPTH * 32;  // the block that refills the ring slot just consumed
  for (int base = 0; base < nkw; base += DEPTH) {
#pragma unroll
    for (int u = 0; u < DEPTH; u++) {
      const int i = base + u;
      if (i < nkw) {
        const uint4 w = ring[u];
        if (i + DEPTH < nkw) ring[u] = ldg_stream(wnext);
        wnext += 32;
        block(w, i);
      }
    }
  }
  if (F32S && cur_g >= 0) flush();

  // Epilogue: rows g and g + 8, columns colC + 8j + {0, 1} (SWAP: transposed, columns colB + 8h, rows 2t + e).
  const bool split = gridDim.z > 1;
  if (SWAP && active) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int n = colB + 8 * (e >> 1), m = 2 * t + (e & 1);
      if (m >= M) continue;
      if (split) partial[(int64_t(blockIdx.z) * M + m) * N + n] = acc[0][e];
      else y[int64_t(m) * N + n] = from_f32<T>(acc[0][e] + (bias ? load_as_f32(bias, n, bdt) : 0.f));
    }
  }
  if (!SWAP && active) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      const int col = colC + 8 * j;
      float b0 = 0.f, b1 = 0.f;
      if (!split && bias) { b0 = load_as_f32(bias, col, bdt); b1 = load_as_f32(bias, col + 1, bdt); }
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int m = g + 8 * h;
        if (m >= M) continue;
        if (split) {
          *reinterpret_cast<float2*>(partial + (int64_t(blockIdx.z) * M + m) * N + col) = make_float2(acc[j][2 * h], acc[j][2 * h + 1]);
        } else {
          T2 o;
          o.x = from_f32<T>(acc[j][2 * h] + b0);
          o.y = from_f32<T>(acc[j][2 * h + 1] + b1);
          *reinterpret_cast<T2*>(y + int64_t(m) * N + col) = o;
        }
      }
    }
  }
  if (!split) return;

  // One-launch split-K: the last CTA of this n-tile reduces every split's partials.
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const int ticket = atomicAdd(tickets + blockIdx.x, 1);
    s_last = ticket == int(gridDim.z) - 1;
    if (s_last) tickets[blockIdx.x] = 0;  // every split has arrived: ready for the next call
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const int n0 = blockIdx.x * kTileN, nn = min(kTileN, N - n0);
  for (int i = tid; i < M * nn; i += kThreads) {
    const int m = i / nn, n = n0 + (i - m * nn);
    float v = bias ? load_as_f32(bias, n, bdt) : 0.f;
    for (int z = 0; z < int(gridDim.z); z++) v += __ldcg(partial + (int64_t(z) * M + m) * N + n);
    y[int64_t(m) * N + n] = from_f32<T>(v);
  }
}

// ---------------------------------------------------------------- host side

bool env_on(const char* name) {
  const char* e = std::getenv(name);
  return e && e[0] && std::strcmp(e, "0") != 0;
}
int env_int(const char* name, int def) {
  const char* e = std::getenv(name);
  return e && e[0] ? std::atoi(e) : def;
}

// Tickets for the in-launch reduction, one int per n-tile, zero between calls (the last CTA resets its
// own). One buffer per (device, stream) so that concurrent streams never share a ticket.
int* tickets_for(cudaStream_t st, int64_t n) {
  static std::mutex mu;
  static std::map<std::pair<int, cudaStream_t>, std::pair<int*, int64_t>> bufs;
  int dev = 0;
  cuda_throw_if(int(cudaGetDevice(&dev)), "int4 lean: cudaGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  auto& b = bufs[{dev, st}];
  if (b.second < n) {
    if (b.first) {  // grow: the old buffer may still be in use by work queued on this stream
      cuda_throw_if(int(cudaStreamSynchronize(st)), "int4 lean: sync");
      cudaFree(b.first);
      b = {nullptr, 0};
    }
    const int64_t cap = std::max<int64_t>(n, 4096);
    int* p = nullptr;
    cuda_throw_if(int(cudaMalloc(&p, size_t(cap) * sizeof(int))), "int4 lean: ticket buffer");
    cuda_throw_if(int(cudaMemsetAsync(p, 0, size_t(cap) * sizeof(int), st)), "int4 lean: ticket buffer");
    b = {p, cap};
  }
  return b.first;
}

int shift_of(int64_t v) { int s = 0; while ((int64_t(1) << s) < v) s++; return s; }

int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

Int4LeanPlan int4_lean_plan(int64_t M, int64_t N, int64_t K, int64_t group, int xdt, bool prepared, const void* x,
                            int sdt, bool zeros) {
  Int4LeanPlan p;
  if (!env_on("LLMK_INT4_LEAN")) return p;
  const bool pow2 = group >= 64 && (group & (group - 1)) == 0;
  if (!prepared || !is_half(DType(xdt)) || !int4_fast_layout(N, K) || M < 1 || M > 16 || !(pow2 || group == K) ||
      (x && reinterpret_cast<uintptr_t>(x) % 16 != 0) || N > (int64_t(1) << 30) || K > (int64_t(1) << 30))
    return p;
  const int64_t KB = ceil_div(K, 64), ntiles = ceil_div(N, kTileN);
  const int64_t max_kpb = std::max<int64_t>(1, kMaxXSmem / (M * 128));
  // Enough CTAs for about 8 per SM (32 warps), each with at least 4 k-blocks; the x slice bounds kpb.
  int64_t splits = std::min<int64_t>(ceil_div(int64_t(sm_count()) * 8, ntiles), std::max<int64_t>(1, KB / 4));
  if (const int s = env_int("LLMK_INT4_SPLITS", 0); s > 0) splits = s;
  splits = std::max<int64_t>({int64_t(1), std::min<int64_t>(splits, KB), ceil_div(KB, max_kpb)});
  const int64_t kpb = ceil_div(KB, splits);
  p.kb_per_split = int(kpb);
  p.splits = int(ceil_div(KB, kpb));
  p.depth = env_int("LLMK_INT4_LEAN_DEPTH", 8);
  if (p.depth != 4 && p.depth != 16) p.depth = 8;
  p.f32_scales = env_on("LLMK_INT4_F32SCALE");
  p.swap = env_on("LLMK_INT4_SWAPAB") && M <= 8;
  if (p.swap) p.depth = 8;
  if (sdt >= 0 && !(xdt == int(DType::F16) && sdt == int(DType::F16) && !zeros)) {  // not the sweep's configuration
    p.depth = 8;
    p.swap = false;
  }
  static const char* const names[2][2] = {{"lean", "lean-swap"}, {"lean-f32s", "lean-f32s-swap"}};
  p.name = names[p.f32_scales][p.swap];
  p.workspace = p.splits > 1 ? align256(int64_t(p.splits) * M * N * 4) : 0;
  return p;
}

namespace {

template <typename T, typename S, bool Z, bool F32S, int DEPTH, bool SWAP = false>
void launch_lean(const Int4LeanPlan& p, const void* x, const uint8_t* qw, const void* scales, const uint8_t* zeros,
                 const void* bias, int bdt, void* y, float* partial, int64_t M, int64_t N, int64_t K, int64_t group,
                 cudaStream_t st) {
  const int64_t KB = ceil_div(K, 64), ntiles = ceil_div(N, kTileN);
  const int smem = int(M * p.kb_per_split * 128);
  auto kern = int4_lean_kernel<T, S, Z, F32S, DEPTH, SWAP>;
  if (smem > 48 * 1024) cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)), "int4 lean smem");
  int* tickets = p.splits > 1 ? tickets_for(st, ntiles) : nullptr;
  const int bpg_shift = group == K && (group < 64 || (group & (group - 1)) != 0) ? 30 : shift_of(group / 64);
  dim3 grid(unsigned(ntiles), 1, unsigned(p.splits));
  kern<<<grid, kThreads, smem, st>>>(static_cast<const T*>(x), reinterpret_cast<const uint4*>(qw), static_cast<const S*>(scales),
                                     zeros, bias, bdt, static_cast<T*>(y), partial, tickets, int(M), int(N), int(K), int(KB),
                                     p.kb_per_split, bpg_shift);
  check_launch("int4_lean_kernel");
}

template <typename T, typename S, bool Z>
void pick_mode(const Int4LeanPlan& p, const void* x, const uint8_t* qw, const void* scales, const uint8_t* zeros,
               const void* bias, int bdt, void* y, float* partial, int64_t M, int64_t N, int64_t K, int64_t group,
               cudaStream_t st) {
  // Ring depths 4 and 16 and SWAP exist only for the sweep's configuration (float16, float16 scales,
  // symmetric); int4_lean_plan resolves them to depth 8 without SWAP elsewhere.
  constexpr bool kSweepCfg = std::is_same<T, __half>::value && std::is_same<S, __half>::value && !Z;
  if constexpr (kSweepCfg) {
    if (p.swap)
      return p.f32_scales ? launch_lean<T, S, Z, true, 8, true>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st)
                          : launch_lean<T, S, Z, false, 8, true>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.depth == 4)
      return p.f32_scales ? launch_lean<T, S, Z, true, 4>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st)
                          : launch_lean<T, S, Z, false, 4>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
    if (p.depth == 16)
      return p.f32_scales ? launch_lean<T, S, Z, true, 16>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st)
                          : launch_lean<T, S, Z, false, 16>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
  }
  if (p.f32_scales) launch_lean<T, S, Z, true, 8>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
  else launch_lean<T, S, Z, false, 8>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
}

template <typename T, typename S>
void pick_zeros(const Int4LeanPlan& p, const void* x, const uint8_t* qw, const void* scales, const uint8_t* zeros,
                const void* bias, int bdt, void* y, float* partial, int64_t M, int64_t N, int64_t K, int64_t group,
                cudaStream_t st) {
  if (zeros) pick_mode<T, S, true>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
  else pick_mode<T, S, false>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
}

template <typename T>
void pick_scales(int sdt, const Int4LeanPlan& p, const void* x, const uint8_t* qw, const void* scales,
                 const uint8_t* zeros, const void* bias, int bdt, void* y, float* partial, int64_t M, int64_t N,
                 int64_t K, int64_t group, cudaStream_t st) {
  if (sdt == int(DType::F32)) pick_zeros<T, float>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
  else if (sdt == int(DType::F16)) pick_zeros<T, __half>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
  else pick_zeros<T, __nv_bfloat16>(p, x, qw, scales, zeros, bias, bdt, y, partial, M, N, K, group, st);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool int4_lean_matmul(const Int4MatmulParams& a, void* workspace, int64_t workspace_bytes, void* stream) {
  const int xdt = int(a.xdt), sdt = int(a.sdt);
  const Int4LeanPlan p = int4_lean_plan(a.M, a.N, a.K, a.group, xdt, a.prepared, a.x, sdt, a.zeros != nullptr);
  if (!p.name || !aligned16(a.qweight) || !aligned16(a.scales) || (a.zeros && !aligned16(a.zeros))) return false;
  LLMK_CHECK(workspace_bytes >= p.workspace && (p.workspace == 0 || aligned16(workspace)), Internal,
             "int4 lean: workspace too small");
  float* partial = p.splits > 1 ? static_cast<float*>(workspace) : nullptr;
  cudaStream_t st = as_stream(stream);
  if (xdt == int(DType::F16))
    pick_scales<__half>(sdt, p, a.x, a.qweight, a.scales, a.zeros, a.bias, int(a.bdt), a.y, partial, a.M, a.N, a.K, a.group, st);
  else
    pick_scales<__nv_bfloat16>(sdt, p, a.x, a.qweight, a.scales, a.zeros, a.bias, int(a.bdt), a.y, partial, a.M, a.N, a.K,
                               a.group, st);
  return true;
}

}  // namespace llmk::cuda
