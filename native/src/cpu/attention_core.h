// The one CPU attention core behind attention.blockSparse, attention.varlen and attention.paged: per task
// (sequence, KV head group or query head, tile of query rows) it walks the kept key tiles and computes
// Sᵀ = K·Qᵀ and O += P·V as small register-blocked GEMMs with an online softmax between them
// (FlashAttention's loop). K/V rows are read in place from a contiguous tensor or from cache pages. Calls with
// at most 16 queries per sequence split each task's keys into chunks merged by log-sum-exp (flash-decoding).
// The caller has validated every shape and option; page ids are checked here as they are read.
#pragma once
#include <cstdint>

namespace llmk::cpu {

// One sequence of a call: queries q/out rows [q0, q0+nq) (token rows of [*, Hq, D]); keys 0..nk-1
// at rows k0.. of a contiguous K/V, or through `pages` (this sequence's block table row) when paged.
struct AttnSeq {
  int64_t q0 = 0, nq = 0, k0 = 0, nk = 0;
  int64_t lse0 = 0;               // LSE of (head h, row r) at lse[lse0 + h * lse_hstride + r]
  const int32_t* pages = nullptr;  // paged: page ids, at least ceil(nk / page_size) of them
};

struct AttnCoreArgs {
  int dtype = 0;  // DType of q, k, v, out (F32, F16, BF16)
  int64_t Hq = 0, Hkv = 0, D = 0;
  const void* q = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // null = not wanted
  int64_t lse_hstride = 0;
  const void* k = nullptr;  // contiguous [*, Hkv, D], or pages [num_pages, page_size, Hkv, D]
  const void* v = nullptr;
  int64_t page_size = 0, num_pages = 0;  // page_size 0 = contiguous
  const AttnSeq* seqs = nullptr;
  int64_t nseq = 0;
  bool causal = false;  // bottom-right aligned per sequence: key j <= r + nk - nq
  int64_t win_left = -1, win_right = -1;
  float scale = 1.f, softcap = 0.f;
  int64_t block_q = 64, block_k = 64;  // layout blocks (key tile = block_k)
  // Optional BSR block layout shared by every sequence (null row_ptr = every key block, masks only).
  const int32_t* row_ptr = nullptr;
  const int32_t* col_idx = nullptr;
  int64_t layout_heads = 1, nqb = 0, nkb = 0, nnz = 0;
};

void attention_core(const AttnCoreArgs& a);

// Name of the tile kernel in use ("avx512", "avx2" or "generic"); LLMK_CPU_ATTN_ISA forces a lesser one.
const char* attention_core_isa();

}  // namespace llmk::cpu
