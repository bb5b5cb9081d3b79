// MoE routing kernels on the CPU (docs/architecture.md §4.1). Plain functions over pointers and shapes,
// multi-threaded over tokens with llmk::parallel_for. The routing rules are in moe_math.h.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cpu {

// Limits of the routing kernels (CPU and CUDA alike); the ops layer checks them.
constexpr int kMoeMaxExperts = 1024;        // E
constexpr int kMoeMaxBlockSize = 1 << 20;   // moe_align's blockSize

// Parameters of the top-k routing kernel: one struct for both backends (cuda::moe_topk takes it too, with
// device pointers). The ops layer checks the contract before filling it in. The CUDA kernels take it by
// value, so its layout is part of their PTX: add fields at the end.
struct MoeTopkParams {
  const void* logits = nullptr;  // [T,E] of `dtype` (F32/F16/BF16)
  DType dtype = DType::F32;
  int64_t tokens = 0;            // T
  int experts = 0;               // E (1..kMoeMaxExperts)
  int k = 1;                     // 1..E
  bool sigmoid = false;          // scoring: false = softmax
  bool renormalize = true;
  const float* bias = nullptr;   // [E] or null
  int groups = 0;                // 0 = no grouping; else divides E
  int group_topk = 0;            // groups kept
  float scale = 1.f;
  float* weights = nullptr;      // [T,k] out
  int32_t* ids = nullptr;        // [T,k] out
};

// logits [T,E] -> weights [T,k] float32, ids [T,k] int32 (see MoeTopkParams).
void moe_topk(const MoeTopkParams& p);

// Capacity of align's sortedIds for n = T*k slots: n + min(E, n) * (blockSize - 1).
inline int64_t moe_align_capacity(int64_t n, int experts, int block_size) {
  int64_t used = n < experts ? n : int64_t(experts);
  return n + used * int64_t(block_size - 1);
}

// Parameters of the align kernel: one struct for both backends (cuda::moe_align takes it with device
// pointers). The CUDA kernels take it by value as the base of their argument struct, so its layout is
// part of their PTX: add fields at the end.
struct MoeAlignParams {
  const int32_t* ids = nullptr;       // [n] expert ids of the n = T*k slots
  int64_t n = 0;
  int E = 0;                          // experts
  int bs = 1;                         // block size
  int32_t* sorted = nullptr;          // [capacity]: slots grouped by expert, each run padded to bs (pad value n)
  int64_t capacity = 0;               // moe_align_capacity(n, E, bs)
  int32_t* block_experts = nullptr;   // [num_blocks]: expert of each block, -1 for unused ones
  int64_t num_blocks = 0;             // capacity / bs
  int32_t* num_padded = nullptr;      // [1]
  int32_t* expert_offsets = nullptr;  // optional [E+1]: start of each expert's run in sorted (padded)
};

// Slots of one expert keep ascending slot order. Throws Error(Index) when an id is outside [0, E).
void moe_align(const MoeAlignParams& p);

// Parameters of permute (CPU and CUDA alike).
struct MoePermuteParams {
  const void* x = nullptr;            // [tokens, hidden] of `dtype`
  DType dtype = DType::F32;
  int64_t tokens = 0, hidden = 0;
  const int32_t* ids = nullptr;       // [tokens, k]
  int k = 0;
  int experts = 0;
  void* out = nullptr;                // [tokens*k, hidden]: rows grouped by expert (stable)
  int32_t* row_map = nullptr;         // [tokens*k]: row of out that holds slot t*k+j
  int32_t* expert_offsets = nullptr;  // [experts+1]
};
// Throws Error(Index) on an id outside [0, E).
void moe_permute(const MoePermuteParams& p);

// Parameters of combine (CPU and CUDA alike):
// out[t,:] = sum_j weights[t,j] * y[row_map[t,j], :]; float32 accumulation, out in y's dtype.
struct MoeCombineParams {
  const void* y = nullptr;            // [rows, hidden] of `dtype`
  DType dtype = DType::F32;
  int64_t rows = 0, hidden = 0;
  const float* weights = nullptr;     // [tokens, k]
  const int32_t* row_map = nullptr;   // [tokens, k], entries in [0, rows)
  int64_t tokens = 0;
  int k = 0;
  void* out = nullptr;                // [tokens, hidden] of `dtype`
};
// Throws Error(Index) when a row_map entry is outside [0, rows).
void moe_combine(const MoeCombineParams& p);

// counts [E] of ids [n]. Throws Error(Index) on an id outside [0, E).
void moe_expert_counts(const int32_t* ids, int64_t n, int experts, int32_t* counts);

// Parameters of the Switch-Transformer auxiliary loss (CPU and CUDA alike):
// out[0] = E * sum_e f_e * P_e, f_e = count_e / (T*k), P_e = mean_t probs[t,e]; T == 0 gives 0.
struct MoeLbLossParams {
  const void* probs = nullptr;        // [tokens, experts] of `dtype`
  DType dtype = DType::F32;
  int64_t tokens = 0;
  int experts = 0;
  const int32_t* ids = nullptr;       // [tokens, k]
  int k = 0;
  float* out = nullptr;               // [1]
};
// Throws Error(Index) on an id outside [0, E).
void moe_load_balancing_loss(const MoeLbLossParams& p);

}  // namespace llmk::cpu
