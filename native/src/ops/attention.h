// Block-sparse attention op (docs/architecture.md §4.2): re-checks every contract, allocates, dispatches.
#pragma once
#include <cstdint>
#include "../core/tensor.h"

namespace llmk::ops {

// A block layout as host arrays (validated here again; never trusted).
struct AttentionLayout {
  const int32_t* row_ptr = nullptr;  // [heads * (nqb + 1)], absolute offsets into col_idx
  int64_t row_ptr_len = 0;
  const int32_t* col_idx = nullptr;  // [nnz]
  int64_t nnz = 0;
  int64_t heads = 1;                 // 1 = shared by all query heads, else Hq
  int64_t block_q = 64, block_k = 64;
  int64_t q_len = 0, k_len = 0;
};

struct AttentionOptions {
  bool has_scale = false;
  double scale = 0;                  // default 1/sqrt(D)
  bool causal = false;
  int64_t win_left = -1, win_right = -1;  // -1 = unbounded
  double softcap = 0;                // 0 = none
  bool return_lse = false;
  int force_path = -1;               // CUDA path override for tests (-1 = automatic)
};

struct AttentionResult {
  Tensor out;  // [B, Nq, Hq, D], q's dtype
  Tensor lse;  // [B, Hq, Nq] float32, undefined unless return_lse
};

// Checks the BSR arrays: sizes, rowPtr monotone and in range, column indices in range, sorted, unique.
// Returns the largest block count of one row.
int64_t check_attention_layout(const AttentionLayout& L, const char* op);

AttentionResult attention_block_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& layout,
                                       const AttentionOptions& opts);

}  // namespace llmk::ops
