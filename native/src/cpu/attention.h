// Block-sparse attention forward on the CPU (DESIGN.md 5.2): tiled online softmax over the kept
// blocks of a BSR block layout, O(N) memory, multi-threaded over (batch, head, query block).
#pragma once
#include <cstdint>
#include "../core/attention_params.h"

namespace llmk::cpu {

// The kernel arguments (shared with the CUDA implementation).
using AttnParams = llmk::AttnParams;

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
