#include "int4.h"
#include <algorithm>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/int4.h"
#include "tensor_ops.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/int4.h"
#endif

namespace llmk::ops {

namespace {

bool fast_shape(int64_t N, int64_t K) { return N > 0 && K > 0 && N % 16 == 0 && K % 16 == 0; }

void check_group(int64_t N, int64_t K, int64_t group, const char* op) {
  LLMK_CHECK(N >= 0, Shape, "%s: n must be >= 0, got %lld", op, (long long)N);
  LLMK_CHECK(K > 0, Shape, "%s: k must be > 0, got %lld", op, (long long)K);
  LLMK_CHECK(group == 32 || group == 64 || group == 128 || group == 256 || group == K, Arg,
             "%s: groupSize must be 32, 64, 128, 256 or k (%lld), got %lld", op, (long long)K, (long long)group);
  LLMK_CHECK(K % group == 0, Shape, "%s: k = %lld is not a multiple of groupSize %lld", op, (long long)K,
             (long long)group);
  LLMK_CHECK(K % 2 == 0, Shape, "%s: k must be even (two 4-bit values per byte), got %lld", op, (long long)K);
}

void check_shape(const Tensor& t, const Shape& want, const char* op, const char* name) {
  LLMK_CHECK(t.shape() == want, Shape, "%s: %s must have shape %s, got %s", op, name, shape_str(want).c_str(),
             shape_str(t.shape()).c_str());
}

void require_cuda_build(Device d, const char* op) {
#ifndef LLMK_WITH_CUDA
  LLMK_CHECK(!d.is_cuda(), Unavailable, "%s: this build has no CUDA backend", op);
#else
  (void)d; (void)op;
#endif
}

[[maybe_unused]] int esize(DType t) { return int(dtype_size(t)); }

}  // namespace

bool int4_uses_tuned_layout(Device device, int64_t N, int64_t K) { return device.is_cuda() && fast_shape(N, K); }

void int4_check_weight(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, bool prepared, const char* op) {
  check_group(N, K, group, op);
  check_dtype(q, DType::U8, op, "qweight");
  check_float_dtype(scales, op, "scales");
  check_same_device(q, scales, op);
  if (zeros.defined()) {
    check_dtype(zeros, DType::U8, op, "zeros");
    check_same_device(q, zeros, op);
  }
  const int64_t G = K / group;
  if (prepared && int4_uses_tuned_layout(q.device(), N, K)) {
    check_shape(q, {cpu::int4_prepared_qbytes(N, K)}, op, "prepared qweight");
    check_shape(scales, {G, N}, op, "prepared scales");
    if (zeros.defined()) check_shape(zeros, {G, N}, op, "prepared zeros");
  } else {
    check_shape(q, {N, K / 2}, op, "qweight");
    check_shape(scales, {N, G}, op, "scales");
    if (zeros.defined()) check_shape(zeros, {N, G}, op, "zeros");
  }
}

Int4Parts int4_quantize(const Tensor& w, int64_t group, bool symmetric, DType sdt) {
  const char* op = "quant.quantize";
  check_float_dtype(w, op, "w");
  check_ndim(w, 2, op, "w");
  LLMK_CHECK(is_floating(sdt), DType, "%s: scale dtype must be float32, float16 or bfloat16, got %s", op,
             dtype_name(sdt));
  const int64_t N = w.dim(0), K = w.dim(1);
  check_group(N, K, group, op);
  require_cuda_build(w.device(), op);
  if (N > 0) {
    // Data-dependent contract, checked on the host before any output is written: quantisation is a
    // one-off step, so waiting for w (and copying a GPU w to the host) is affordable.
    const Tensor hw = w.device().is_cpu() ? w : to_device(w, Device{});
    synchronize_device(Device{});
    cpu::int4_quantize_check(hw.data(), int(w.dtype()), N, K, group, symmetric, int(sdt));
  }
  const int64_t G = K / group;
  Int4Parts p;
  p.qweight = Tensor::empty({N, K / 2}, DType::U8, w.device());
  p.scales = Tensor::empty({N, G}, sdt, w.device());
  if (!symmetric) p.zeros = Tensor::empty({N, G}, DType::U8, w.device());
  if (N == 0) return p;
  Tensor q = p.qweight, s = p.scales, z = p.zeros;
  if (w.device().is_cpu()) {
    enqueue_cpu([w, q, s, z, N, K, group, symmetric, sdt] {
      cpu::int4_quantize(w.data(), int(w.dtype()), N, K, group, symmetric, q.data_as<uint8_t>(), s.data(), int(sdt),
                         z.defined() ? z.data_as<uint8_t>() : nullptr);
    }, w.nbytes() + q.nbytes() + s.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(w.device().index);
    cuda::int4_quantize(w.data(), int(w.dtype()), N, K, group, symmetric, q.data_as<uint8_t>(), s.data(), int(sdt),
                        z.defined() ? z.data_as<uint8_t>() : nullptr, current_stream(w.device())->cuda());
#endif
  }
  return p;
}

Tensor int4_dequantize(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, DType odt) {
  const char* op = "quant.dequantize";
  int4_check_weight(q, scales, zeros, N, K, group, false, op);
  LLMK_CHECK(is_floating(odt), DType, "%s: output dtype must be float32, float16 or bfloat16, got %s", op,
             dtype_name(odt));
  require_cuda_build(q.device(), op);
  Tensor out = Tensor::empty({N, K}, odt, q.device());
  if (N == 0) return out;
  if (q.device().is_cpu()) {
    enqueue_cpu([q, scales, zeros, out, N, K, group, odt] {
      cpu::int4_dequantize(q.data_as<uint8_t>(), scales.data(), int(scales.dtype()),
                           zeros.defined() ? zeros.data_as<uint8_t>() : nullptr, N, K, group, out.data(), int(odt));
    }, q.nbytes() + out.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(q.device().index);
    cuda::int4_dequantize(q.data_as<uint8_t>(), scales.data(), int(scales.dtype()),
                          zeros.defined() ? zeros.data_as<uint8_t>() : nullptr, N, K, group, out.data(), int(odt),
                          current_stream(q.device())->cuda());
#endif
  }
  return out;
}

Int4Parts int4_prepare(const Tensor& q0, const Tensor& s0, const Tensor& z0, int64_t N, int64_t K, int64_t group,
                       Device device) {
  const char* op = "quant.prepare";
  int4_check_weight(q0, s0, z0, N, K, group, false, op);
  require_cuda_build(device, op);
  // Bring the canonical parts to the target device (a copy, so the prepared weight owns its memory).
  Tensor q = to_device(q0, device), s = to_device(s0, device), z = z0.defined() ? to_device(z0, device) : Tensor();
  if (!int4_uses_tuned_layout(device, N, K)) return {q, s, z};
  const int64_t G = K / group;
  Int4Parts p;
  p.qweight = Tensor::empty({cpu::int4_prepared_qbytes(N, K)}, DType::U8, device);
  p.scales = Tensor::empty({G, N}, s.dtype(), device);
  if (z.defined()) p.zeros = Tensor::empty({G, N}, DType::U8, device);
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device.index);
  cuda::int4_prepare(q.data_as<uint8_t>(), s.data(), esize(s.dtype()), z.defined() ? z.data_as<uint8_t>() : nullptr, N,
                     K, group, p.qweight.data_as<uint8_t>(), p.scales.data(),
                     z.defined() ? p.zeros.data_as<uint8_t>() : nullptr, current_stream(device)->cuda());
#endif
  return p;
}

Int4Parts int4_to_canonical(const Tensor& q, const Tensor& s, const Tensor& z, int64_t N, int64_t K, int64_t group) {
  const char* op = "Int4Weight.toCanonical";
  int4_check_weight(q, s, z, N, K, group, true, op);
  const Device device = q.device();
  if (!int4_uses_tuned_layout(device, N, K)) return {q, s, z};
  require_cuda_build(device, op);
  const int64_t G = K / group;
  Int4Parts p;
  p.qweight = Tensor::empty({N, K / 2}, DType::U8, device);
  p.scales = Tensor::empty({N, G}, s.dtype(), device);
  if (z.defined()) p.zeros = Tensor::empty({N, G}, DType::U8, device);
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device.index);
  cuda::int4_unprepare(q.data_as<uint8_t>(), s.data(), esize(s.dtype()), z.defined() ? z.data_as<uint8_t>() : nullptr,
                       N, K, group, p.qweight.data_as<uint8_t>(), p.scales.data(),
                       z.defined() ? p.zeros.data_as<uint8_t>() : nullptr, current_stream(device)->cuda());
#endif
  return p;
}

Tensor int4_matmul(const Tensor& x, const Tensor& q, const Tensor& s, const Tensor& z, const Tensor& perm,
                   const Tensor& bias, int64_t N, int64_t K, int64_t group, bool prepared, bool int8) {
  const char* op = "quant.matmul";
  int4_check_weight(q, s, z, N, K, group, prepared, op);
  check_float_dtype(x, op, "x");
  check_ndim(x, 2, op, "x");
  LLMK_CHECK(x.device() == q.device(), Device, "%s: x is on %s but the weight is on %s (prepare it for %s)", op,
             x.device().str().c_str(), q.device().str().c_str(), x.device().str().c_str());
  LLMK_CHECK(x.dim(1) == K, Shape, "%s: x has %lld columns but the weight has k = %lld", op, (long long)x.dim(1),
             (long long)K);
  if (bias.defined()) {
    check_float_dtype(bias, op, "bias");
    check_same_device(x, bias, op);
    check_shape(bias, {N}, op, "bias");
  }
  if (perm.defined()) {
    check_dtype(perm, DType::I32, op, "perm");
    check_same_device(x, perm, op);
    check_shape(perm, {K}, op, "perm");
  }
  require_cuda_build(x.device(), op);
  // The int8 mode is a CPU kernel only: on a GPU the float math would give other results than the CPU
  // oracle's, so it is refused rather than silently replaced.
  LLMK_CHECK(!int8 || x.device().is_cpu(), Unavailable,
             "%s: compute 'int8' runs on the CPU only (x is on %s); use compute 'float' on a GPU", op,
             x.device().str().c_str());
  const int64_t M = x.dim(0);
  Tensor y = Tensor::empty({M, N}, x.dtype(), x.device());
  if (M == 0 || N == 0) return y;
  if (x.device().is_cpu()) {
    enqueue_cpu([x, q, s, z, perm, bias, y, M, N, K, group, int8] {
      (int8 ? cpu::int4_matmul_int8 : cpu::int4_matmul)(x.data(), int(x.dtype()), q.data_as<uint8_t>(), s.data(), int(s.dtype()),
                       z.defined() ? z.data_as<uint8_t>() : nullptr, bias.defined() ? bias.data() : nullptr,
                       bias.defined() ? int(bias.dtype()) : 0, perm.defined() ? perm.data_as<int32_t>() : nullptr,
                       y.data(), int(y.dtype()), M, N, K, group);
    }, int64_t(std::min(double(M) * double(N) * double(K), 9e18)));  // compute-bound: count multiply-adds
  } else {
#ifdef LLMK_WITH_CUDA
    const Device dev = x.device();
    cuda_set_device(dev.index);
    const bool tuned = prepared && int4_uses_tuned_layout(dev, N, K);
    const int64_t wsb = cuda::int4_matmul_workspace(M, N, K, group, int(x.dtype()), tuned, perm.defined());
    Tensor ws = wsb > 0 ? Tensor::empty({wsb}, DType::U8, dev) : Tensor();
    cuda::int4_matmul(x.data(), int(x.dtype()), q.data_as<uint8_t>(), s.data(), int(s.dtype()),
                      z.defined() ? z.data_as<uint8_t>() : nullptr, tuned, bias.defined() ? bias.data() : nullptr,
                      bias.defined() ? int(bias.dtype()) : 0, perm.defined() ? perm.data_as<int32_t>() : nullptr,
                      y.data(), M, N, K, group, ws.defined() ? ws.data() : nullptr, wsb, cuda_error_flag(dev.index),
                      current_stream(dev)->cuda());
#endif
  }
  return y;
}

Tensor int4_permute_cols(const Tensor& x, const Tensor& perm) {
  const char* op = "quant.permuteColumns";
  check_float_dtype(x, op, "x");
  check_ndim(x, 2, op, "x");
  check_dtype(perm, DType::I32, op, "perm");
  check_same_device(x, perm, op);
  check_shape(perm, {x.dim(1)}, op, "perm");
  require_cuda_build(x.device(), op);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t M = x.dim(0), K = x.dim(1);
  if (M * K == 0) return out;
  if (x.device().is_cpu()) {
    enqueue_cpu([x, perm, out, M, K] {
      cpu::permute_cols(x.data(), perm.data_as<int32_t>(), out.data(), M, K, int64_t(dtype_size(x.dtype())));
    }, 2 * x.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(x.device().index);
    cuda::permute_cols(x.data(), perm.data_as<int32_t>(), out.data(), M, K, int(dtype_size(x.dtype())),
                       cuda_error_flag(x.device().index), current_stream(x.device())->cuda());
#endif
  }
  return out;
}

std::string int4_matmul_path(const Tensor& x, int64_t N, int64_t K, bool prepared, bool act_order) {
  if (!x.device().is_cuda()) return "cpu";
#ifdef LLMK_WITH_CUDA
  cuda_set_device(x.device().index);
  return cuda::int4_matmul_path(x.dim(0), N, K, int(x.dtype()), prepared && int4_uses_tuned_layout(x.device(), N, K),
                                act_order ? nullptr : x.data(), nullptr);
#else
  (void)N; (void)K; (void)prepared; (void)act_order;
  return "unavailable";
#endif
}

}  // namespace llmk::ops
