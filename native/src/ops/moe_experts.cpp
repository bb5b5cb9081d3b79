// MoE expert layer op: every tensor contract of moe.experts is checked here, once, before anything is
// allocated or enqueued; ids (and expert map entries) that only the data reveals raise ERR_LLMK_INDEX at
// the next synchronisation (CPU: the kernel throws on the stream; CUDA: the device error flag).
#include "moe_experts.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/moe.h"
#include "../cpu/moe_experts.h"
#include "../cpu/moe_experts_act.h"
#include "int4.h"
#include "moe.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/moe_experts.h"
#endif

namespace llmk::ops {

namespace {

constexpr const char* kOp = "moe.experts";
constexpr int64_t kMaxExperts = cpu::kMoeMaxExperts;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Checks one projection against [E, N, K] and returns E (the experts it holds).
int64_t check_proj(const ExpertProj& p, const Tensor& x, int64_t N, int64_t K, const char* name) {
  int64_t E = 0;
  if (p.dense.defined()) {
    check_same_device(x, p.dense, kOp);
    check_float_dtype(p.dense, kOp, name);
    check_ndim(p.dense, 3, kOp, name);
    E = p.dense.dim(0);
    LLMK_CHECK(p.dense.dim(1) == N && p.dense.dim(2) == K, Shape, "%s: %s must have shape [E, %lld, %lld], got %s",
               kOp, name, (long long)N, (long long)K, shape_str(p.dense.shape()).c_str());
  } else {
    LLMK_CHECK(p.q.defined() && p.scales.defined(), Arg, "%s: %s must be a tensor or an Int4Weight", kOp, name);
    check_same_device(x, p.q, kOp);
    LLMK_CHECK(p.experts >= 1, Arg,
               "%s: the Int4Weight %s is not stacked; build it with quant.stackExperts(perExpertWeights)", kOp, name);
    E = p.experts;
    LLMK_CHECK(p.cols == K && p.rows == E * N, Shape,
               "%s: %s (%lld experts of %lld x %lld) does not match [E, %lld, %lld]", kOp, name, (long long)E,
               (long long)(p.rows / E), (long long)p.cols, (long long)N, (long long)K);
    int4_check_weight(p.q, p.scales, p.zeros, p.rows, p.cols, p.group, p.prepared, kOp);
  }
  LLMK_CHECK(E >= 1 && E <= kMaxExperts, Shape, "%s: %s must hold 1 to %lld experts, got %lld", kOp, name,
             (long long)kMaxExperts, (long long)E);
  if (p.bias.defined()) {
    check_same_device(x, p.bias, kOp);
    check_float_dtype(p.bias, kOp, (std::string(name) + "Bias").c_str());
    LLMK_CHECK(p.bias.ndim() == 2 && p.bias.dim(0) == E && p.bias.dim(1) == N, Shape,
               "%s: the bias of %s must have shape [%lld, %lld], got %s", kOp, name, (long long)E, (long long)N,
               shape_str(p.bias.shape()).c_str());
  }
  return E;
}

// The kernel's view of a checked projection.
cpu::ExpertWeight view(const ExpertProj& p) {
  cpu::ExpertWeight w;
  if (p.dense.defined()) {
    w.dense = p.dense.data();
    w.dt = int(p.dense.dtype());
  } else {
    w.q = p.q.data_as<uint8_t>();
    w.scales = p.scales.data();
    w.sdt = int(p.scales.dtype());
    w.zeros = p.zeros.defined() ? p.zeros.data_as<uint8_t>() : nullptr;
    w.group = p.group;
    w.tuned = p.prepared && int4_uses_tuned_layout(p.q.device(), p.rows, p.cols);
    w.total_rows = p.rows;
  }
  if (p.bias.defined()) {
    w.bias = p.bias.data();
    w.bdt = int(p.bias.dtype());
  }
  return w;
}

int64_t bytes_of(const ExpertProj& p) {
  auto b = [](const Tensor& t) { return t.defined() ? t.nbytes() : int64_t(0); };
  return b(p.dense) + b(p.q) + b(p.scales) + b(p.zeros) + b(p.bias);
}

}  // namespace

Tensor moe_experts(const Tensor& x, const Tensor& weights, const Tensor& ids, const ExpertProj& gate_up,
                   const ExpertProj& down, const MoeExpertsOptions& o) {
  LLMK_CHECK(o.activation >= moe_act::kSwiglu && o.activation <= moe_act::kRelu, Arg, "%s: unknown activation %d",
             kOp, o.activation);
  check_float_dtype(x, kOp, "x");
  check_matrix(x, kOp, "x", "[T, H]");
  check_same_device(x, weights, kOp);
  check_same_device(x, ids, kOp);
  check_dtype(weights, DType::F32, kOp, "routing.weights");
  check_dtype(ids, DType::I32, kOp, "routing.ids");
  check_matrix(ids, kOp, "routing.ids", "[T, k]");
  const int64_t T = x.dim(0), H = x.dim(1), k = ids.dim(1);
  LLMK_CHECK(ids.dim(0) == T, Shape, "%s: routing.ids must have one row per token of x (x is %s, ids is %s)", kOp,
             shape_str(x.shape()).c_str(), shape_str(ids.shape()).c_str());
  LLMK_CHECK(weights.shape() == ids.shape(), Shape, "%s: routing weights %s and ids %s must have the same shape [T, k]",
             kOp, shape_str(weights.shape()).c_str(), shape_str(ids.shape()).c_str());
  LLMK_CHECK(ids.numel() <= kInt32Max && T <= kInt32Max, Shape, "%s: at most 2^31-1 routing slots are supported", kOp);
  // down is [E, H, I]: it gives I
  int64_t I = 0;
  if (down.dense.defined()) {
    check_ndim(down.dense, 3, kOp, "down");
    I = down.dense.dim(2);
  } else {
    I = down.cols;
  }
  LLMK_CHECK(I >= 1 && H >= 1, Shape, "%s: hidden (%lld) and intermediate (%lld) sizes must be >= 1", kOp,
             (long long)H, (long long)I);
  const bool gated = moe_act::gated(o.activation);
  const int64_t E = check_proj(gate_up, x, gated ? 2 * I : I, H, "gateUp");
  const int64_t E2 = check_proj(down, x, H, I, "down");
  LLMK_CHECK(E == E2, Shape, "%s: gateUp holds %lld experts but down holds %lld", kOp, (long long)E, (long long)E2);
  int64_t Eg = E;
  if (o.expert_map.defined()) {
    check_same_device(x, o.expert_map, kOp);
    check_dtype(o.expert_map, DType::I32, kOp, "expertMap");
    check_ndim(o.expert_map, 1, kOp, "expertMap");
    Eg = o.expert_map.dim(0);
    LLMK_CHECK(Eg >= 1 && Eg <= kMaxExperts, Shape, "%s: expertMap must have 1 to %lld entries, got %lld", kOp,
               (long long)kMaxExperts, (long long)Eg);
  }
  const Device dev = x.device();
  Tensor y = Tensor::empty({T, H}, x.dtype(), dev);
  if (T == 0) return y;
  cpu::MoeExpertsParams p;
  p.tokens = T; p.hidden = H; p.inter = I; p.k = int(k); p.experts = int(E); p.global_experts = int(Eg);
  p.activation = o.activation; p.interleaved = o.interleaved;
  if (dev.is_cpu()) {
    const Tensor xi = x, w = weights, id = ids, map = o.expert_map, out = y;
    const ExpertProj g = gate_up, d = down;
    enqueue_cpu([xi, w, id, map, out, g, d, p]() mutable {
      p.expert_map = map.defined() ? map.data_as<int32_t>() : nullptr;
      cpu::moe_experts(xi.data(), int(xi.dtype()), w.data_as<float>(), id.data_as<int32_t>(), view(g), view(d), p,
                       out.data());
    }, x.nbytes() + bytes_of(gate_up) + bytes_of(down) + y.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(dev.index);
    p.expert_map = o.expert_map.defined() ? o.expert_map.data_as<int32_t>() : nullptr;
    Tensor sc = Tensor::empty({std::max<int64_t>(cuda::moe_experts_scratch_bytes(T * k, H, I, int(E)), 1)}, DType::U8, dev);
    cuda::moe_experts(x.data(), int(x.dtype()), weights.data_as<float>(), ids.data_as<int32_t>(), view(gate_up),
                      view(down), p, y.data(), sc.data(), cuda_error_flag(dev.index), current_stream(dev)->cuda());
#else
    throw Error(ErrCode::Unavailable, fmt("%s: this build of llm-kernels has no CUDA support", kOp));
#endif
  }
  return y;
}

Tensor moe_stack_rows(const std::vector<Tensor>& parts) {
  const char* op = "quant.stackExperts";
  LLMK_CHECK(!parts.empty(), Arg, "%s: at least one tensor is required", op);
  const Tensor& a = parts[0];
  LLMK_CHECK(a.ndim() >= 1, Shape, "%s: tensors must have at least one dimension", op);
  int64_t rows = 0;
  for (const Tensor& t : parts) {
    check_same_device(a, t, op);
    LLMK_CHECK(t.dtype() == a.dtype(), DType, "%s: every expert's tensor must have dtype %s, got %s", op,
               dtype_name(a.dtype()), dtype_name(t.dtype()));
    LLMK_CHECK(t.ndim() == a.ndim() && std::equal(t.shape().begin() + 1, t.shape().end(), a.shape().begin() + 1), Shape,
               "%s: every expert's tensor must have shape [*, ...%s], got %s", op, shape_str(a.shape()).c_str(),
               shape_str(t.shape()).c_str());
    rows += t.dim(0);
  }
  Shape s = a.shape();
  s[0] = rows;
  const Device dev = a.device();
  Tensor out = Tensor::empty(s, a.dtype(), dev);
  int64_t at = 0;
  for (const Tensor& t : parts) {
    const int64_t nb = t.nbytes();
    if (nb == 0) continue;
    if (dev.is_cpu()) {
      const Tensor src = t, dst = out;
      enqueue_cpu([src, dst, at, nb] { std::memcpy(static_cast<char*>(dst.data()) + at, src.data(), size_t(nb)); }, nb);
    } else {
#ifdef LLMK_WITH_CUDA
      cuda_set_device(dev.index);
      cuda_memcpy_async(static_cast<char*>(out.data()) + at, t.data(), nb, 3 /* cudaMemcpyDeviceToDevice */,
                        current_stream(dev)->cuda());
#endif
    }
    at += nb;
  }
  return out;
}

}  // namespace llmk::ops
