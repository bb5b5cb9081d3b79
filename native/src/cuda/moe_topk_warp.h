// MoE top-k routing, one-warp-per-row candidate for large T (issue 17). Selected only by
// LLMK_MOE_TOPK=warp; the default kernels of moe_topk.cu are unchanged. Compiled, not verified on a GPU.
// Plain C++ header.
#pragma once
#include "moe.h"

namespace llmk::cuda {

// "warp/<elements per lane>[+groups]" when LLMK_MOE_TOPK=warp and the call fits the kernel (E in
// {32, 64, 128, 256, 512}, k <= 32, groups of a power-of-two number of lanes, 16-byte aligned rows
// when a lane reads 16 bytes or more); nullptr otherwise.
const char* moe_topk_warp_path(const MoeTopkParams& a);

// Runs the warp kernel when moe_topk_warp_path(a) is non-null; returns false (nothing enqueued) otherwise.
bool moe_topk_warp(const MoeTopkParams& a, void* stream);

}  // namespace llmk::cuda
