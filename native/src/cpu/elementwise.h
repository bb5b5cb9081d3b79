// Elementwise CPU kernels over contiguous buffers.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cpu {

// out = a + b; integers wrap around.
void add(const void* a, const void* b, void* out, int64_t n, DType dtype);
// Converts n elements from one dtype to another; semantics in core/convert.h (one correct rounding to
// floating types, float→int truncates toward zero and saturates, NaN → 0, int→int saturates).
void cast(const void* src, DType src_type, void* dst, DType dst_type, int64_t n);
// Fills n elements with value converted to dtype (as convert.h converts a double).
void fill(void* dst, DType dtype, int64_t n, double value);

}  // namespace llmk::cpu
