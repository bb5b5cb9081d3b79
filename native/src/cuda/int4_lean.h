// INT4 matmul, lean M ≤ 16 candidate kernel (issue 17; review hypotheses #1, #2, #4). Selected only by
// LLMK_INT4_LEAN=1; the default path of int4.cu is unchanged. Compiled, not verified on a GPU.
// Plain C++ header (includers need no CUDA headers).
#pragma once
#include <cstdint>
#include "../core/int4_params.h"

namespace llmk::cuda {

// What the lean path would do for this call: name "lean[-f32s][-swap]" (nullptr when it does not apply
// or is not selected), its split-K count, ring depth, and the workspace bytes it needs (float32 partials).
struct Int4LeanPlan {
  const char* name = nullptr;
  int splits = 1, kb_per_split = 0, depth = 8;
  bool f32_scales = false, swap = false;
  int64_t workspace = 0;
};
// x may be null (planning without a pointer: alignment is then assumed). sdt < 0: scale dtype and zero
// points unknown (depth and swap as requested; the workspace does not depend on them).
Int4LeanPlan int4_lean_plan(int64_t M, int64_t N, int64_t K, int64_t group, int xdt, bool prepared, const void* x,
                            int sdt = -1, bool zeros = false);

// Runs the lean kernel when int4_lean_plan applies (and the weights are 16-byte aligned); returns false,
// having enqueued nothing, otherwise. workspace: int4_lean_plan(...).workspace bytes, 16-byte aligned.
bool int4_lean_matmul(const Int4MatmulParams& p, void* workspace, int64_t workspace_bytes, void* stream);  // p.perm ignored

}  // namespace llmk::cuda
