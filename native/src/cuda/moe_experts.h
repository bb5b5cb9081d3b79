// Host launcher of the CUDA MoE expert layer (plain C++: includers need no CUDA headers). Same
// contract and arguments as llmk::cpu::moe_experts (cpu/moe_experts.h), device pointers; enqueues on
// `stream` and returns at once with no host round trip (graph-capturable). Ids outside [0, E_global) or
// map entries outside [-1, E) set `err_flag` (ERR_LLMK_INDEX at the next synchronisation); their
// slots are skipped.
#pragma once
#include <cstdint>
#include "../cpu/moe_experts.h"

namespace llmk::cuda {

// Device scratch bytes for n = T·k slots.
int64_t moe_experts_scratch_bytes(int64_t n, int64_t hidden, int64_t inter, int experts);

void moe_experts(const void* x, int xdt, const float* weights, const int32_t* ids, const cpu::ExpertWeight& gate_up,
                 const cpu::ExpertWeight& down, const cpu::MoeExpertsParams& p, void* y, void* scratch, int* err_flag,
                 void* stream);

}  // namespace llmk::cuda
