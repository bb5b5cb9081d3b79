// INT4 weight-only matmul ops (docs/architecture.md §4.3): re-check every contract, allocate, dispatch.
//
// Layouts of a weight W[N,K] with G = K / group groups per row:
//   canonical: qweight uint8 [N, K/2] (low nibble = even k), scales [N, G] float, zeros uint8 [N, G] or none.
//   prepared (CUDA, N % 16 == 0 and K % 16 == 0): qweight uint8 [int4_prepared_qbytes(N, K)] in the
//     tensor-core fragment order of cpu/int4.h, scales [G, N], zeros [G, N]. For other shapes, and on
//     the CPU, the prepared weight is the canonical one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "../core/tensor.h"

namespace llmk::ops {

struct Int4Parts {
  Tensor qweight, scales, zeros;  // zeros undefined when symmetric
};

// Checks the canonical (prepared = false) or prepared layout of the parts for W[N,K] with `group`.
void int4_check_weight(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, bool prepared, const char* op);
// True when `prepared` on this device means the tuned layout (not the canonical one).
bool int4_uses_tuned_layout(Device device, int64_t N, int64_t K);

Int4Parts int4_quantize(const Tensor& w, int64_t group, bool symmetric, DType scale_dtype);
Tensor int4_dequantize(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, DType out_dtype);
// Canonical parts on any device -> prepared parts on `device` (copied there first when needed).
Int4Parts int4_prepare(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, Device device);
// Prepared parts -> canonical parts on the same device.
Int4Parts int4_to_canonical(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                            int64_t group);
// y[M,N] = x[:, perm] · dequant(W)ᵀ + bias. perm (int32 [K]) and bias ([N], float) may be undefined.
// int8: activations quantised to int8 per block (cpu::int4_matmul_int8); CPU only (ERR_LLMK_UNAVAILABLE on a GPU).
Tensor int4_matmul(const Tensor& x, const Tensor& q, const Tensor& scales, const Tensor& zeros, const Tensor& perm,
                   const Tensor& bias, int64_t N, int64_t K, int64_t group, bool prepared, bool int8 = false);
// out[M,K] = x[:, perm] for a float x [M,K] and int32 perm [K] (used to undo act-order permutations).
Tensor int4_permute_cols(const Tensor& x, const Tensor& perm);
// Name of the kernel path int4_matmul takes for this call ("cpu", "general" or an mma tile configuration).
// act_order: x is gathered into aligned workspace first, so its own alignment does not matter.
std::string int4_matmul_path(const Tensor& x, int64_t N, int64_t K, bool prepared, bool act_order);

}  // namespace llmk::ops
