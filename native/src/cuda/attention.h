// Block-sparse attention forward on CUDA (docs/architecture.md §4.2). Plain C++ header: host launchers only.
#pragma once
#include <cstdint>
#include "../core/attention_params.h"

namespace llmk::cuda {

// The kernel arguments (shared with the CPU implementation).
using AttnParams = llmk::AttnParams;

// Which kernel attention_block_sparse runs for p.
enum class AttnPath : int { Generic = 0, TensorCore = 1, SplitKDecode = 2 };
AttnPath attention_path(const AttnParams& p);

// float32 scratch the launch needs (0 for none): split-K partial outputs and LSEs.
int64_t attention_workspace_floats(const AttnParams& p, int force_path = -1);

// Enqueues the forward on `stream`. workspace: attention_workspace_floats(p) floats of device memory.
// force_path >= 0 forces a path (tests); a forced TensorCore path falls back when not applicable.
void attention_block_sparse(const AttnParams& p, float* workspace, void* stream, int force_path = -1);

// Stream-ordered copy of host memory to the device (the host buffer may be reused on return).
void attention_copy_h2d(void* dst, const void* src, int64_t nbytes, void* stream);

}  // namespace llmk::cuda
