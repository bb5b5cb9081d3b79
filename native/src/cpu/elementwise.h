// Elementwise CPU kernels over contiguous buffers.
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cpu {

void add(const void* a, const void* b, void* out, int64_t n, DType dtype);
// Converts n elements from one dtype to another (float→int truncates toward zero, saturating; NaN → 0).
void cast(const void* src, DType src_type, void* dst, DType dst_type, int64_t n);
// Fills n elements with value converted to dtype.
void fill(void* dst, DType dtype, int64_t n, double value);

}  // namespace llmk::cpu
