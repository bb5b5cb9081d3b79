// MoE expert layer on the CPU (issue 14): y[t] = Σ_j w[t,j] · (down_e · act(gateUp_e · x[t] + b1_e) + b2_e).
// Tokens are grouped by expert once (moe_align's counting sort); each expert's weights are streamed
// once per call; work is split into (expert, row block) items on the thread pool, so T = 1 still uses
// every core. Accumulation in float32; the intermediate activation is rounded to x's dtype.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cpu {

// One stacked projection [E, N, K] (N outputs per expert), dense or INT4 (canonical layout).
struct ExpertWeight {
  const void* dense = nullptr;  // [E, N, K] of dtype `dt`, or null for INT4
  int dt = 0;                   // dense dtype (0 f32, 1 f16, 2 bf16)
  const uint8_t* q = nullptr;   // INT4 codes [E, N, K/2]
  const void* scales = nullptr; // [E, N, K/group] of dtype sdt
  int sdt = 0;
  const uint8_t* zeros = nullptr;  // [E, N, K/group] or null (zero point 8)
  int64_t group = 0;
  const void* bias = nullptr;   // [E, N] of dtype bdt, or null
  int bdt = 0;
  bool tuned = false;           // INT4 prepared for [total_rows, K] (int4.h): CUDA's tensor-core layout, the CPU's quads
  int64_t total_rows = 0;       // CUDA only: E·N
};

struct MoeExpertsParams {
  int64_t tokens = 0;      // T
  int64_t hidden = 0;      // H
  int64_t inter = 0;       // I
  int k = 0;
  int experts = 0;         // E: experts held in the weights (local experts)
  int global_experts = 0;  // ids are checked against this (== experts without an expert map)
  int activation = 0;      // moe_act::Activation
  bool interleaved = false;
  const int32_t* expert_map = nullptr;  // [global_experts]: local index or -1, or null
};

// x [T,H] (dtype xdt), weights [T,k] float32, ids [T,k] int32 -> y [T,H] in xdt. Throws
// Error(Index) before writing anything when an id is outside [0, global_experts) or a map entry
// outside [-1, experts).
void moe_experts(const void* x, int xdt, const float* weights, const int32_t* ids, const ExpertWeight& gate_up,
                 const ExpertWeight& down, const MoeExpertsParams& p, void* y);

// C[r * ldc + c] = Σ_k W[r0 + r, k] · X[c, k] for r < rows, c < cols: W rows of dtype wdt (row length K),
// X float32 rows of length K. Dot-product tiles, or with `packed` (X as expert_pack_tokens laid it out)
// a register-blocked outer-product kernel; best ISA (LLMK_CPU_MATMUL_ISA honoured); single-threaded.
void expert_gemm_tile(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols,
                      float* c, int64_t ldc, const float* packed = nullptr);

// Floats expert_pack_tokens needs for cols tokens of length K; 0 when so few tokens that the dot-product
// tiles are faster (then pass packed = null).
int64_t expert_packed_size(int64_t cols, int64_t K);
// X [cols, K] float32 packed once for all of an expert's work items (the micro-kernel's B panels).
void expert_pack_tokens(const float* x, int64_t cols, int64_t K, float* dst);

}  // namespace llmk::cpu
