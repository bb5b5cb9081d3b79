// Routing math shared by the CPU and CUDA MoE kernels (header-only, host + device), so both
// backends apply exactly the same rules to scores, NaN, infinities and ties.
//
// Rules (docs/architecture.md §4.1, made precise here):
//  * Scores. softmax: m = max of the non-NaN logits of the row (-Inf if none);
//      m == +Inf: u_e = (x_e == +Inf) ? 1 : 0;  m == -Inf: u_e = (x_e == -Inf) ? 1 : 0;
//      otherwise u_e = exp(x_e - m); NaN logits give u_e = 0. S = sum u; score_e = S > 0 ? u_e / S : 0.
//    sigmoid: score_e = 1 / (1 + exp(-x_e)); a NaN logit gives score 0.
//    So an expert whose logit is NaN always has weight 0 (finite), whatever the other options.
//  * Selection key. Without bias: the logit itself (monotone in the score, exact in every dtype).
//    With bias: score_e + bias_e. A NaN logit makes the key NaN. Keys are ranked by a total order:
//    NaN lowest, then -Inf .. +Inf, -0 == +0; equal keys rank the lower expert index first.
//  * Groups: group score = sum of the two largest keys of the group with bias (the largest alone when
//    the group has one expert), the largest key without bias; ranked by the same total order (a NaN sum
//    ranks lowest), ties to the lower group index. Experts of groups that are not kept are excluded.
//  * Weights: score of each chosen expert; with renormalize divided by their sum (taken in selection
//    order) when that sum is > 0 (else left as they are, i.e. 0); then multiplied by scale.
#pragma once
#include <cmath>
#include <cstdint>
#include "../core/half.h"

namespace llmk::moe_math {

// Total-order encoding of a float key: larger key -> larger code. NaN -> 1 (lowest of all keys);
// code 0 is reserved for "excluded / already chosen / padding". -0 and +0 share a code.
LLMK_HD uint32_t ord_key(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 1u;  // NaN
  if (u == 0x80000000u) u = 0u;                     // -0 -> +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// 64-bit packed candidate: code in the high half, bit-inverted index in the low half, so that the
// maximum packed value is the best key with ties going to the lower index.
LLMK_HD uint64_t pack(uint32_t code, uint32_t index) {
  return (uint64_t(code) << 32) | uint64_t(0xffffffffu - index);
}
LLMK_HD uint32_t packed_index(uint64_t p) { return 0xffffffffu - uint32_t(p & 0xffffffffu); }
LLMK_HD uint32_t packed_code(uint64_t p) { return uint32_t(p >> 32); }

LLMK_HD bool is_nan(float f) { return (f32_bits(f) & 0x7fffffffu) > 0x7f800000u; }

LLMK_HD float sigmoid_score(float x) {
  if (is_nan(x)) return 0.f;
#if defined(__CUDA_ARCH__)
  return 1.f / (1.f + expf(-x));
#else
  return 1.f / (1.f + std::exp(-x));
#endif
}

// Softmax numerator for one logit given the row max m (see the rules above).
LLMK_HD float softmax_numer(float x, float m) {
  if (is_nan(x)) return 0.f;
  const float inf = bits_f32(0x7f800000u);
  if (m == inf || m == -inf) return x == m ? 1.f : 0.f;
#if defined(__CUDA_ARCH__)
  return expf(x - m);
#else
  return std::exp(x - m);
#endif
}

// Selection key of an expert.
LLMK_HD float select_key(float x, float score, const float* bias, int e) {
  if (is_nan(x)) return x;
  return bias ? score + bias[e] : x;
}

// Keeps the two best (by ord code) of a stream of keys: a >= b. Start with a_code = b_code = 0.
struct Top2 {
  uint32_t ca = 0, cb = 0;
  float a = 0.f, b = 0.f;
  LLMK_HD void push(float v) {
    uint32_t c = ord_key(v);
    if (c > ca) { cb = ca; b = a; ca = c; a = v; }
    else if (c > cb) { cb = c; b = v; }
  }
};

// Group score from the group's keys (count >= 1).
LLMK_HD float group_score(const Top2& t, int count, bool has_bias) {
  if (has_bias && count >= 2) return t.a + t.b;
  return t.a;
}

}  // namespace llmk::moe_math
