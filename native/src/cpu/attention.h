// Block-sparse attention forward on the CPU (docs/architecture.md §4.2): tiled online softmax over the kept
// blocks of a BSR block layout, O(N) memory, multi-threaded over (batch, head, query block).
#pragma once
#include <cstdint>
#include "../core/attention_params.h"
#include "../core/key_range.h"

namespace llmk::cpu {

// The kernel arguments (shared with the CUDA implementation).
using AttnParams = llmk::AttnParams;

// The token mask rule, shared with the CUDA kernels (core/key_range.h).
using llmk::KeyRange;
using llmk::key_range;

void attention_block_sparse(const AttnParams& p);

}  // namespace llmk::cpu
