// Block-sparse attention forward on the CPU (DESIGN.md 5.2): tiled online softmax over the kept
// blocks of a BSR block layout, O(N) memory, multi-threaded over (batch, head, query block).
#pragma once
#include <cstdint>

namespace llmk::cpu {

// Everything the kernel reads; the ops layer validates it all before filling this in.
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
  int64_t block_q = 64, block_k = 64;
  float scale = 1.f;
  bool causal = false;               // bottom-right aligned: key j <= i + Nk - Nq
  int64_t win_left = -1, win_right = -1;  // -1 = unbounded
  float softcap = 0.f;               // 0 = none; else s = softcap * tanh(s / softcap)
};

// Token-level visible key range [lo, hi] of query row i (hi < lo: the row sees nothing).
struct KeyRange { int64_t lo, hi; };
inline KeyRange key_range(int64_t i, int64_t Nq, int64_t Nk, bool causal, int64_t wl, int64_t wr) {
  const int64_t diag = i + Nk - Nq;
  int64_t lo = 0, hi = Nk - 1;
  if (causal && diag < hi) hi = diag;
  if (wr >= 0 && diag + wr < hi) hi = diag + wr;
  if (wl >= 0 && diag - wl > lo) lo = diag - wl;
  return {lo, hi};
}

void attention_block_sparse(const AttnParams& p);

}  // namespace llmk::cpu
