// INT4 weight-only matmul ops (docs/architecture.md §4.3): every tensor contract of quant.* is checked
// here, once; then allocate and dispatch.
//
// Layouts of a weight W[N,K] with G = K / group groups per row:
//   canonical: qweight uint8 [N, K/2] (low nibble = even k), scales [N, G] float, zeros uint8 [N, G] or none.
//   prepared (CUDA, N % 16 == 0 and K % 16 == 0): qweight uint8 [int4_prepared_qbytes(N, K)] in the
//     tensor-core fragment order of cpu/int4.h, scales [G, N], zeros [G, N].
//   prepared (CPU, N % 4 == 0 and K % 128 == 0): qweight uint8 [N, K/2] holding the rows in the quads of
//     cpu/int4.h; scales and zeros canonical. For other shapes the prepared weight is the canonical one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "../core/tensor.h"

namespace llmk::ops {

struct Int4Parts {
  Tensor qweight, scales, zeros;  // zeros undefined when symmetric
};

// A weight whose contract was checked once, by int4_weight (quant.Int4Weight holds one): the hot
// int4_matmul then checks only x and the bias against it, in O(1).
struct Int4Weight {
  Tensor qweight, scales, zeros;  // zeros undefined when symmetric
  Tensor perm, inv_perm;          // act-order permutation (int32 [K]) and its inverse, or undefined
  int64_t N = 0, K = 0, group = 0;
  bool prepared = false;          // the parts are prepare()'s output for their device
  bool tuned = false;             // ... and that is the tuned (not the canonical) layout
  Device device() const { return qweight.device(); }
};

// Checks the parts of W[N,K] and returns the weight. N, K < 0: read from a canonical qweight [N, K/2];
// group < 0: read from canonical scales [N, K/group]. perm / inv_perm: int32 [K] (the data, which only
// a host read reveals, is the caller's: quant.fromCanonical reads it back; kernels bound-check entries).
Int4Weight int4_weight(const Tensor& q, const Tensor& scales, const Tensor& zeros, const Tensor& perm,
                       const Tensor& inv_perm, int64_t N, int64_t K, int64_t group, bool prepared, const char* op);

// Checks N >= 0, K > 0 even, and group: 32, 64, 128, 256 or K, dividing K.
void int4_check_group(int64_t N, int64_t K, int64_t group, const char* op);
// Checks the canonical (prepared = false) or prepared layout of the parts for W[N,K] with `group`.
void int4_check_weight(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, bool prepared, const char* op);
// True when `prepared` on this device means the tuned layout (not the canonical one).
bool int4_uses_tuned_layout(Device device, int64_t N, int64_t K);

// Canonical parts of W[N,K] = quantize(w) per group of `group` k.
Int4Parts int4_quantize(const Tensor& w, int64_t group, bool symmetric, DType scale_dtype);
// The float W[N,K] in the original column order (act-order undone), dtype out_dtype.
Tensor int4_dequantize(const Int4Weight& w, DType out_dtype);
// The parts of w prepared for `device` (copied there first when needed), in the order
// qweight, scales, zeros, perm, inv_perm (undefined where w has none).
std::vector<Tensor> int4_prepare(const Int4Weight& w, Device device);
// The canonical parts of w on its device (w's own tensors when its layout is canonical).
Int4Parts int4_to_canonical(const Int4Weight& w);
// y[M,N] = x[:, perm] · dequant(W)ᵀ + bias, in x's dtype. bias ([N], float) may be undefined.
// int8: activations quantised to int8 per block (cpu::int4_matmul_int8); CPU only (ERR_LLMK_UNAVAILABLE on a GPU).
Tensor int4_matmul(const Tensor& x, const Int4Weight& w, const Tensor& bias, bool int8 = false);
// out[M,K] = x[:, perm] for a float x [M,K] and int32 perm [K] (used to undo act-order permutations).
Tensor int4_permute_cols(const Tensor& x, const Tensor& perm);
// Name of the kernel path int4_matmul takes for this x ("cpu", "general" or an mma tile configuration).
std::string int4_matmul_path(const Tensor& x, const Int4Weight& w);

// The checkpoint importers' tensor contracts (quant.fromGptq / fromAwq / fromMatMulNBits), checked
// before their data is read back and repacked on the host; each returns the weight's N, K and group.
struct Int4Dims { int64_t N = 0, K = 0, group = 0; };
Int4Dims int4_gptq_dims(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales, const Tensor& g_idx);
Int4Dims int4_awq_dims(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales);
Int4Dims int4_matmul_nbits_dims(const Tensor& b, const Tensor& scales, const Tensor& zero_points, int64_t K,
                                int64_t N, int64_t block_size, int64_t bits);

}  // namespace llmk::ops
