// Activations of the MoE expert layer (moe.experts), shared by the CPU and CUDA kernels (host +
// device) so both backends compute the same function. GELU is the tanh approximation (as
// onnxruntime's MoE); swigluOai is gpt-oss's clamped SwiGLU.
#pragma once
#include <cmath>
#include "../core/half.h"

namespace llmk::moe_act {

enum Activation : int { kSwiglu = 0, kSwigluOai = 1, kGeglu = 2, kGelu = 3, kRelu = 4 };

LLMK_HD bool gated(int act) { return act <= kGeglu; }

LLMK_HD float sigmoid(float v) {
#if defined(__CUDA_ARCH__)
  return 1.f / (1.f + expf(-v));
#else
  return 1.f / (1.f + std::exp(-v));
#endif
}

LLMK_HD float gelu_tanh(float v) {
#if defined(__CUDA_ARCH__)
  return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
#else
  return 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
#endif
}

// act(gate, up); the ungated activations ignore up. NaN propagates (fmin/fmax would drop it, so the
// clamps are written as comparisons that keep a NaN operand).
LLMK_HD float apply(int act, float gate, float up) {
  switch (act) {
    case kSwiglu: return gate * sigmoid(gate) * up;
    case kSwigluOai: {
      const float g = gate > 7.f ? 7.f : gate;
      const float u = up > 7.f ? 7.f : (up < -7.f ? -7.f : up);
      return g * sigmoid(1.702f * g) * (u + 1.f);
    }
    case kGeglu: return gelu_tanh(gate) * up;
    case kGelu: return gelu_tanh(gate);
    default: return gate < 0.f ? 0.f : gate;
  }
}

// v rounded to dtype dt (0 float32, 1 float16, 2 bfloat16), returned as float32.
LLMK_HD float round_to(int dt, float v) {
  if (dt == 1) return f16_to_f32(f32_to_f16(v));
  if (dt == 2) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

}  // namespace llmk::moe_act
