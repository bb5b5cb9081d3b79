// The tensor contracts of the checkpoint importers (quant.fromGptq / fromAwq / fromMatMulNBits): checked
// here before ts/quant.ts reads the tensors back and repacks them into the canonical layout on the host.
#include <string>
#include "int4.h"

namespace llmk::ops {

namespace {

void check_dims(const Tensor& t, const Shape& want, const char* op, const char* name, const char* meaning) {
  LLMK_CHECK(t.shape() == want, Shape, "%s: %s must have shape %s %s, got %s", op, name, shape_str(want).c_str(), meaning,
             shape_str(t.shape()).c_str());
}

// scales [G, N] float with G > 0 groups dividing K: returns the group size (after int4_check_group).
int64_t group_of_scales(const Tensor& scales, int64_t N, int64_t K, const char* op) {
  check_float_dtype(scales, op, "scales");
  LLMK_CHECK(scales.ndim() == 2 && scales.dim(1) == N && scales.dim(0) > 0, Shape,
             "%s: scales must have shape [G, %lld] (G groups > 0), got %s", op, (long long)N,
             shape_str(scales.shape()).c_str());
  const int64_t G = scales.dim(0);
  LLMK_CHECK(K % G == 0, Shape, "%s: K = %lld is not a multiple of the %lld groups", op, (long long)K, (long long)G);
  int4_check_group(N, K, K / G, op);
  return K / G;
}

}  // namespace

Int4Dims int4_gptq_dims(const Tensor& q, const Tensor& qzeros, const Tensor& scales, const Tensor& g_idx) {
  const char* op = "quant.fromGptq";
  check_dtype(q, DType::I32, op, "qweight");
  LLMK_CHECK(q.ndim() == 2, Shape, "%s: qweight must be 2-D [K/8, N], got %s", op, shape_str(q.shape()).c_str());
  const int64_t K = q.dim(0) * 8, N = q.dim(1);
  const int64_t group = group_of_scales(scales, N, K, op), G = K / group;
  check_dtype(qzeros, DType::I32, op, "qzeros");
  check_dims(qzeros, {G, (N + 7) / 8}, op, "qzeros", "[G, ceil(N/8)]");
  if (g_idx.defined()) {
    check_dtype(g_idx, DType::I32, op, "gIdx");
    check_dims(g_idx, {K}, op, "gIdx", "[K]");
  }
  return {N, K, group};
}

Int4Dims int4_awq_dims(const Tensor& q, const Tensor& qzeros, const Tensor& scales) {
  const char* op = "quant.fromAwq";
  check_dtype(q, DType::I32, op, "qweight");
  LLMK_CHECK(q.ndim() == 2, Shape, "%s: qweight must be 2-D [K, N/8], got %s", op, shape_str(q.shape()).c_str());
  const int64_t K = q.dim(0), N = q.dim(1) * 8;
  const int64_t group = group_of_scales(scales, N, K, op);
  check_dtype(qzeros, DType::I32, op, "qzeros");
  check_dims(qzeros, {K / group, N / 8}, op, "qzeros", "[G, N/8]");
  return {N, K, group};
}

Int4Dims int4_matmul_nbits_dims(const Tensor& b, const Tensor& scales, const Tensor& zp, int64_t K, int64_t N,
                                int64_t block, int64_t bits) {
  const char* op = "quant.fromMatMulNBits";
  LLMK_CHECK(bits == 4, Arg, "%s: only bits = 4 is supported, got %lld", op, (long long)bits);
  LLMK_CHECK(block >= 16 && (block & (block - 1)) == 0, Arg, "%s: blockSize must be a power of two >= 16, got %lld", op,
             (long long)block);
  LLMK_CHECK(K % block == 0, Shape, "%s: K = %lld is not a multiple of blockSize %lld (padded last blocks are not supported)",
             op, (long long)K, (long long)block);
  int4_check_group(N, K, block, op);
  const int64_t blocks = K / block;
  check_dtype(b, DType::U8, op, "b");
  LLMK_CHECK(b.numel() == N * blocks * (block / 2), Shape, "%s: b must hold N·blocks·blockSize/2 = %lld bytes, got %s",
             op, (long long)(N * blocks * (block / 2)), shape_str(b.shape()).c_str());
  check_float_dtype(scales, op, "scales");
  LLMK_CHECK(scales.numel() == N * blocks, Shape, "%s: scales must hold N·blocks = %lld values, got %s", op,
             (long long)(N * blocks), shape_str(scales.shape()).c_str());
  if (zp.defined()) {
    if (zp.dtype() == DType::U8) {
      LLMK_CHECK(zp.numel() == N * ((blocks + 1) / 2), Shape,
                 "%s: packed zeroPoints must hold N·ceil(blocks/2) = %lld bytes, got %s", op,
                 (long long)(N * ((blocks + 1) / 2)), shape_str(zp.shape()).c_str());
    } else {
      LLMK_CHECK(is_floating(zp.dtype()), DType,
                 "%s: zeroPoints must be uint8 (packed) or float32, float16 or bfloat16 (unpacked), got %s", op,
                 dtype_name(zp.dtype()));
      LLMK_CHECK(zp.numel() == N * blocks, Shape, "%s: float zeroPoints must hold N·blocks = %lld values, got %s", op,
                 (long long)(N * blocks), shape_str(zp.shape()).c_str());
    }
  }
  return {N, K, block};
}

}  // namespace llmk::ops
