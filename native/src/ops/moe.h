// MoE routing ops (docs/architecture.md §4.1): contract checks, output allocation, dispatch to CPU / CUDA.
// Every tensor contract of the family is written here, once (the bindings and ts/moe.ts do not repeat
// them); result shapes are decided here and returned with the handles.
#pragma once
#include <cstdint>
#include "../core/tensor.h"

namespace llmk::ops {

struct MoeTopkOptions {
  int64_t k = 1;
  bool sigmoid = false;
  bool renormalize = true;
  Tensor bias;            // undefined = none; else [E] float32 on the logits' device
  int64_t groups = 0;     // 0 = no grouped routing
  int64_t group_topk = 0;
  double scale = 1.0;
};
struct MoeTopkResult { Tensor weights, ids; };
// logits [T,E] float32/float16/bfloat16 -> weights [T,k] float32, ids [T,k] int32.
MoeTopkResult moe_topk(const Tensor& logits, const MoeTopkOptions& o);

// ERR_LLMK_SHAPE "<op>: <name> must be 2-D <dims>, got <shape>" unless t is 2-D (dims names the layout, "[T, k]").
void check_matrix(const Tensor& t, const char* op, const char* name, const char* dims);

struct MoeAlignResult { Tensor sorted_ids, block_experts, num_padded; };
// ids [T,k] int32 -> sortedIds [T*k + min(E,T*k)*(bs-1)], blockExperts [that / bs], numPadded [1].
MoeAlignResult moe_align(const Tensor& ids, int64_t num_experts, int64_t block_size);

struct MoePermuteResult { Tensor out, row_map, expert_offsets; };
// x [T,H], ids [T,k] int32 -> out [T*k,H], rowMap [T,k] int32, expertOffsets [E+1] int32.
MoePermuteResult moe_permute(const Tensor& x, const Tensor& ids, int64_t num_experts);

// y [R,H] float, weights [T,k] float32, rowMap [T,k] int32 -> [T,H] in y's dtype.
Tensor moe_combine(const Tensor& y, const Tensor& weights, const Tensor& row_map);

// ids (any shape) int32 -> [E] int32.
Tensor moe_expert_counts(const Tensor& ids, int64_t num_experts);

// probs [T,E] float, ids [T,k] int32 -> [1] float32.
Tensor moe_load_balancing_loss(const Tensor& probs, const Tensor& ids, int64_t num_experts);

}  // namespace llmk::ops
