// Block-sparse attention op (docs/architecture.md §4.2): every tensor and layout contract of blockSparse is
// checked here (the TypeScript layer checks only JavaScript types), then it allocates and dispatches.
#pragma once
#include <cstdint>
#include <memory>
#include "../core/tensor.h"

namespace llmk::ops {

// A block layout as host arrays (validated by check_attention_layout; never trusted).
struct AttentionLayout {
  const int32_t* row_ptr = nullptr;  // [heads * (nqb + 1)], absolute offsets into col_idx
  int64_t row_ptr_len = 0;
  const int32_t* col_idx = nullptr;  // [nnz]
  int64_t nnz = 0;
  int64_t heads = 1;                 // 1 = shared by all query heads, else Hq
  int64_t block_q = 64, block_k = 64;
  int64_t q_len = 0, k_len = 0;
};

// A layout checked once and copied to one device, owned natively (FlashInfer's plan()/run()): the hot
// blockSparse call takes it and does no O(nnz) work and no host-to-device copy. Immutable once made, so the
// arrays a kernel reads are the ones that were checked (JavaScript cannot change them afterwards).
struct AttentionPlan {
  Tensor row_ptr;  // [heads * (nqb + 1)] int32 on `device`
  Tensor col_idx;  // [max(nnz, 1)] int32 on `device`
  Device device;
  int64_t heads = 1, block_q = 64, block_k = 64, q_len = 0, k_len = 0, nqb = 0, nkb = 0, nnz = 0;
  int64_t max_row = 0;  // largest block count of one row (CUDA launch sizing)
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

// Checks the options every attention op takes (scale finite in float32, softcap >= 0, window bounds) for head
// size D; returns the scale to use (default 1/sqrt(D)).
float check_attention_options(const AttentionOptions& o, int64_t D, const char* op);

// Checks the BSR arrays: sizes, rowPtr monotone and in range, column indices in range, sorted, unique
// (ERR_LLMK_ARG / SHAPE / INDEX, messages prefixed with `op`). Returns the largest block count of one row.
int64_t check_attention_layout(const AttentionLayout& L, const char* op);

// Checks L (O(nnz), once) and copies its arrays to `device` (stream-ordered on its current stream).
std::shared_ptr<const AttentionPlan> plan_attention_layout(const AttentionLayout& L, Device device, const char* op);

// Checks q, k, v and the options against the plan (O(1)) and launches.
AttentionResult attention_block_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionPlan& plan,
                                       const AttentionOptions& opts);

}  // namespace llmk::ops
