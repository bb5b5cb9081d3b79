// The token-level mask rule of block-sparse attention, shared by the CPU and CUDA kernels
// (header-only, host + device), so both backends let exactly the same keys through.
#pragma once
#include <cstdint>
#include "half.h"  // LLMK_HD

namespace llmk {

// Visible key interval [lo, hi] of query row i (hi < lo: the row sees nothing). causal is bottom-right
// aligned (key j <= i + Nk - Nq); win_left / win_right bound the window left / right of that diagonal
// (-1 = unbounded). lo and hi are non-decreasing in i, which the kernels use to bound a block row by
// its first and last rows. P: anything with Nq, Nk, causal, win_left, win_right (AttnParams, MaskParams).
struct KeyRange { int64_t lo, hi; };
template <typename P>
LLMK_HD KeyRange key_range(int64_t i, const P& p) {
  const int64_t diag = i + p.Nk - p.Nq;
  int64_t lo = 0, hi = p.Nk - 1;
  if (p.causal && diag < hi) hi = diag;
  if (p.win_right >= 0 && diag + p.win_right < hi) hi = diag + p.win_right;
  if (p.win_left >= 0 && diag - p.win_left > lo) lo = diag - p.win_left;
  return {lo, hi};
}

// The same rule from loose values.
struct MaskParams { int64_t Nq, Nk; bool causal; int64_t win_left, win_right; };
LLMK_HD KeyRange key_range(int64_t i, int64_t Nq, int64_t Nk, bool causal, int64_t wl, int64_t wr) {
  return key_range(i, MaskParams{Nq, Nk, causal, wl, wr});
}

}  // namespace llmk
