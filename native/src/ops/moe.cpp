// MoE routing ops: every contract is re-checked here (never trusting JS) before anything is
// allocated or enqueued; then the CPU kernels run on the CPU stream, the CUDA kernels on the
// current CUDA stream. Out-of-range ids that only the device data reveals raise ERR_LLMK_INDEX at
// the next synchronisation (CPU: the kernel throws on the stream; CUDA: the device error flag).
#include "moe.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "launch.h"
#include "../cpu/moe.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/moe.h"
#endif

namespace llmk::ops {

namespace {

constexpr int64_t kMaxExperts = cpu::kMoeMaxExperts;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

void check_experts(int64_t E, const char* op) {
  LLMK_CHECK(E >= 1 && E <= kMaxExperts, Arg, "%s: numExperts must be an integer in [1, %lld], got %lld", op,
             (long long)kMaxExperts, (long long)E);
}

void check_ids(const Tensor& ids, const char* op) {
  check_dtype(ids, DType::I32, op, "ids");
  check_matrix(ids, op, "ids", "[T, k]");
  LLMK_CHECK(ids.numel() <= kInt32Max, Shape, "%s: ids has %lld elements; at most 2^31-1 are supported", op,
             (long long)ids.numel());
}

}  // namespace

void check_matrix(const Tensor& t, const char* op, const char* name, const char* dims) {
  LLMK_CHECK(t.ndim() == 2, Shape, "%s: %s must be 2-D %s, got %s", op, name, dims, shape_str(t.shape()).c_str());
}

MoeTopkResult moe_topk(const Tensor& logits, const MoeTopkOptions& o) {
  const char* op = "moe.topk";
  check_float_dtype(logits, op, "logits");
  check_matrix(logits, op, "logits", "[T, E]");
  const int64_t T = logits.dim(0), E = logits.dim(1);
  LLMK_CHECK(E >= 1 && E <= kMaxExperts, Shape, "%s: logits must have 1 to %lld experts (columns), got %lld", op,
             (long long)kMaxExperts, (long long)E);
  LLMK_CHECK(T <= kInt32Max, Shape, "%s: at most 2^31-1 tokens are supported, got %lld", op, (long long)T);
  LLMK_CHECK(o.k >= 1 && o.k <= E, Arg, "%s: k must be in [1, E=%lld], got %lld", op, (long long)E, (long long)o.k);
  if (o.bias.defined()) {
    check_same_device(logits, o.bias, op);
    check_dtype(o.bias, DType::F32, op, "bias");
    LLMK_CHECK(o.bias.ndim() == 1 && o.bias.dim(0) == E, Shape, "%s: bias must have shape [%lld], got %s", op,
               (long long)E, shape_str(o.bias.shape()).c_str());
  }
  if (o.groups != 0) {
    LLMK_CHECK(o.groups >= 1 && E % o.groups == 0, Arg,
               "%s: groups.count (%lld) must divide the number of experts (E = %lld, the columns of logits)", op,
               (long long)o.groups, (long long)E);
    LLMK_CHECK(o.group_topk >= 1 && o.group_topk <= o.groups, Arg, "%s: groups.topk must be in [1, %lld], got %lld", op,
               (long long)o.groups, (long long)o.group_topk);
    LLMK_CHECK(o.k <= o.group_topk * (E / o.groups), Arg,
               "%s: k (%lld) exceeds the experts of the kept groups (groups.topk %lld x %lld experts per group)", op,
               (long long)o.k, (long long)o.group_topk, (long long)(E / o.groups));
  }
  LLMK_CHECK(std::isfinite(o.scale), Arg, "%s: scale must be a finite number, got %g", op, o.scale);
  const Device dev = logits.device();
  MoeTopkResult r{Tensor::empty({T, o.k}, DType::F32, dev), Tensor::empty({T, o.k}, DType::I32, dev)};
  if (T == 0) return r;
  cpu::MoeTopkParams p;  // one struct for both backends (cpu/moe.h); pointers set where the data is used
  p.dtype = logits.dtype(); p.tokens = T; p.experts = int(E); p.k = int(o.k); p.sigmoid = o.sigmoid;
  p.renormalize = o.renormalize; p.groups = int(o.groups); p.group_topk = int(o.group_topk); p.scale = float(o.scale);
  if (dev.is_cpu()) {
    Tensor l = logits, bias = o.bias, w = r.weights, ids = r.ids;
    enqueue_cpu([l, bias, w, ids, p]() mutable {
      p.logits = l.data(); p.weights = w.data_as<float>(); p.ids = ids.data_as<int32_t>();
      p.bias = bias.defined() ? bias.data_as<float>() : nullptr;
      cpu::moe_topk(p);
    }, l.nbytes() + w.nbytes() + ids.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    p.logits = logits.data(); p.weights = r.weights.data_as<float>(); p.ids = r.ids.data_as<int32_t>();
    p.bias = o.bias.defined() ? o.bias.data_as<float>() : nullptr;
    cuda::moe_topk(p, L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return r;
}

MoeAlignResult moe_align(const Tensor& ids, int64_t E, int64_t bs) {
  const char* op = "moe.align";
  check_ids(ids, op);
  check_experts(E, op);
  LLMK_CHECK(bs >= 1 && bs <= cpu::kMoeMaxBlockSize, Arg, "%s: blockSize must be an integer in [1, %lld], got %lld", op,
             (long long)cpu::kMoeMaxBlockSize, (long long)bs);
  const int64_t n = ids.numel();
  const int64_t cap = cpu::moe_align_capacity(n, int(E), int(bs));
  LLMK_CHECK(cap <= kInt32Max, Arg, "%s: the padded size (%lld) does not fit int32; use a smaller blockSize", op,
             (long long)cap);
  const int64_t nb = cap / bs;
  const Device dev = ids.device();
  MoeAlignResult r{Tensor::empty({cap}, DType::I32, dev), Tensor::empty({nb}, DType::I32, dev),
                   Tensor::empty({1}, DType::I32, dev)};
  cpu::MoeAlignParams p;  // one struct for both backends (cpu/moe.h); pointers set where the data is used
  p.n = n; p.E = int(E); p.bs = int(bs); p.capacity = cap; p.num_blocks = nb;
  if (dev.is_cpu()) {
    Tensor in = ids, s = r.sorted_ids, b = r.block_experts, np = r.num_padded;
    enqueue_cpu([in, s, b, np, p]() mutable {
      p.ids = in.data_as<int32_t>(); p.sorted = s.data_as<int32_t>(); p.block_experts = b.data_as<int32_t>();
      p.num_padded = np.data_as<int32_t>();
      cpu::moe_align(p);
    }, in.nbytes() + s.nbytes() + b.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    Tensor sc = L.scratch(cuda::moe_align_scratch_bytes(n, int(E)));
    p.ids = ids.data_as<int32_t>(); p.sorted = r.sorted_ids.data_as<int32_t>();
    p.block_experts = r.block_experts.data_as<int32_t>(); p.num_padded = r.num_padded.data_as<int32_t>();
    cuda::moe_align(p, sc.data(), L.err_flag(), L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return r;
}

MoePermuteResult moe_permute(const Tensor& x, const Tensor& ids, int64_t E) {
  const char* op = "moe.permute";
  check_same_device(x, ids, op);
  check_ids(ids, op);
  check_experts(E, op);
  check_matrix(x, op, "x", "[T, H]");
  const int64_t T = x.dim(0), H = x.dim(1), k = ids.dim(1);
  LLMK_CHECK(ids.dim(0) == T, Shape, "%s: ids must have one row per token of x (x is %s, ids is %s)", op,
             shape_str(x.shape()).c_str(), shape_str(ids.shape()).c_str());
  const int64_t n = T * k;
  const Device dev = x.device();
  MoePermuteResult r{Tensor::empty({n, H}, x.dtype(), dev), Tensor::empty({T, k}, DType::I32, dev),
                     Tensor::empty({E + 1}, DType::I32, dev)};
  cpu::MoePermuteParams p;  // one struct for both backends (cpu/moe.h)
  p.dtype = x.dtype(); p.tokens = T; p.hidden = H; p.k = int(k); p.experts = int(E);
  auto set_data = [](cpu::MoePermuteParams& q, const Tensor& xi, const Tensor& in, const MoePermuteResult& res) {
    q.x = xi.data(); q.ids = in.data_as<int32_t>(); q.out = res.out.data();
    q.row_map = res.row_map.data_as<int32_t>(); q.expert_offsets = res.expert_offsets.data_as<int32_t>();
  };
  if (dev.is_cpu()) {
    const Tensor xi = x, in = ids;
    const MoePermuteResult res = r;
    enqueue_cpu([xi, in, res, p, set_data]() mutable {
      set_data(p, xi, in, res);
      cpu::moe_permute(p);
    }, xi.nbytes() + in.nbytes() + r.out.nbytes() + r.row_map.nbytes() + r.expert_offsets.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    Tensor sc = L.scratch(cuda::moe_permute_scratch_bytes(n, int(E)));
    set_data(p, x, ids, r);
    cuda::moe_permute(p, sc.data(), L.err_flag(), L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return r;
}

Tensor moe_combine(const Tensor& y, const Tensor& weights, const Tensor& row_map) {
  const char* op = "moe.combine";
  check_same_device(y, weights, op);
  check_same_device(y, row_map, op);
  check_float_dtype(y, op, "y");
  check_matrix(y, op, "y", "[R, H]");
  check_dtype(weights, DType::F32, op, "weights");
  check_matrix(weights, op, "weights", "[T, k]");
  check_dtype(row_map, DType::I32, op, "rowMap");
  LLMK_CHECK(row_map.shape() == weights.shape(), Shape, "%s: rowMap %s and weights %s must have the same shape [T,k]",
             op, shape_str(row_map.shape()).c_str(), shape_str(weights.shape()).c_str());
  const int64_t R = y.dim(0), H = y.dim(1), T = weights.dim(0), k = weights.dim(1);
  LLMK_CHECK(R <= kInt32Max, Shape, "%s: y has more than 2^31-1 rows", op);
  LLMK_CHECK(k <= kInt32Max, Shape, "%s: weights has more than 2^31-1 columns", op);  // passed on as int
  const Device dev = y.device();
  Tensor out = Tensor::empty({T, H}, y.dtype(), dev);
  if (T == 0 || H == 0) return out;
  cpu::MoeCombineParams p;  // one struct for both backends (cpu/moe.h)
  p.dtype = y.dtype(); p.rows = R; p.hidden = H; p.tokens = T; p.k = int(k);
  if (dev.is_cpu()) {
    Tensor yi = y, w = weights, rm = row_map, o = out;
    enqueue_cpu([yi, w, rm, o, p]() mutable {
      p.y = yi.data(); p.weights = w.data_as<float>(); p.row_map = rm.data_as<int32_t>(); p.out = o.data();
      cpu::moe_combine(p);
    }, yi.nbytes() + w.nbytes() + rm.nbytes() + o.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    p.y = y.data(); p.weights = weights.data_as<float>(); p.row_map = row_map.data_as<int32_t>(); p.out = out.data();
    cuda::moe_combine(p, L.err_flag(), L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return out;
}

Tensor moe_expert_counts(const Tensor& ids, int64_t E) {
  const char* op = "moe.expertCounts";
  check_dtype(ids, DType::I32, op, "ids");
  check_experts(E, op);
  const int64_t n = ids.numel();
  // counts are int32: more than 2^31-1 ids could overflow one expert's count (CPU and CUDA alike)
  LLMK_CHECK(n <= kInt32Max, Shape, "%s: ids has %lld elements; at most 2^31-1 are supported", op, (long long)n);
  const Device dev = ids.device();
  Tensor out = Tensor::empty({E}, DType::I32, dev);
  if (dev.is_cpu()) {
    Tensor in = ids, o = out;
    const int e = int(E);
    enqueue_cpu([in, o, n, e] { cpu::moe_expert_counts(in.data_as<int32_t>(), n, e, o.data_as<int32_t>()); },
                in.nbytes() + o.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    cuda::moe_expert_counts(ids.data_as<int32_t>(), n, int(E), out.data_as<int32_t>(), L.err_flag(),
                            L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return out;
}

Tensor moe_load_balancing_loss(const Tensor& probs, const Tensor& ids, int64_t E) {
  const char* op = "moe.loadBalancingLoss";
  check_same_device(probs, ids, op);
  check_float_dtype(probs, op, "probs");
  check_matrix(probs, op, "probs", "[T, E]");
  check_ids(ids, op);
  check_experts(E, op);
  const int64_t T = probs.dim(0), k = ids.dim(1);
  LLMK_CHECK(probs.dim(1) == E, Shape, "%s: probs must be [T, %lld] (numExperts columns), got %s", op, (long long)E,
             shape_str(probs.shape()).c_str());
  LLMK_CHECK(ids.dim(0) == T, Shape, "%s: ids must have one row per token of probs (probs is %s, ids is %s)", op,
             shape_str(probs.shape()).c_str(), shape_str(ids.shape()).c_str());
  LLMK_CHECK(k >= 1 || T == 0, Shape, "%s: ids must have at least one column", op);
  const Device dev = probs.device();
  Tensor out = Tensor::empty({1}, DType::F32, dev);
  cpu::MoeLbLossParams p;  // one struct for both backends (cpu/moe.h)
  p.dtype = probs.dtype(); p.tokens = T; p.experts = int(E); p.k = int(k);
  if (dev.is_cpu()) {
    Tensor pr = probs, in = ids, o = out;
    enqueue_cpu([pr, in, o, p]() mutable {
      p.probs = pr.data(); p.ids = in.data_as<int32_t>(); p.out = o.data_as<float>();
      cpu::moe_load_balancing_loss(p);
    }, pr.nbytes() + in.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    const CudaLaunch L = cuda_launch(dev, op);
    Tensor sc = L.scratch(cuda::moe_lb_loss_scratch_bytes(T, int(E)));
    p.probs = probs.data(); p.ids = ids.data_as<int32_t>(); p.out = out.data_as<float>();
    cuda::moe_load_balancing_loss(p, sc.data(), L.err_flag(), L.stream);
#else
    throw_no_cuda(op);
#endif
  }
  return out;
}

}  // namespace llmk::ops
