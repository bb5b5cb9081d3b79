// Elementwise CUDA kernels (host launchers; stream is a cudaStream_t).
#pragma once
#include <cstdint>
#include "../core/dtype.h"

namespace llmk::cuda {

void add(const void* a, const void* b, void* out, int64_t n, DType dtype, void* stream);
void cast(const void* src, DType src_type, void* dst, DType dst_type, int64_t n, void* stream);
void fill(void* dst, DType dtype, int64_t n, double value, void* stream);

}  // namespace llmk::cuda
