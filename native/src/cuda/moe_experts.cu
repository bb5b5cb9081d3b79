// MoE expert layer on CUDA, the simple version (no tensor cores yet): compiled, not verified on a GPU.
//   1. prep: each slot's local expert (skipped or invalid slots flagged, never indexed with);
//   2. moe_align: slots grouped by expert into blocks of kRows (sortedIds / blockExperts stay on the device);
//   3. GEMM 1 per (block, neuron tile): rows gathered from x in the load (no permuted copy), bias,
//      activation and rounding to x's dtype in the epilogue -> h [n, I] (float32 holding rounded values);
//   4. GEMM 2 per (block, output tile): bias and routing weight in the epilogue -> o [n, H];
//   5. y[t] = Σ_j o[t·k + j] over kept slots, in j order (atomic-free, deterministic).
// Blocks past numPadded have blockExperts = -1 and exit at once, so no count is read back on the host.
#include "common.cuh"
#include "moe.h"
#include "moe_experts.h"
#include "../cpu/moe.h"
#include "../cpu/moe_experts_act.h"

namespace llmk::cuda {

namespace {

constexpr int kRows = 16;    // rows (slots) per align block
constexpr int kTile = 128;   // output features per CTA (one per thread)
constexpr int kDepth = 128;  // k per shared-memory stage of the gathered rows

__device__ __forceinline__ void raise(int* flag) {
  if (flag) atomicExch(flag, 1);
}

// Element (row, k) of a projection whose rows are the E experts' rows one after the other.
__device__ __forceinline__ float weight_at(const cpu::ExpertWeight& w, int64_t row, int64_t k, int64_t K) {
  if (w.dense) return load_as_f32(w.dense, row * K + k, w.dt);
  const int64_t G = K / w.group, g = k / w.group;
  uint32_t code;
  float s, z;
  if (w.tuned) {
    // tensor-core fragment layout of cpu/int4.h over all total_rows rows
    const int64_t nb = row / 16, r = row % 16, KB = (K + 63) / 64, kb = k / 64, kk = k % 64;
    const int64_t kc = kk / 16, j = kk % 16, t = (j % 8) / 2, lane = (r % 8) * 4 + t;
    const int slot = int((r >= 8 ? 2 : 0) + (j >= 8 ? 1 : 0) + ((j & 1) ? 4 : 0));
    const uint8_t* wp = w.q + (nb * KB + kb) * 512 + (lane * 4 + kc) * 4;
    const uint32_t word = uint32_t(wp[0]) | uint32_t(wp[1]) << 8 | uint32_t(wp[2]) << 16 | uint32_t(wp[3]) << 24;
    code = (word >> (4 * slot)) & 15u;
    s = load_as_f32(w.scales, g * w.total_rows + row, w.sdt);
    z = w.zeros ? float(w.zeros[g * w.total_rows + row]) : 8.f;
  } else {
    code = (w.q[row * (K / 2) + k / 2] >> ((k & 1) * 4)) & 15u;
    s = load_as_f32(w.scales, row * G + g, w.sdt);
    z = w.zeros ? float(w.zeros[row * G + g]) : 8.f;
  }
  return s * (float(code) - z);
}

__global__ void prep_kernel(const int32_t* ids, int64_t n, cpu::MoeExpertsParams p, int32_t* local, int32_t* keep,
                            int* flag) {
  const int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= n) return;
  const int32_t g = ids[s];
  int32_t e = -1;
  if (g < 0 || g >= p.global_experts) {
    raise(flag);
  } else {
    e = p.expert_map ? p.expert_map[g] : g;
    if (e < -1 || e >= p.experts) { raise(flag); e = -1; }
  }
  keep[s] = e >= 0;
  local[s] = e >= 0 ? e : 0;  // skipped slots ride along with expert 0 but are never computed
}

// Rows of block b (kRows slots, or the pad value n) staged kDepth columns at a time from `src`
// (row of slot s = src_row(s)); `acc` accumulates Σ_k W[row, k] · stage[r][k] for this thread's rows.
struct Gathered {
  float v[kRows][kDepth];
};

// GEMM 1: thread = neuron, CTA = (block of slots, tile of neurons).
__global__ void __launch_bounds__(kTile) gemm1_kernel(const void* x, int xdt, cpu::ExpertWeight w,
                                                      cpu::MoeExpertsParams p, const int32_t* sorted,
                                                      const int32_t* block_experts, const int32_t* keep, float* h) {
  __shared__ Gathered st;
  __shared__ int32_t slot[kRows];
  const int e = block_experts[blockIdx.x];
  if (e < 0) return;
  const int64_t n = p.tokens * p.k, H = p.hidden, I = p.inter;
  const bool gated = moe_act::gated(p.activation);
  const int64_t N = gated ? 2 * I : I;
  const int64_t j = int64_t(blockIdx.y) * kTile + threadIdx.x;
  if (threadIdx.x < kRows) {
    const int32_t s = sorted[int64_t(blockIdx.x) * kRows + threadIdx.x];
    slot[threadIdx.x] = (s < n && keep[s]) ? s : -1;
  }
  __syncthreads();
  const int64_t grow = e * N + (!gated ? j : p.interleaved ? 2 * j : j);
  const int64_t urow = e * N + (p.interleaved ? 2 * j + 1 : I + j);
  float ga[kRows], ua[kRows];
  for (int r = 0; r < kRows; r++) { ga[r] = 0.f; ua[r] = 0.f; }
  for (int64_t k0 = 0; k0 < H; k0 += kDepth) {
    for (int i = threadIdx.x; i < kRows * kDepth; i += kTile) {
      const int r = i / kDepth, c = i % kDepth;
      const int32_t s = slot[r];
      st.v[r][c] = (s >= 0 && k0 + c < H) ? load_as_f32(x, (s / p.k) * H + k0 + c, xdt) : 0.f;
    }
    __syncthreads();
    if (j < I) {
      const int64_t kend = min(int64_t(kDepth), H - k0);
      for (int64_t c = 0; c < kend; c++) {
        const float wg = weight_at(w, grow, k0 + c, H);
        const float wu = gated ? weight_at(w, urow, k0 + c, H) : 0.f;
        for (int r = 0; r < kRows; r++) {
          ga[r] += wg * st.v[r][c];
          ua[r] += wu * st.v[r][c];
        }
      }
    }
    __syncthreads();
  }
  if (j >= I) return;
  const float gb = w.bias ? load_as_f32(w.bias, grow, w.bdt) : 0.f;
  const float ub = (gated && w.bias) ? load_as_f32(w.bias, urow, w.bdt) : 0.f;
  for (int r = 0; r < kRows; r++) {
    const int32_t s = slot[r];
    if (s < 0) continue;
    h[int64_t(s) * I + j] = moe_act::round_to(xdt, moe_act::apply(p.activation, ga[r] + gb, ua[r] + ub));
  }
}

// GEMM 2: thread = output feature, CTA = (block of slots, tile of outputs).
__global__ void __launch_bounds__(kTile) gemm2_kernel(const float* h, cpu::ExpertWeight w, cpu::MoeExpertsParams p,
                                                      const float* weights, const int32_t* sorted,
                                                      const int32_t* block_experts, const int32_t* keep, float* o) {
  __shared__ Gathered st;
  __shared__ int32_t slot[kRows];
  const int e = block_experts[blockIdx.x];
  if (e < 0) return;
  const int64_t n = p.tokens * p.k, H = p.hidden, I = p.inter;
  const int64_t c0 = int64_t(blockIdx.y) * kTile + threadIdx.x;
  if (threadIdx.x < kRows) {
    const int32_t s = sorted[int64_t(blockIdx.x) * kRows + threadIdx.x];
    slot[threadIdx.x] = (s < n && keep[s]) ? s : -1;
  }
  __syncthreads();
  const int64_t row = e * H + c0;
  float acc[kRows];
  for (int r = 0; r < kRows; r++) acc[r] = 0.f;
  for (int64_t k0 = 0; k0 < I; k0 += kDepth) {
    for (int i = threadIdx.x; i < kRows * kDepth; i += kTile) {
      const int r = i / kDepth, c = i % kDepth;
      const int32_t s = slot[r];
      st.v[r][c] = (s >= 0 && k0 + c < I) ? h[int64_t(s) * I + k0 + c] : 0.f;
    }
    __syncthreads();
    if (c0 < H) {
      const int64_t kend = min(int64_t(kDepth), I - k0);
      for (int64_t c = 0; c < kend; c++) {
        const float wv = weight_at(w, row, k0 + c, I);
        for (int r = 0; r < kRows; r++) acc[r] += wv * st.v[r][c];
      }
    }
    __syncthreads();
  }
  if (c0 >= H) return;
  const float b = w.bias ? load_as_f32(w.bias, row, w.bdt) : 0.f;
  for (int r = 0; r < kRows; r++) {
    const int32_t s = slot[r];
    if (s >= 0) o[int64_t(s) * H + c0] = weights[s] * (acc[r] + b);
  }
}

__global__ void sum_kernel(const float* o, const int32_t* keep, cpu::MoeExpertsParams p, int xdt, void* y) {
  const int64_t t = blockIdx.x, c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= p.hidden) return;
  float acc = 0.f;
  for (int j = 0; j < p.k; j++) {
    const int64_t s = t * p.k + j;
    if (keep[s]) acc += o[s * p.hidden + c];
  }
  store_from_f32(y, t * p.hidden + c, xdt, acc);
}

struct Layout {
  int64_t local, keep, sorted, blocks, padded, align, h, o, total;
};

int64_t up(int64_t b) { return (b + 255) / 256 * 256; }

Layout layout(int64_t n, int64_t H, int64_t I, int E) {
  Layout l{};
  const int64_t cap = cpu::moe_align_capacity(n, E, kRows);
  int64_t at = 0;
  l.local = at; at += up(4 * n);
  l.keep = at; at += up(4 * n);
  l.sorted = at; at += up(4 * cap);
  l.blocks = at; at += up(4 * (cap / kRows));
  l.padded = at; at += up(4);
  l.align = at; at += up(moe_align_scratch_bytes(n, E));
  l.h = at; at += up(4 * n * I);
  l.o = at; at += up(4 * n * H);
  l.total = at;
  return l;
}

}  // namespace

int64_t moe_experts_scratch_bytes(int64_t n, int64_t hidden, int64_t inter, int experts) {
  return layout(n, hidden, inter, experts).total;
}

void moe_experts(const void* x, int xdt, const float* weights, const int32_t* ids, const cpu::ExpertWeight& gate_up,
                 const cpu::ExpertWeight& down, const cpu::MoeExpertsParams& p, void* y, void* scratch, int* err_flag,
                 void* stream) {
  const int64_t n = p.tokens * p.k, H = p.hidden, I = p.inter;
  const cudaStream_t s = as_stream(stream);
  char* base = static_cast<char*>(scratch);
  const Layout l = layout(n, H, I, p.experts);
  int32_t* local = reinterpret_cast<int32_t*>(base + l.local);
  int32_t* keep = reinterpret_cast<int32_t*>(base + l.keep);
  int32_t* sorted = reinterpret_cast<int32_t*>(base + l.sorted);
  int32_t* blocks = reinterpret_cast<int32_t*>(base + l.blocks);
  float* h = reinterpret_cast<float*>(base + l.h);
  float* o = reinterpret_cast<float*>(base + l.o);
  if (n > 0) {
    prep_kernel<<<unsigned(ceil_div(n, 256)), 256, 0, s>>>(ids, n, p, local, keep, err_flag);
    check_launch("moe_experts prep");
    const int64_t cap = cpu::moe_align_capacity(n, p.experts, kRows), nb = cap / kRows;
    moe_align({local, n, p.experts, kRows, sorted, cap, blocks, nb, reinterpret_cast<int32_t*>(base + l.padded), nullptr},
              base + l.align, err_flag, stream);
    if (nb > 0) {
      gemm1_kernel<<<dim3(unsigned(nb), unsigned(ceil_div(I, kTile))), kTile, 0, s>>>(x, xdt, gate_up, p, sorted, blocks,
                                                                                    keep, h);
      check_launch("moe_experts gemm1");
      gemm2_kernel<<<dim3(unsigned(nb), unsigned(ceil_div(H, kTile))), kTile, 0, s>>>(h, down, p, weights, sorted, blocks,
                                                                                    keep, o);
      check_launch("moe_experts gemm2");
    }
  }
  sum_kernel<<<dim3(unsigned(p.tokens), unsigned(ceil_div(H, 256))), 256, 0, s>>>(o, keep, p, xdt, y);
  check_launch("moe_experts sum");
}

}  // namespace llmk::cuda
