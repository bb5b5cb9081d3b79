// Arguments of the block-sparse attention kernels, shared by the CPU and CUDA implementations
// (docs/architecture.md §4.2). The ops layer validates everything before filling this in.
#pragma once
#include <cstdint>

namespace llmk {

struct AttnParams {
  int64_t B = 0, Nq = 0, Nk = 0, Hq = 0, Hkv = 0, D = 0;
  int dtype = 0;                     // DType of q, k, v and out (F32, F16 or BF16)
  const void* q = nullptr;           // [B, Nq, Hq, D]
  const void* k = nullptr;           // [B, Nk, Hkv, D]
  const void* v = nullptr;           // [B, Nk, Hkv, D]
  void* out = nullptr;               // [B, Nq, Hq, D]
  float* lse = nullptr;              // [B, Hq, Nq] or null
  // BSR layout: layout_heads (1 = shared, or Hq) stacked rows of nqb+1 offsets into col_idx.
  const int32_t* row_ptr = nullptr;  // [layout_heads, nqb + 1] (absolute offsets into col_idx)
  const int32_t* col_idx = nullptr;  // [nnz]
  int64_t layout_heads = 1, nqb = 0, nkb = 0, nnz = 0;
  int64_t max_row_nnz = 0;           // largest block count of one layout row (host-computed; CUDA launch sizing)
  int64_t block_q = 64, block_k = 64;
  float scale = 1.f;
  bool causal = false;               // bottom-right aligned: key j <= i + Nk - Nq
  int64_t win_left = -1, win_right = -1;  // -1 = unbounded
  float softcap = 0.f;               // 0 = none; else s = softcap * tanh(s / softcap)
  int* err_flag = nullptr;           // CUDA: set nonzero on a layout index out of range (ERR_LLMK_INDEX)
};

}  // namespace llmk
