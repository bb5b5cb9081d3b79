#include "int4.h"
#include <algorithm>

#include "../core/cuda_runtime.h"
#include "../core/int4_params.h"
#include "../core/stream.h"
#include "../cpu/int4.h"
#include "tensor_ops.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/int4.h"
#endif

namespace llmk::ops {

namespace {

bool fast_shape(int64_t N, int64_t K) { return N > 0 && K > 0 && N % 16 == 0 && K % 16 == 0; }

void check_shape(const Tensor& t, const Shape& want, const char* op, const char* name) {
  LLMK_CHECK(t.shape() == want, Shape, "%s: %s must have shape %s, got %s", op, name, shape_str(want).c_str(),
             shape_str(t.shape()).c_str());
}

// The device of part `name` must be qweight's.
void check_device_of(const Tensor& t, const Tensor& q, const char* op, const char* name) {
  LLMK_CHECK(t.device() == q.device(), Device, "%s: %s is on %s but qweight is on %s", op, name, t.device().str().c_str(),
             q.device().str().c_str());
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

void int4_check_group(int64_t N, int64_t K, int64_t group, const char* op) {
  LLMK_CHECK(N >= 0, Shape, "%s: n must be >= 0, got %lld", op, (long long)N);
  LLMK_CHECK(K > 0, Shape, "%s: k must be > 0, got %lld", op, (long long)K);
  LLMK_CHECK(group == 32 || group == 64 || group == 128 || group == 256 || group == K, Arg,
             "%s: groupSize must be 32, 64, 128, 256 or k (%lld), got %lld", op, (long long)K, (long long)group);
  LLMK_CHECK(K % group == 0, Shape, "%s: k = %lld is not a multiple of groupSize %lld", op, (long long)K,
             (long long)group);
  LLMK_CHECK(K % 2 == 0, Shape, "%s: k must be even (two 4-bit values per byte), got %lld", op, (long long)K);
}

bool int4_uses_tuned_layout(Device device, int64_t N, int64_t K) {
  return device.is_cuda() ? fast_shape(N, K) : N > 0 && cpu::int4_quads_fit(N, K);
}

void int4_check_weight(const Tensor& q, const Tensor& scales, const Tensor& zeros, int64_t N, int64_t K,
                       int64_t group, bool prepared, const char* op) {
  int4_check_group(N, K, group, op);
  check_dtype(q, DType::U8, op, "qweight");
  check_float_dtype(scales, op, "scales");
  check_device_of(scales, q, op, "scales");
  if (zeros.defined()) {
    check_dtype(zeros, DType::U8, op, "zeros");
    check_device_of(zeros, q, op, "zeros");
  }
  const int64_t G = K / group;
  if (prepared && q.device().is_cuda() && int4_uses_tuned_layout(q.device(), N, K)) {  // the CPU's quads: canonical shapes
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
  int4_check_group(N, K, group, op);
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

namespace {

// The canonical parts of a checked weight (w's own tensors unless it holds the tuned layout; the CPU's
// quads change only the codes' order).
Int4Parts canonical_parts(const Int4Weight& w, const char* op) {
  if (!w.tuned) return {w.qweight, w.scales, w.zeros};
  const Device device = w.device();
  if (device.is_cpu()) {
    const Tensor quads = w.qweight, q = Tensor::empty({w.N, w.K / 2}, DType::U8, device);
    const int64_t N = w.N, K = w.K;
    enqueue_cpu([quads, q, N, K] { cpu::int4_from_quads(quads.data_as<uint8_t>(), N, K, q.data_as<uint8_t>()); },
                2 * q.nbytes());
    return {q, w.scales, w.zeros};
  }
  require_cuda_build(device, op);
  const int64_t N = w.N, K = w.K, G = K / w.group;
  Int4Parts p;
  p.qweight = Tensor::empty({N, K / 2}, DType::U8, device);
  p.scales = Tensor::empty({N, G}, w.scales.dtype(), device);
  if (w.zeros.defined()) p.zeros = Tensor::empty({N, G}, DType::U8, device);
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device.index);
  cuda::int4_unprepare(w.qweight.data_as<uint8_t>(), w.scales.data(), esize(w.scales.dtype()),
                       w.zeros.defined() ? w.zeros.data_as<uint8_t>() : nullptr, N, K, w.group,
                       p.qweight.data_as<uint8_t>(), p.scales.data(),
                       w.zeros.defined() ? p.zeros.data_as<uint8_t>() : nullptr, current_stream(device)->cuda());
#endif
  return p;
}

void check_perm_tensor(const Tensor& perm, const Tensor& q, int64_t K, const char* op, const char* name) {
  if (!perm.defined()) return;
  check_dtype(perm, DType::I32, op, name);
  check_device_of(perm, q, op, name);
  check_shape(perm, {K}, op, name);
}

}  // namespace

Int4Weight int4_weight(const Tensor& q, const Tensor& s, const Tensor& z, const Tensor& perm, const Tensor& inv_perm,
                       int64_t N, int64_t K, int64_t group, bool prepared, const char* op) {
  check_dtype(q, DType::U8, op, "qweight");
  check_float_dtype(s, op, "scales");
  if (z.defined()) check_dtype(z, DType::U8, op, "zeros");
  if (N < 0 || K < 0) {  // canonical qweight [N, K/2]
    LLMK_CHECK(q.ndim() == 2, Shape, "%s: qweight must be 2-D [N, K/2], got %s", op, shape_str(q.shape()).c_str());
    N = q.dim(0);
    K = 2 * q.dim(1);
    LLMK_CHECK(K > 0, Shape, "%s: qweight must have at least one byte per row, got %s", op,
               shape_str(q.shape()).c_str());
  }
  const bool tuned = prepared && int4_uses_tuned_layout(q.device(), N, K);
  if (group < 0) {  // canonical scales [N, K/group]
    LLMK_CHECK(!tuned, Internal, "%s: the group size of a prepared weight must be given", op);
    LLMK_CHECK(s.ndim() == 2 && s.dim(0) == N && s.dim(1) > 0, Shape, "%s: scales must have shape [%lld, K/groupSize], got %s",
               op, (long long)N, shape_str(s.shape()).c_str());
    LLMK_CHECK(K % s.dim(1) == 0, Shape, "%s: k = %lld is not a multiple of scales.shape[1] = %lld", op, (long long)K,
               (long long)s.dim(1));
    group = K / s.dim(1);
  }
  int4_check_weight(q, s, z, N, K, group, prepared, op);
  check_perm_tensor(perm, q, K, op, "perm");
  check_perm_tensor(inv_perm, q, K, op, "inverse perm");
  Int4Weight w;
  w.qweight = q; w.scales = s; w.zeros = z; w.perm = perm; w.inv_perm = inv_perm;
  w.N = N; w.K = K; w.group = group; w.prepared = prepared; w.tuned = tuned;
  return w;
}

Tensor int4_dequantize(const Int4Weight& w, DType odt) {
  const char* op = "quant.dequantize";
  LLMK_CHECK(is_floating(odt), DType, "%s: dtype must be float32, float16 or bfloat16, got %s", op, dtype_name(odt));
  require_cuda_build(w.device(), op);
  const Int4Parts c = canonical_parts(w, op);
  const int64_t N = w.N, K = w.K, group = w.group;
  Tensor out = Tensor::empty({N, K}, odt, w.device());
  if (N == 0) return out;
  const Tensor q = c.qweight, scales = c.scales, zeros = c.zeros;
  if (w.device().is_cpu()) {
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
  return w.inv_perm.defined() ? int4_permute_cols(out, w.inv_perm) : out;
}

std::vector<Tensor> int4_prepare(const Int4Weight& w, Device device) {
  const char* op = "quant.prepare";
  require_cuda_build(device, op);
  const Int4Parts c = canonical_parts(w, op);
  const int64_t N = w.N, K = w.K, group = w.group, G = K / group;
  // Bring the canonical parts to the target device (a copy, so the prepared weight owns its memory).
  auto moved = [&](const Tensor& t) { return t.defined() ? to_device(t, device) : Tensor(); };
  Tensor q = moved(c.qweight), s = moved(c.scales), z = moved(c.zeros);
  std::vector<Tensor> out = {q, s, z, moved(w.perm), moved(w.inv_perm)};
  if (!int4_uses_tuned_layout(device, N, K)) return out;
  if (device.is_cpu()) {  // the quads of cpu/int4.h (a new tensor: q may be w's own canonical codes)
    const Tensor quads = Tensor::empty({N, K / 2}, DType::U8, device);
    enqueue_cpu([q, quads, N, K] { cpu::int4_to_quads(q.data_as<uint8_t>(), N, K, quads.data_as<uint8_t>()); },
                2 * q.nbytes());
    out[0] = quads;
    return out;
  }
  out[0] = Tensor::empty({cpu::int4_prepared_qbytes(N, K)}, DType::U8, device);
  out[1] = Tensor::empty({G, N}, s.dtype(), device);
  if (z.defined()) out[2] = Tensor::empty({G, N}, DType::U8, device);
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device.index);
  cuda::int4_prepare(q.data_as<uint8_t>(), s.data(), esize(s.dtype()), z.defined() ? z.data_as<uint8_t>() : nullptr, N,
                     K, group, out[0].data_as<uint8_t>(), out[1].data(),
                     z.defined() ? out[2].data_as<uint8_t>() : nullptr, current_stream(device)->cuda());
#endif
  return out;
}

Int4Parts int4_to_canonical(const Int4Weight& w) { return canonical_parts(w, "Int4Weight.toCanonical"); }

Tensor int4_matmul(const Tensor& x, const Int4Weight& w, const Tensor& bias, bool int8) {
  const char* op = "quant.matmul";
  const int64_t N = w.N, K = w.K;
  check_float_dtype(x, op, "x");
  LLMK_CHECK(x.ndim() == 2, Shape, "%s: x must be 2-D [M, K], got %s", op, shape_str(x.shape()).c_str());
  LLMK_CHECK(x.device() == w.device(), Device, "%s: x is on %s but the weight is on %s (use quant.prepare(w, '%s'))", op,
             x.device().str().c_str(), w.device().str().c_str(), x.device().str().c_str());
  LLMK_CHECK(x.dim(1) == K, Shape, "%s: x has %lld columns but the weight has k = %lld", op, (long long)x.dim(1),
             (long long)K);
  if (bias.defined()) {
    check_float_dtype(bias, op, "bias");
    LLMK_CHECK(bias.device() == x.device(), Device, "%s: bias is on %s but x is on %s", op,
               bias.device().str().c_str(), x.device().str().c_str());
    check_shape(bias, {N}, op, "bias");
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
  const Tensor &q = w.qweight, &s = w.scales, &z = w.zeros, &perm = w.perm;
  Int4MatmulParams p;
  p.x = x.data(); p.xdt = x.dtype();
  p.qweight = q.data_as<uint8_t>(); p.scales = s.data(); p.sdt = s.dtype();
  p.zeros = z.defined() ? z.data_as<uint8_t>() : nullptr;
  p.prepared = w.tuned;
  p.bias = bias.defined() ? bias.data() : nullptr; p.bdt = bias.defined() ? bias.dtype() : DType::F32;
  p.perm = perm.defined() ? perm.data_as<int32_t>() : nullptr;
  p.y = y.data();
  p.M = M; p.N = N; p.K = K; p.group = w.group;
  if (x.device().is_cpu()) {
    // The lambda keeps every tensor alive until the job ran (p holds only their pointers).
    enqueue_cpu([x, q, s, z, perm, bias, y, p, int8] {
      (int8 ? cpu::int4_matmul_int8 : cpu::int4_matmul)(p.x, int(p.xdt), p.qweight, p.scales, int(p.sdt), p.zeros,
                                                          p.bias, int(p.bdt), p.perm, p.y, int(p.xdt), p.M, p.N, p.K,
                                                          p.group, cpu::QLayout{p.prepared, 0});
    }, int64_t(std::min(double(M) * double(N) * double(K), 9e18)));  // compute-bound: count multiply-adds
  } else {
#ifdef LLMK_WITH_CUDA
    const Device dev = x.device();
    cuda_set_device(dev.index);
    const int64_t wsb = cuda::int4_matmul_workspace(M, N, K, w.group, int(x.dtype()), w.tuned, perm.defined());
    Tensor ws = wsb > 0 ? Tensor::empty({wsb}, DType::U8, dev) : Tensor();
    cuda::int4_matmul(p, ws.defined() ? ws.data() : nullptr, wsb, cuda_error_flag(dev.index), current_stream(dev)->cuda());
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

std::string int4_matmul_path(const Tensor& x, const Int4Weight& w) {
  if (!x.device().is_cuda()) return "cpu";
#ifdef LLMK_WITH_CUDA
  cuda_set_device(x.device().index);
  return cuda::int4_matmul_path(x.dim(0), w.N, w.K, int(x.dtype()), w.tuned, w.perm.defined() ? nullptr : x.data(),
                                nullptr);
#else
  (void)w;
  return "unavailable";
#endif
}

}  // namespace llmk::ops
