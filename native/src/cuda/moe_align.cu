// CUDA MoE align / permute / combine / expertCounts / loadBalancingLoss (docs/architecture.md §4.1).
//
// align: a stable counting sort of the T*k slots by expert, without a host round trip.
//   n <= kSmallSlots: one CTA does everything (count, scan, fill, scatter).
//   otherwise, 3 kernels over tiles of 256*R slots (R rounds of 32 slots per warp, <= ~128 tiles):
//     count  : per-tile expert histograms (shared atomics) + fill of sortedIds / blockExperts;
//     scan   : one CTA: per expert, exclusive prefix over tiles; padded expert starts; blockExperts;
//     scatter: per tile, per-warp histograms -> per-warp bases, then a stable in-warp rank with
//              __match_any_sync, round by round, so slots of one expert keep ascending order.
//   Out-of-range ids set the device error flag and are skipped (never an out-of-bounds access).
#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "moe.h"

namespace llmk::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kAlignThreads = 256;
constexpr int kAlignWarps = kAlignThreads / 32;
constexpr int kScanThreads = 1024;
constexpr int64_t kSmallSlots = 4096;
constexpr int kMaxTiles = 128;

__device__ __forceinline__ void raise_flag(int* flag) {
  if (flag) atomicExch(flag, 1);
}

// Exclusive scan over the CTA (blockDim a multiple of 32, <= 1024). ws: 33 ints of shared memory.
__device__ int block_excl_scan(int v, int* ws, int* total) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, nw = int(blockDim.x) >> 5;
  int incl = v;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    int o = __shfl_up_sync(kFull, incl, off);
    if (lane >= off) incl += o;
  }
  __syncthreads();
  if (lane == 31) ws[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int w = lane < nw ? ws[lane] : 0;
    int wi = w;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      int o = __shfl_up_sync(kFull, wi, off);
      if (lane >= off) wi += o;
    }
    if (lane < nw) ws[lane] = wi - w;
    if (lane == 31) ws[32] = wi;
  }
  __syncthreads();
  const int r = ws[warp] + incl - v;
  *total = ws[32];
  return r;
}

// Last e in [0, E] with start[e] <= pos (start non-decreasing, start[0] = 0).
__device__ __forceinline__ int find_expert(const int* start, int E, int pos) {
  int lo = 0, hi = E;  // invariant: start[lo] <= pos, answer in [lo, hi]
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (start[mid] <= pos) lo = mid; else hi = mid - 1;
  }
  return lo;
}

struct AlignArgs {
  const int32_t* ids;
  int64_t n;
  int E, bs;
  int32_t* sorted;
  int64_t capacity;
  int32_t* block_experts;
  int64_t num_blocks;
  int32_t* num_padded;
  int32_t* expert_offsets;  // optional [E+1]
  int* flag;
  int rounds;               // rounds of 32 slots per warp in a tile
};

// Stable scatter of one tile. wh: [kAlignWarps][E] shared ints already holding each warp's base.
__device__ void scatter_tile(const AlignArgs& a, int64_t tile_base, int* wh) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const unsigned lt = (1u << lane) - 1u;
  int* my = wh + warp * a.E;
  for (int r = 0; r < a.rounds; r++) {
    const int64_t slot = tile_base + (int64_t(warp) * a.rounds + r) * 32 + lane;
    int e = -1;
    if (slot < a.n) {
      e = a.ids[slot];
      if (e < 0 || e >= a.E) e = -1;
    }
    const unsigned peers = __match_any_sync(kFull, e);
    int base = 0;
    if (e >= 0) base = my[e];
    __syncwarp();
    if (e >= 0) {
      a.sorted[base + __popc(peers & lt)] = int32_t(slot);
      if ((peers & lt) == 0u) my[e] = base + __popc(peers);
    }
    __syncwarp();
  }
}

// Per-warp histograms of one tile (wh zeroed by the caller). Flags bad ids.
__device__ void count_tile(const AlignArgs& a, int64_t tile_base, int* wh) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int r = 0; r < a.rounds; r++) {
    const int64_t slot = tile_base + (int64_t(warp) * a.rounds + r) * 32 + lane;
    if (slot < a.n) {
      const int e = a.ids[slot];
      if (e < 0 || e >= a.E) raise_flag(a.flag);
      else atomicAdd(&wh[warp * a.E + e], 1);
    }
  }
}

// Fills sortedIds with the pad value and writes blockExperts / numPadded / expertOffsets from start[].
__device__ void write_blocks(const AlignArgs& a, const int* start, int64_t gtid, int64_t gstride) {
  const int total = start[a.E];
  const int used_blocks = total / a.bs;
  for (int64_t b = gtid; b < a.num_blocks; b += gstride)
    a.block_experts[b] = b < used_blocks ? find_expert(start, a.E, int(b) * a.bs) : -1;
  if (gtid == 0) a.num_padded[0] = total;
  if (a.expert_offsets)
    for (int64_t e = gtid; e <= a.E; e += gstride) a.expert_offsets[e] = start[e];
}

__global__ void __launch_bounds__(kAlignThreads) align_small_kernel(AlignArgs a) {
  extern __shared__ int sm[];
  int* wh = sm;                              // [8][E]
  int* start = wh + kAlignWarps * a.E;       // [E+1]
  int* ws = start + a.E + 1;                 // [33]
  const int tid = int(threadIdx.x);
  for (int i = tid; i < kAlignWarps * a.E; i += kAlignThreads) wh[i] = 0;
  const int32_t pad = int32_t(a.n);
  for (int64_t i = tid; i < a.capacity; i += kAlignThreads) a.sorted[i] = pad;
  __syncthreads();
  count_tile(a, 0, wh);
  __syncthreads();
  // Each thread owns a contiguous run of experts for the scan.
  const int per = (a.E + kAlignThreads - 1) / kAlignThreads;
  const int e0 = min(tid * per, a.E), e1 = min(e0 + per, a.E);
  int local = 0;
  for (int e = e0; e < e1; e++) {
    int c = 0;
    for (int w = 0; w < kAlignWarps; w++) c += wh[w * a.E + e];
    local += (c + a.bs - 1) / a.bs * a.bs;
  }
  int total = 0;
  int run = block_excl_scan(local, ws, &total);
  for (int e = e0; e < e1; e++) {
    start[e] = run;
    int c = 0;
    for (int w = 0; w < kAlignWarps; w++) { int v = wh[w * a.E + e]; wh[w * a.E + e] = run + c; c += v; }
    run += (c + a.bs - 1) / a.bs * a.bs;
  }
  if (tid == 0) start[a.E] = total;
  __syncthreads();
  write_blocks(a, start, tid, kAlignThreads);
  __syncthreads();  // the pad fill above precedes the scatter's writes
  scatter_tile(a, 0, wh);
}

// Multi-tile: tile counts -> scratch tc[tile][E]; also fills the outputs.
__global__ void __launch_bounds__(kAlignThreads) align_count_kernel(AlignArgs a, int* tc) {
  extern __shared__ int sm[];
  int* wh = sm;  // [8][E]
  const int tid = int(threadIdx.x);
  for (int i = tid; i < kAlignWarps * a.E; i += kAlignThreads) wh[i] = 0;
  const int64_t gtid = int64_t(blockIdx.x) * kAlignThreads + tid, gstride = int64_t(gridDim.x) * kAlignThreads;
  const int32_t pad = int32_t(a.n);
  for (int64_t i = gtid; i < a.capacity; i += gstride) a.sorted[i] = pad;
  __syncthreads();
  const int64_t tile_slots = int64_t(kAlignThreads) * a.rounds;
  count_tile(a, int64_t(blockIdx.x) * tile_slots, wh);
  __syncthreads();
  for (int e = tid; e < a.E; e += kAlignThreads) {
    int c = 0;
    for (int w = 0; w < kAlignWarps; w++) c += wh[w * a.E + e];
    tc[int64_t(blockIdx.x) * a.E + e] = c;
  }
}

// One CTA of 1024 threads (E <= 1024): per-expert exclusive prefix over tiles (in place), padded
// starts -> start_out[E+1], blockExperts, numPadded, expertOffsets.
__global__ void __launch_bounds__(kScanThreads) align_scan_kernel(AlignArgs a, int* tc, int tiles, int* start_out) {
  extern __shared__ int sm[];
  int* start = sm;          // [E+1]
  int* ws = start + a.E + 1;  // [33]
  const int e = int(threadIdx.x);
  int c = 0;
  if (e < a.E) {
    int t = 0;
    for (; t + 4 <= tiles; t += 4) {
      int v0 = tc[int64_t(t) * a.E + e], v1 = tc[int64_t(t + 1) * a.E + e];
      int v2 = tc[int64_t(t + 2) * a.E + e], v3 = tc[int64_t(t + 3) * a.E + e];
      tc[int64_t(t) * a.E + e] = c; c += v0;
      tc[int64_t(t + 1) * a.E + e] = c; c += v1;
      tc[int64_t(t + 2) * a.E + e] = c; c += v2;
      tc[int64_t(t + 3) * a.E + e] = c; c += v3;
    }
    for (; t < tiles; t++) { int v = tc[int64_t(t) * a.E + e]; tc[int64_t(t) * a.E + e] = c; c += v; }
  }
  const int padded = e < a.E ? (c + a.bs - 1) / a.bs * a.bs : 0;
  int total = 0;
  const int s = block_excl_scan(padded, ws, &total);
  if (e < a.E) { start[e] = s; start_out[e] = s; }
  if (e == 0) { start[a.E] = total; start_out[a.E] = total; }
  __syncthreads();
  write_blocks(a, start, e, kScanThreads);
}

__global__ void __launch_bounds__(kAlignThreads) align_scatter_kernel(AlignArgs a, const int* tc, const int* start) {
  extern __shared__ int sm[];
  int* wh = sm;  // [8][E]
  const int tid = int(threadIdx.x);
  for (int i = tid; i < kAlignWarps * a.E; i += kAlignThreads) wh[i] = 0;
  __syncthreads();
  const int64_t tile_base = int64_t(blockIdx.x) * kAlignThreads * a.rounds;
  // recount per warp (no flagging: the count kernel did it)
  {
    const int lane = tid & 31, warp = tid >> 5;
    for (int r = 0; r < a.rounds; r++) {
      const int64_t slot = tile_base + (int64_t(warp) * a.rounds + r) * 32 + lane;
      if (slot < a.n) {
        const int e = a.ids[slot];
        if (e >= 0 && e < a.E) atomicAdd(&wh[warp * a.E + e], 1);
      }
    }
  }
  __syncthreads();
  for (int e = tid; e < a.E; e += kAlignThreads) {
    int run = tc[int64_t(blockIdx.x) * a.E + e] + start[e];
    for (int w = 0; w < kAlignWarps; w++) { int v = wh[w * a.E + e]; wh[w * a.E + e] = run; run += v; }
  }
  __syncthreads();
  scatter_tile(a, tile_base, wh);
}

struct TilePlan { int rounds; int tiles; };
TilePlan plan_tiles(int64_t n) {
  const int64_t per_round = kAlignThreads;  // slots per round over the CTA
  int64_t rounds = std::max<int64_t>(8, (n + int64_t(kMaxTiles) * per_round - 1) / (int64_t(kMaxTiles) * per_round));
  int64_t tiles = (n + per_round * rounds - 1) / (per_round * rounds);
  return {int(rounds), int(std::max<int64_t>(tiles, 1))};
}

void set_smem(const void* kern, int64_t bytes) {
  if (bytes > 48 * 1024)
    cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes))),
                  "moe_align smem attribute");
}

void align_impl(AlignArgs a, void* scratch, cudaStream_t s) {
  // The scan kernel gives one thread of a 1024-thread CTA to each expert, the histograms hold 8*E
  // ints of shared memory, and every padded offset is an int32 (the ops layer checks all three).
  LLMK_CHECK(a.E >= 1 && a.E <= kScanThreads, Arg, "moe_align: experts must be in [1, %d], got %d", kScanThreads, a.E);
  LLMK_CHECK(a.n <= INT32_MAX && a.capacity <= INT32_MAX, Arg, "moe_align: %lld slots / capacity %lld exceed int32",
             (long long)a.n, (long long)a.capacity);
  const int64_t wh_bytes = int64_t(kAlignWarps) * a.E * 4;
  if (a.n <= kSmallSlots) {
    a.rounds = int((std::max<int64_t>(a.n, 1) + kAlignThreads - 1) / kAlignThreads);
    const int64_t bytes = wh_bytes + (int64_t(a.E) + 1 + 33) * 4;
    set_smem(reinterpret_cast<const void*>(align_small_kernel), bytes);
    align_small_kernel<<<1, kAlignThreads, size_t(bytes), s>>>(a);
    check_launch("moe_align_small");
    return;
  }
  TilePlan p = plan_tiles(a.n);
  a.rounds = p.rounds;
  int* tc = static_cast<int*>(scratch);
  int* start = tc + int64_t(p.tiles) * a.E;
  set_smem(reinterpret_cast<const void*>(align_count_kernel), wh_bytes);
  align_count_kernel<<<unsigned(p.tiles), kAlignThreads, size_t(wh_bytes), s>>>(a, tc);
  check_launch("moe_align_count");
  const int64_t scan_bytes = (int64_t(a.E) + 1 + 33) * 4;
  align_scan_kernel<<<1, kScanThreads, size_t(scan_bytes), s>>>(a, tc, p.tiles, start);
  check_launch("moe_align_scan");
  set_smem(reinterpret_cast<const void*>(align_scatter_kernel), wh_bytes);
  align_scatter_kernel<<<unsigned(p.tiles), kAlignThreads, size_t(wh_bytes), s>>>(a, tc, start);
  check_launch("moe_align_scatter");
}

// ---- permute / combine ----

__global__ void permute_gather_kernel(const char* x, int64_t n, int k, int64_t row_bytes, bool vec16,
                                      const int32_t* sorted, char* out, int32_t* row_map) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int32_t slot = sorted[r];
    if (slot < 0 || slot >= n) continue;  // only after a flagged bad id
    if (threadIdx.x == 0) row_map[slot] = int32_t(r);
    const char* src = x + (int64_t(slot) / k) * row_bytes;
    char* dst = out + r * row_bytes;
    if (vec16) {
      for (int64_t c = threadIdx.x; c < row_bytes / 16; c += blockDim.x)
        reinterpret_cast<uint4*>(dst)[c] = __ldg(reinterpret_cast<const uint4*>(src) + c);
    } else {
      for (int64_t c = threadIdx.x; c < row_bytes; c += blockDim.x) dst[c] = src[c];
    }
  }
}

template <typename T>
__global__ void combine_kernel(const T* y, int64_t rows, int64_t H, const float* w, const int32_t* row_map,
                               int64_t tokens, int k, T* out, int* flag) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
      float acc = 0.f;
      for (int j = 0; j < k; j++) {
        const int32_t r = row_map[t * k + j];
        if (r < 0 || r >= rows) { raise_flag(flag); continue; }
        acc += w[t * k + j] * to_f32<T>(y[int64_t(r) * H + h]);
      }
      out[t * H + h] = from_f32<T>(acc);
    }
  }
}

// ---- expert counts / load-balancing loss ----

__global__ void counts_kernel(const int32_t* ids, int64_t n, int E, int32_t* counts, int* flag) {
  extern __shared__ int hist[];
  for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int e = ids[i];
    if (e < 0 || e >= E) raise_flag(flag);
    else atomicAdd(&hist[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    if (hist[e]) atomicAdd(&counts[e], hist[e]);
}

template <typename T>
__global__ void lb_partial_kernel(const T* probs, int64_t tokens, int E, const int32_t* ids, int k, int64_t rows_per,
                                  float* pp, int* pc, int* flag) {
  extern __shared__ int hist[];
  const int64_t t0 = int64_t(blockIdx.x) * rows_per, t1 = min(tokens, t0 + rows_per);
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    hist[e] = 0;
    float acc = 0.f;
    for (int64_t t = t0; t < t1; t++) acc += to_f32<T>(probs[t * E + e]);
    pp[int64_t(blockIdx.x) * E + e] = acc;
  }
  __syncthreads();
  for (int64_t i = t0 * k + threadIdx.x; i < t1 * k; i += blockDim.x) {
    const int e = ids[i];
    if (e < 0 || e >= E) raise_flag(flag);
    else atomicAdd(&hist[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) pc[int64_t(blockIdx.x) * E + e] = hist[e];
}

__global__ void __launch_bounds__(1024) lb_final_kernel(const float* pp, const int* pc, int chunks, int64_t tokens,
                                                        int E, int k, float* out) {
  __shared__ double red[32];
  double term = 0.0;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    double P = 0.0;
    int64_t C = 0;
    for (int c = 0; c < chunks; c++) { P += double(pp[int64_t(c) * E + e]); C += pc[int64_t(c) * E + e]; }
    term += (double(C) / double(tokens * k)) * (P / double(tokens));
  }
  for (int off = 16; off > 0; off >>= 1) term += __shfl_xor_sync(kFull, term, off);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = term;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int w = 0; w < int(blockDim.x >> 5); w++) s += red[w];
    out[0] = float(double(E) * s);
  }
}

struct LbPlan { int64_t rows_per; int chunks; };
LbPlan plan_lb(int64_t tokens) {
  int64_t rows_per = std::max<int64_t>(32, (tokens + 255) / 256);
  return {rows_per, int(std::max<int64_t>(1, (tokens + rows_per - 1) / rows_per))};
}

}  // namespace

int64_t moe_align_scratch_bytes(int64_t n, int experts) {
  if (n <= kSmallSlots) return 0;
  TilePlan p = plan_tiles(n);
  return (int64_t(p.tiles) * experts + experts + 1) * 4;
}

void moe_align(const MoeAlignParams& p, void* scratch, int* err_flag, void* stream) {
  // The kernels' by-value argument keeps its own flat layout (their PTX is GPU-verified): MoeAlignParams' fields,
  // then what only the device needs.
  AlignArgs a{p.ids, p.n, p.E, p.bs, p.sorted, p.capacity, p.block_experts, p.num_blocks, p.num_padded,
              p.expert_offsets, err_flag, 1};
  align_impl(a, scratch, as_stream(stream));
}

int64_t moe_permute_scratch_bytes(int64_t n, int experts) {
  // sorted slots [n] + numPadded [1] (+ align scratch), 16-byte aligned pieces
  return ((n + 1) * 4 + 15) / 16 * 16 + moe_align_scratch_bytes(n, experts);
}

void moe_permute(const MoePermuteParams& p, void* scratch, int* err_flag, void* stream) {
  cudaStream_t s = as_stream(stream);
  const int64_t n = p.tokens * p.k;
  if (n == 0) {
    cuda_throw_if(int(cudaMemsetAsync(p.expert_offsets, 0, size_t(p.experts + 1) * 4, s)), "moe_permute memset");
    return;
  }
  int32_t* sorted = static_cast<int32_t*>(scratch);
  int32_t* npad = sorted + n;
  void* align_scratch = static_cast<char*>(scratch) + ((n + 1) * 4 + 15) / 16 * 16;
  AlignArgs a{p.ids, n, p.experts, 1, sorted, n, nullptr, 0, npad, p.expert_offsets, err_flag, 1};
  align_impl(a, align_scratch, s);
  const int64_t row_bytes = p.hidden * int64_t(dtype_size(p.dtype));
  const bool vec16 = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  const int64_t units = vec16 ? row_bytes / 16 : row_bytes;
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (units + 31) / 32 * 32)));
  const int64_t blocks = std::min<int64_t>(n, int64_t(sm_count()) * 16);
  permute_gather_kernel<<<unsigned(blocks), threads, 0, s>>>(static_cast<const char*>(p.x), n, p.k, row_bytes, vec16,
                                                             sorted, static_cast<char*>(p.out), p.row_map);
  check_launch("moe_permute_gather");
}

void moe_combine(const MoeCombineParams& p, int* err_flag, void* stream) {
  const int64_t tokens = p.tokens, hidden = p.hidden;
  if (tokens == 0 || hidden == 0) return;
  cudaStream_t s = as_stream(stream);
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (hidden + 31) / 32 * 32)));
  const unsigned blocks = unsigned(std::min<int64_t>(tokens, int64_t(sm_count()) * 16));
  LLMK_DISPATCH_FLOAT(p.dtype, T, combine_kernel<T><<<blocks, threads, 0, s>>>(static_cast<const T*>(p.y), p.rows,
                                                                            hidden, p.weights, p.row_map, tokens, p.k,
                                                                            static_cast<T*>(p.out), err_flag));
  check_launch("moe_combine");
}

void moe_expert_counts(const int32_t* ids, int64_t n, int experts, int32_t* counts, int* err_flag, void* stream) {
  cudaStream_t s = as_stream(stream);
  cuda_throw_if(int(cudaMemsetAsync(counts, 0, size_t(experts) * 4, s)), "moe_expert_counts memset");
  if (n == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>((n + 255) / 256, int64_t(sm_count()) * 4));
  counts_kernel<<<blocks, 256, size_t(experts) * 4, s>>>(ids, n, experts, counts, err_flag);
  check_launch("moe_expert_counts");
}

int64_t moe_lb_loss_scratch_bytes(int64_t tokens, int experts) {
  LbPlan p = plan_lb(tokens);
  return int64_t(p.chunks) * experts * 8;
}

void moe_load_balancing_loss(const MoeLbLossParams& lp, void* scratch, int* err_flag, void* stream) {
  const int64_t tokens = lp.tokens;
  const int experts = lp.experts;
  cudaStream_t s = as_stream(stream);
  if (tokens == 0) {
    cuda_throw_if(int(cudaMemsetAsync(lp.out, 0, 4, s)), "moe_lb_loss memset");
    return;
  }
  LbPlan p = plan_lb(tokens);
  float* pp = static_cast<float*>(scratch);
  int* pc = reinterpret_cast<int*>(pp + int64_t(p.chunks) * experts);
  const int threads = int(std::min(1024, std::max(32, (experts + 31) / 32 * 32)));
  const size_t sm = size_t(experts) * 4;
  LLMK_DISPATCH_FLOAT(lp.dtype, T, lb_partial_kernel<T><<<unsigned(p.chunks), threads, sm, s>>>(
                                     static_cast<const T*>(lp.probs), tokens, experts, lp.ids, lp.k, p.rows_per, pp, pc,
                                     err_flag));
  check_launch("moe_lb_partial");
  lb_final_kernel<<<1, 1024, 0, s>>>(pp, pc, p.chunks, tokens, experts, lp.k, lp.out);
  check_launch("moe_lb_final");
}

}  // namespace llmk::cuda
