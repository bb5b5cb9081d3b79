#pragma once
#include "../core/tensor.h"

namespace llmk::ops {

// out = a + b, elementwise; same shape, dtype and device.
Tensor add(const Tensor& a, const Tensor& b);

}  // namespace llmk::ops
