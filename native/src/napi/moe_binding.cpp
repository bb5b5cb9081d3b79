// Bindings for MoE routing and the expert layer (`native.moe.*`): read the positional arguments with the
// vocabulary of common.h, call ops::moe_*, return results with wrap_result(s) (handles; dtype and shape in
// native.resultInfo). Every tensor contract (dtypes, shapes, ranges that depend on shapes) is checked once,
// by the ops layer; ts/moe.ts checks only what is JavaScript (types, enums, option names).
#include <cstdint>
#include "common.h"
#include "../cpu/moe.h"
#include "../ops/moe.h"
#include "../ops/moe_experts.h"

namespace llmk::napi {
namespace {

// Integers whose valid range depends on tensor shapes (k, groups) are read in the widest range the kernels
// allow; the op narrows it and names the shape (e.g. "k must be in [1, E=64]").
constexpr int64_t kMaxE = cpu::kMoeMaxExperts;
// Int4Weight metadata (validated when the weight was built): any non-negative safe integer.
constexpr int64_t kMeta = int64_t(1) << 53;

int64_t arg_experts(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return arg_int(info, i, name, 1, kMaxE);
}

// topk(logits, k, sigmoid, renormalize, bias | null, groups.count | null, groups.topk, scale) -> [weights, ids]
Napi::Value topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& logits = arg_tensor(info, 0, "moe.topk: logits");
  ops::MoeTopkOptions o;
  o.k = arg_int(info, 1, "moe.topk: k", 1, kMaxE);
  o.sigmoid = info[2].ToBoolean().Value();
  o.renormalize = info[3].ToBoolean().Value();
  o.bias = arg_opt_tensor(info, 4, "moe.topk: bias");
  if (!info[5].IsNull()) {  // null: no grouped routing
    o.groups = arg_int(info, 5, "moe.topk: groups.count", 1, kMaxE);
    o.group_topk = arg_int(info, 6, "moe.topk: groups.topk", 1, kMaxE);
  }
  o.scale = arg_num(info, 7, "moe.topk: scale");
  return guarded(env, [&]() -> Napi::Value {
    ops::MoeTopkResult r = ops::moe_topk(logits, o);
    return wrap_results(env, {r.weights, r.ids});
  });
}

// align(ids, numExperts, blockSize) -> [sortedIds, blockExperts, numPadded]
Napi::Value align(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& ids = arg_tensor(info, 0, "moe.align: ids");
  const int64_t E = arg_experts(info, 1, "moe.align: numExperts");
  const int64_t bs = arg_int(info, 2, "moe.align: blockSize", 1, cpu::kMoeMaxBlockSize);
  return guarded(env, [&]() -> Napi::Value {
    ops::MoeAlignResult r = ops::moe_align(ids, E, bs);
    return wrap_results(env, {r.sorted_ids, r.block_experts, r.num_padded});
  });
}

// permute(x, ids, numExperts) -> [out, rowMap, expertOffsets]
Napi::Value permute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& x = arg_tensor(info, 0, "moe.permute: x");
  const Tensor& ids = arg_tensor(info, 1, "moe.permute: ids");
  const int64_t E = arg_experts(info, 2, "moe.permute: numExperts");
  return guarded(env, [&]() -> Napi::Value {
    ops::MoePermuteResult r = ops::moe_permute(x, ids, E);
    return wrap_results(env, {r.out, r.row_map, r.expert_offsets});
  });
}

// combine(y, weights, rowMap) -> out
Napi::Value combine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& y = arg_tensor(info, 0, "moe.combine: y");
  const Tensor& w = arg_tensor(info, 1, "moe.combine: weights");
  const Tensor& rm = arg_tensor(info, 2, "moe.combine: rowMap");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::moe_combine(y, w, rm)); });
}

// expertCounts(ids, numExperts) -> counts
Napi::Value expert_counts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& ids = arg_tensor(info, 0, "moe.expertCounts: ids");
  const int64_t E = arg_experts(info, 1, "moe.expertCounts: numExperts");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::moe_expert_counts(ids, E)); });
}

// loadBalancingLoss(probs, ids, numExperts) -> [1] float32
Napi::Value lb_loss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& probs = arg_tensor(info, 0, "moe.loadBalancingLoss: probs");
  const Tensor& ids = arg_tensor(info, 1, "moe.loadBalancingLoss: ids");
  const int64_t E = arg_experts(info, 2, "moe.loadBalancingLoss: numExperts");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::moe_load_balancing_loss(probs, ids, E)); });
}

// A projection from 10 positional arguments at `at`: dense, q, scales, zeros, bias, experts, rows, cols,
// group, prepared (dense, or q and scales, are null). `names` holds "moe.experts: <proj>..." labels.
struct ProjNames { const char *dense, *q, *scales, *zeros, *bias; };
ops::ExpertProj arg_proj(const Napi::CallbackInfo& info, size_t at, const ProjNames& n) {
  ops::ExpertProj p;
  p.dense = arg_opt_tensor(info, at, n.dense);
  p.q = arg_opt_tensor(info, at + 1, n.q);
  p.scales = arg_opt_tensor(info, at + 2, n.scales);
  p.zeros = arg_opt_tensor(info, at + 3, n.zeros);
  p.bias = arg_opt_tensor(info, at + 4, n.bias);
  p.experts = arg_int(info, at + 5, "moe.experts: Int4Weight.experts", 0, kMeta);
  p.rows = arg_int(info, at + 6, "moe.experts: Int4Weight.n", 0, kMeta);
  p.cols = arg_int(info, at + 7, "moe.experts: Int4Weight.k", 0, kMeta);
  p.group = arg_int(info, at + 8, "moe.experts: Int4Weight.groupSize", 0, kMeta);
  p.prepared = info[at + 9].ToBoolean().Value();
  return p;
}

// experts(x, weights, ids, expertMap | null, activation, interleaved, gateUp (10 args), down (10 args)) -> y
Napi::Value experts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& x = arg_tensor(info, 0, "moe.experts: x");
  const Tensor& w = arg_tensor(info, 1, "moe.experts: routing.weights");
  const Tensor& ids = arg_tensor(info, 2, "moe.experts: routing.ids");
  ops::MoeExpertsOptions o;
  o.expert_map = arg_opt_tensor(info, 3, "moe.experts: expertMap");
  o.activation = int(arg_int(info, 4, "moe.experts: activation", 0, INT32_MAX));
  o.interleaved = info[5].ToBoolean().Value();
  const ops::ExpertProj gu = arg_proj(info, 6, {"moe.experts: gateUp", "moe.experts: gateUp.qweight",
      "moe.experts: gateUp.scales", "moe.experts: gateUp.zeros", "moe.experts: gateUpBias"});
  const ops::ExpertProj dn = arg_proj(info, 16, {"moe.experts: down", "moe.experts: down.qweight",
      "moe.experts: down.scales", "moe.experts: down.zeros", "moe.experts: downBias"});
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::moe_experts(x, w, ids, gu, dn, o)); });
}

// stackRows(...tensors) -> tensor: the tensors concatenated along dim 0 (quant.stackExperts).
Napi::Value stack_rows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Tensor> parts;
  for (size_t i = 0; i < info.Length(); i++) parts.push_back(arg_tensor(info, i, "quant.stackExperts: tensor"));
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::moe_stack_rows(parts)); });
}

}  // namespace

void init_moe_binding(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("topk", Napi::Function::New(env, topk));
  o.Set("align", Napi::Function::New(env, align));
  o.Set("permute", Napi::Function::New(env, permute));
  o.Set("combine", Napi::Function::New(env, combine));
  o.Set("expertCounts", Napi::Function::New(env, expert_counts));
  o.Set("loadBalancingLoss", Napi::Function::New(env, lb_loss));
  o.Set("experts", Napi::Function::New(env, experts));
  o.Set("stackRows", Napi::Function::New(env, stack_rows));
  exports.Set("moe", o);
}

}  // namespace llmk::napi
