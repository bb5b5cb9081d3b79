// Host launchers of the CUDA MoE routing kernels (plain C++: includers need no CUDA headers).
// Every launcher enqueues on `stream` (a cudaStream_t) and returns at once; out-of-range ids found
// on the device set `err_flag` (llmk::cuda_error_flag), which the next synchronisation turns into
// ERR_LLMK_INDEX. Contracts are those of native/src/cpu/moe.h (the ops layer checked the arguments).
#pragma once
#include <cstdint>
#include "../core/dtype.h"
#include "../cpu/moe.h"

namespace llmk::cuda {

// The kernels' parameter structs are the CPU's (one struct per kernel for both backends), with device pointers.
using cpu::MoeTopkParams;

// Which kernel moe_topk picks (for tests and benchmarks): "fused/<vec>x<lanes>x<chunks>" or "general".
const char* moe_topk_path(const MoeTopkParams& a);
void moe_topk(const MoeTopkParams& a, void* stream);

// Scratch bytes (device memory) that moe_align / moe_permute need for n slots and E experts.
int64_t moe_align_scratch_bytes(int64_t n, int experts);

// See llmk::cpu::moe_align (the same MoeAlignParams, device pointers). scratch: moe_align_scratch_bytes(n, E) bytes.
using cpu::MoeAlignParams;
void moe_align(const MoeAlignParams& p, void* scratch, int* err_flag, void* stream);

// See llmk::cpu::moe_permute. scratch: moe_align_scratch_bytes(T*k, E) + 4*(T*k) bytes.
int64_t moe_permute_scratch_bytes(int64_t n, int experts);
using cpu::MoePermuteParams;
void moe_permute(const MoePermuteParams& p, void* scratch, int* err_flag, void* stream);

// See llmk::cpu::moe_combine.
using cpu::MoeCombineParams;
void moe_combine(const MoeCombineParams& p, int* err_flag, void* stream);

void moe_expert_counts(const int32_t* ids, int64_t n, int experts, int32_t* counts, int* err_flag, void* stream);

// scratch: moe_lb_loss_scratch_bytes(T, E) bytes.
int64_t moe_lb_loss_scratch_bytes(int64_t tokens, int experts);
using cpu::MoeLbLossParams;
void moe_load_balancing_loss(const MoeLbLossParams& p, void* scratch, int* err_flag, void* stream);

}  // namespace llmk::cuda
