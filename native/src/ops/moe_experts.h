// MoE expert layer op (issue 14): contract checks, output allocation, dispatch to CPU / CUDA.
#pragma once
#include <cstdint>
#include <vector>
#include "../core/tensor.h"

namespace llmk::ops {

// One stacked expert projection [E, N, K]: a dense float tensor, or an INT4 weight whose rows are the
// E experts' N rows one after the other (quant.stackExperts), canonical or prepared.
struct ExpertProj {
  Tensor dense;                   // defined for a dense projection
  Tensor q, scales, zeros;        // INT4 parts (zeros undefined when symmetric)
  int64_t experts = 0;            // INT4: experts in the stack (0 = not stacked)
  int64_t rows = 0, cols = 0, group = 0;  // INT4: all rows (E·N), K, group size
  bool prepared = false;
  Tensor bias;                    // [E, N] float or undefined
};

struct MoeExpertsOptions {
  int activation = 0;   // moe_act::Activation
  bool interleaved = false;
  Tensor expert_map;    // [E_global] int32 or undefined
};

// x [T,H] float, weights [T,k] float32, ids [T,k] int32 -> y [T,H] in x's dtype.
Tensor moe_experts(const Tensor& x, const Tensor& weights, const Tensor& ids, const ExpertProj& gate_up,
                   const ExpertProj& down, const MoeExpertsOptions& o);

// The tensors concatenated along dim 0 (same dtype, device and trailing shape): stacks experts' parts.
Tensor moe_stack_rows(const std::vector<Tensor>& parts);

}  // namespace llmk::ops
