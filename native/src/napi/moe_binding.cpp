// Bindings for MoE routing: unwrap, call ops::moe_*, wrap. Arguments are positional; ts/moe.ts
// checks and documents them (the ops layer checks them again).
#include <cmath>
#include "common.h"
#include "../ops/moe.h"
#include "../ops/moe_experts.h"

namespace llmk::napi {
namespace {

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Env env = info.Env();
  if (!info[i].IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": " + name + " must be a number"));
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15)
    throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": " + name + " must be an integer"));
  return int64_t(d);
}

double arg_num(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (!info[i].IsNumber())
    throw_js(info.Env(), llmk::Error(ErrCode::Arg, std::string(op) + ": " + name + " must be a number"));
  return info[i].As<Napi::Number>().DoubleValue();
}

Napi::Array pack(Napi::Env env, std::initializer_list<Tensor> ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  uint32_t i = 0;
  for (const Tensor& t : ts) a.Set(i++, wrap_tensor(env, t));
  return a;
}

// moeTopk(logits, k, sigmoid, renormalize, bias | null, groups, groupTopk, scale) -> [weights, ids]
Napi::Value moe_topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "moe.topk";
  const Tensor& logits = arg_tensor(info, 0, "logits");
  ops::MoeTopkOptions o;
  o.k = arg_int(info, 1, op, "k");
  o.sigmoid = info[2].ToBoolean().Value();
  o.renormalize = info[3].ToBoolean().Value();
  if (!info[4].IsNull() && !info[4].IsUndefined()) o.bias = arg_tensor(info, 4, "bias");
  o.groups = arg_int(info, 5, op, "groups.count");
  o.group_topk = arg_int(info, 6, op, "groups.topk");
  o.scale = arg_num(info, 7, op, "scale");
  return guarded(env, [&]() -> Napi::Value {
    ops::MoeTopkResult r = ops::moe_topk(logits, o);
    return pack(env, {r.weights, r.ids});
  });
}

// moeAlign(ids, numExperts, blockSize) -> [sortedIds, blockExperts, numPadded]
Napi::Value moe_align(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& ids = arg_tensor(info, 0, "ids");
  const int64_t E = arg_int(info, 1, "moe.align", "numExperts");
  const int64_t bs = arg_int(info, 2, "moe.align", "blockSize");
  return guarded(env, [&]() -> Napi::Value {
    ops::MoeAlignResult r = ops::moe_align(ids, E, bs);
    return pack(env, {r.sorted_ids, r.block_experts, r.num_padded});
  });
}

// moePermute(x, ids, numExperts) -> [out, rowMap, expertOffsets]
Napi::Value moe_permute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& x = arg_tensor(info, 0, "x");
  const Tensor& ids = arg_tensor(info, 1, "ids");
  const int64_t E = arg_int(info, 2, "moe.permute", "numExperts");
  return guarded(env, [&]() -> Napi::Value {
    ops::MoePermuteResult r = ops::moe_permute(x, ids, E);
    return pack(env, {r.out, r.row_map, r.expert_offsets});
  });
}

// moeCombine(y, weights, rowMap) -> out
Napi::Value moe_combine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& y = arg_tensor(info, 0, "y");
  const Tensor& w = arg_tensor(info, 1, "weights");
  const Tensor& rm = arg_tensor(info, 2, "rowMap");
  return guarded(env, [&]() -> Napi::Value { return wrap_tensor(env, ops::moe_combine(y, w, rm)); });
}

// moeExpertCounts(ids, numExperts) -> counts
Napi::Value moe_expert_counts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& ids = arg_tensor(info, 0, "ids");
  const int64_t E = arg_int(info, 1, "moe.expertCounts", "numExperts");
  return guarded(env, [&]() -> Napi::Value { return wrap_tensor(env, ops::moe_expert_counts(ids, E)); });
}

// moeLoadBalancingLoss(probs, ids, numExperts) -> [1] float32
Napi::Value moe_lb_loss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& probs = arg_tensor(info, 0, "probs");
  const Tensor& ids = arg_tensor(info, 1, "ids");
  const int64_t E = arg_int(info, 2, "moe.loadBalancingLoss", "numExperts");
  return guarded(env, [&]() -> Napi::Value { return wrap_tensor(env, ops::moe_load_balancing_loss(probs, ids, E)); });
}

// Optional tensor argument: null / undefined = none.
Tensor opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsNull() || info[i].IsUndefined()) return Tensor();
  return arg_tensor(info, i, name);
}

// A projection from 10 positional arguments at `at`: dense, q, scales, zeros, bias, experts, rows, cols,
// group, prepared (dense or q is null).
ops::ExpertProj arg_proj(const Napi::CallbackInfo& info, size_t at, const char* name) {
  ops::ExpertProj p;
  p.dense = opt_tensor(info, at, name);
  p.q = opt_tensor(info, at + 1, "qweight");
  p.scales = opt_tensor(info, at + 2, "scales");
  p.zeros = opt_tensor(info, at + 3, "zeros");
  p.bias = opt_tensor(info, at + 4, "bias");
  p.experts = arg_int(info, at + 5, "moe.experts", "experts");
  p.rows = arg_int(info, at + 6, "moe.experts", "rows");
  p.cols = arg_int(info, at + 7, "moe.experts", "cols");
  p.group = arg_int(info, at + 8, "moe.experts", "groupSize");
  p.prepared = info[at + 9].ToBoolean().Value();
  if (!p.dense.defined() && (!p.q.defined() || !p.scales.defined()))
    throw_js(info.Env(), llmk::Error(ErrCode::Arg, std::string("moe.experts: ") + name + " must be a tensor or an Int4Weight"));
  return p;
}

// moeExperts(x, weights, ids, expertMap | null, activation, interleaved, gateUp (10 args), down (10 args)) -> y
Napi::Value moe_experts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& x = arg_tensor(info, 0, "x");
  const Tensor& w = arg_tensor(info, 1, "weights");
  const Tensor& ids = arg_tensor(info, 2, "ids");
  ops::MoeExpertsOptions o;
  o.expert_map = opt_tensor(info, 3, "expertMap");
  o.activation = int(arg_int(info, 4, "moe.experts", "activation"));
  o.interleaved = info[5].ToBoolean().Value();
  const ops::ExpertProj gu = arg_proj(info, 6, "gateUp"), dn = arg_proj(info, 16, "down");
  return guarded(env, [&]() -> Napi::Value { return wrap_tensor(env, ops::moe_experts(x, w, ids, gu, dn, o)); });
}

// moeStackRows(handles[]) -> tensor: the tensors concatenated along dim 0.
Napi::Value moe_stack_rows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Tensor> parts;
  for (size_t i = 0; i < info.Length(); i++) parts.push_back(arg_tensor(info, i, "tensor"));
  return guarded(env, [&]() -> Napi::Value { return wrap_tensor(env, ops::moe_stack_rows(parts)); });
}

}  // namespace

void init_moe_binding(Napi::Env env, Napi::Object exports) {
  exports.Set("moeTopk", Napi::Function::New(env, moe_topk));
  exports.Set("moeAlign", Napi::Function::New(env, moe_align));
  exports.Set("moePermute", Napi::Function::New(env, moe_permute));
  exports.Set("moeCombine", Napi::Function::New(env, moe_combine));
  exports.Set("moeExpertCounts", Napi::Function::New(env, moe_expert_counts));
  exports.Set("moeLoadBalancingLoss", Napi::Function::New(env, moe_lb_loss));
  exports.Set("moeExperts", Napi::Function::New(env, moe_experts));
  exports.Set("moeStackRows", Napi::Function::New(env, moe_stack_rows));
}

}  // namespace llmk::napi
