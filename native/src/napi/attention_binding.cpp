// Bindings for attention (block-sparse with its layout plans, varlen, paged, the KV cache scatter): unwrap,
// call the op, wrap. Exported as native.attention.{plan, blockSparse, checkLayout, cpuIsa, varlen, paged,
// kvCache, cacheAppend}. Every contract is checked by the ops layer; here only JavaScript types.
#include <cmath>
#include <memory>
#include "common.h"
#include "../cpu/attention_core.h"
#include "../ops/attention.h"
#include "../ops/attention_serving.h"
#include "../ops/tensor_ops.h"

namespace llmk::napi {
namespace {

[[noreturn]] void throw_arg(Napi::Env env, const std::string& msg) { throw_js(env, llmk::Error(ErrCode::Arg, msg)); }

const int32_t* arg_i32(const Napi::CallbackInfo& info, size_t i, const std::string& name, int64_t* len) {
  Napi::Value v = i < info.Length() ? info[i] : info.Env().Undefined();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(info.Env(), name + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  *len = int64_t(a.ElementLength());
  return a.Data();
}

constexpr int64_t kRequired = INT64_MIN;  // get_int's `def` for a field that must be given

// An integer field of an options object: undefined/null gives `def` (kRequired: an error); `inf` (when not
// 0) is what +Infinity means. Ranges that are contracts are the ops layer's.
int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key, int64_t def, const std::string& what,
                int64_t lo = INT64_MIN, int64_t inf = 0) {
  Napi::Value v = o.Get(key);
  if ((v.IsUndefined() || v.IsNull()) && def != kRequired) return def;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (inf != 0 && d == INFINITY) return inf;
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15 || d < double(lo))
    throw_arg(env, llmk::fmt("%s must be %s, got %s", what.c_str(),
                             lo == 0 ? (inf ? "a non-negative integer or Infinity" : "a non-negative integer") : "an integer",
                             v.IsNumber() ? llmk::fmt("%.17g", d).c_str()
                             : v.IsUndefined() ? "undefined" : v.IsNull() ? "null" : "a non-number"));
  return int64_t(d);
}

// A number field (undefined/null: absent). The ops layer checks its range.
bool get_num(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what, double* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsNumber()) throw_arg(env, what + " must be a number, got a non-number");
  *out = v.As<Napi::Number>().DoubleValue();
  return true;
}

// The user's options object, read as is: { scale?, causal?, window?: { left?, right? }, softcap?, returnLse?,
// forcePath? } (booleans by JS truthiness; a window side undefined or Infinity is unbounded).
ops::AttentionOptions get_options(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Env env = info.Env();
  Napi::Value ov = i < info.Length() ? info[i] : env.Undefined();
  if (ov.IsUndefined() || ov.IsNull()) return {};
  if (!ov.IsObject() || ov.IsArray()) throw_arg(env, std::string(op) + ": options must be an object");
  Napi::Object oo = ov.As<Napi::Object>();
  const std::string p = std::string(op) + ": ";
  ops::AttentionOptions o;
  o.has_scale = get_num(env, oo, "scale", p + "scale", &o.scale);
  get_num(env, oo, "softcap", p + "softcap", &o.softcap);
  o.causal = oo.Get("causal").ToBoolean().Value();
  o.return_lse = oo.Get("returnLse").ToBoolean().Value();
  o.force_path = int(get_int(env, oo, "forcePath", -1, p + "forcePath", -1, 0));
  Napi::Value w = oo.Get("window");
  if (!w.IsUndefined()) {
    if (!w.IsObject() || w.IsArray()) throw_arg(env, p + "window must be { left, right }, got " + (w.IsNull() ? "null" : "a non-object"));
    Napi::Object wo = w.As<Napi::Object>();
    o.win_left = get_int(env, wo, "left", -1, p + "window.left", 0, -1);
    o.win_right = get_int(env, wo, "right", -1, p + "window.right", 0, -1);
  }
  return o;
}

// The layout sizes object { heads, blockQ, blockK, qLen, kLen } and its BSR arrays at arguments i, i+1, i+2.
ops::AttentionLayout get_layout(const Napi::CallbackInfo& info, size_t i, const std::string& op) {
  Napi::Env env = info.Env();
  ops::AttentionLayout L;
  L.row_ptr = arg_i32(info, i, op + ": rowPtr", &L.row_ptr_len);
  L.col_idx = arg_i32(info, i + 1, op + ": colIdx", &L.nnz);
  if (i + 2 >= info.Length() || !info[i + 2].IsObject()) throw_arg(env, op + ": layout sizes object required");
  Napi::Object lo = info[i + 2].As<Napi::Object>();
  L.heads = get_int(env, lo, "heads", 1, op + ": heads");
  L.block_q = get_int(env, lo, "blockQ", 64, op + ": blockQ");
  L.block_k = get_int(env, lo, "blockK", 64, op + ": blockK");
  L.q_len = get_int(env, lo, "qLen", 0, op + ": qLen");
  L.k_len = get_int(env, lo, "kLen", 0, op + ": kLen");
  return L;
}

// Plans are type-tagged externals: only this file makes them, and nothing else passes for one.
constexpr napi_type_tag kPlanTag = {0x6c6c6d6b61747470ULL, 0x6c616e5f76310001ULL};
using PlanRef = std::shared_ptr<const ops::AttentionPlan>;

const ops::AttentionPlan& arg_plan(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = i < info.Length() ? info[i] : info.Env().Undefined();
  if (!v.IsExternal() || !v.As<Napi::External<PlanRef>>().CheckTypeTag(&kPlanTag))
    throw_arg(info.Env(), std::string(name) + " must be a layout plan (native.attention.plan)");
  return **v.As<Napi::External<PlanRef>>().Data();
}

// plan(rowPtr, colIdx, { heads, blockQ, blockK, qLen, kLen }, deviceKind, deviceIndex, op?) -> plan
// Checks the layout once (O(nnz)) and copies it to the device; freed when the plan is garbage-collected.
Napi::Value attention_plan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = info.Length() > 5 && info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "attention.plan";
  const ops::AttentionLayout L = get_layout(info, 0, op);
  const int kind = int(arg_int(info, 3, "attention.plan: device kind", 0, 1));
  const int index = int(arg_int(info, 4, "attention.plan: device index", 0, 1 << 20));
  return guarded(env, [&]() -> Napi::Value {
    PlanRef plan = ops::plan_attention_layout(L, ops::resolve_device(kind, index), op.c_str());
    const int64_t host_bytes = plan->device.is_cpu() ? plan->row_ptr.nbytes() + plan->col_idx.nbytes() : 0;
    auto ext = Napi::External<PlanRef>::New(env, new PlanRef(std::move(plan)), [host_bytes](Napi::Env e, PlanRef* p) {
      delete p;
      if (host_bytes) Napi::MemoryManagement::AdjustExternalMemory(e, -host_bytes);
    });
    ext.TypeTag(&kPlanTag);
    if (host_bytes) Napi::MemoryManagement::AdjustExternalMemory(env, host_bytes);
    return ext;
  });
}

// blockSparse(q, k, v, plan, opts) -> [out, lse | null] (handles; shapes in native.resultInfo)
Napi::Value attention_block_sparse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "attention.blockSparse: q");
  const Tensor& k = arg_tensor(info, 1, "attention.blockSparse: k");
  const Tensor& v = arg_tensor(info, 2, "attention.blockSparse: v");
  const ops::AttentionPlan& plan = arg_plan(info, 3, "attention.blockSparse: layout");
  const ops::AttentionOptions o = get_options(info, 4, "attention.blockSparse");
  return guarded(env, [&]() -> Napi::Value {
    ops::AttentionResult r = ops::attention_block_sparse(q, k, v, plan, o);
    return wrap_results(env, {r.out, r.lse});
  });
}

// varlen(q, k, v, cuSeqlensQ, cuSeqlensK, opts) -> [out, lse | null]
Napi::Value attention_varlen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "attention.varlen: q");
  const Tensor& k = arg_tensor(info, 1, "attention.varlen: k");
  const Tensor& v = arg_tensor(info, 2, "attention.varlen: v");
  const Tensor& cq = arg_tensor(info, 3, "attention.varlen: cuSeqlensQ");
  const Tensor& ck = arg_tensor(info, 4, "attention.varlen: cuSeqlensK");
  const ops::AttentionOptions o = get_options(info, 5, "attention.varlen");
  return guarded(env, [&]() -> Napi::Value {
    ops::AttentionResult r = ops::attention_varlen(q, k, v, cq, ck, o);
    return wrap_results(env, {r.out, r.lse});
  });
}

// paged(q, keyCache, valueCache, blockTables, seqLens, cuSeqlensQ, opts) -> [out, lse | null]
Napi::Value attention_paged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "attention.paged: q");
  const Tensor& kc = arg_tensor(info, 1, "attention.paged: keyCache");
  const Tensor& vc = arg_tensor(info, 2, "attention.paged: valueCache");
  const Tensor& bt = arg_tensor(info, 3, "attention.paged: blockTables");
  const Tensor& sl = arg_tensor(info, 4, "attention.paged: seqLens");
  const Tensor& cq = arg_tensor(info, 5, "attention.paged: cuSeqlensQ");
  const ops::AttentionOptions o = get_options(info, 6, "attention.paged");
  return guarded(env, [&]() -> Napi::Value {
    ops::AttentionResult r = ops::attention_paged(q, kc, vc, bt, sl, cq, o);
    return wrap_results(env, {r.out, r.lse});
  });
}

// cacheAppend(keyCache, valueCache, k, v, slotMapping) -> undefined
Napi::Value attention_cache_append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& kc = arg_tensor(info, 0, "KvCache.append: keyCache");
  const Tensor& vc = arg_tensor(info, 1, "KvCache.append: valueCache");
  const Tensor& k = arg_tensor(info, 2, "KvCache.append: k");
  const Tensor& v = arg_tensor(info, 3, "KvCache.append: v");
  const Tensor& sm = arg_tensor(info, 4, "KvCache.append: slotMapping");
  return guarded(env, [&]() -> Napi::Value {
    ops::attention_cache_append(kc, vc, k, v, sm);
    return env.Undefined();
  });
}

// kvCache({ numPages, pageSize, kvHeads, headDim }, dtype id, deviceKind, deviceIndex) -> [key, value] results
Napi::Value attention_kv_cache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw_arg(env, "attention.KvCache: options object required");
  Napi::Object o = info[0].As<Napi::Object>();
  const int64_t pages = get_int(env, o, "numPages", kRequired, "attention.KvCache: numPages");
  const int64_t page = get_int(env, o, "pageSize", kRequired, "attention.KvCache: pageSize");
  const int64_t heads = get_int(env, o, "kvHeads", kRequired, "attention.KvCache: kvHeads");
  const int64_t dim = get_int(env, o, "headDim", kRequired, "attention.KvCache: headDim");
  const DType dtype = arg_dtype(info, 1);
  const int kind = int(arg_int(info, 2, "attention.KvCache: device kind", 0, 1));
  const int index = int(arg_int(info, 3, "attention.KvCache: device index", 0, 1 << 20));
  return guarded(env, [&]() -> Napi::Value {
    auto kv = ops::attention_kv_cache(pages, page, heads, dim, dtype, ops::resolve_device(kind, index));
    return wrap_results(env, {kv.first, kv.second});
  });
}

// checkLayout(rowPtr, colIdx, { heads, blockQ, blockK, qLen, kLen }, op?) -> max blocks per row
Napi::Value attention_check_layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "attention.checkLayout";
  const ops::AttentionLayout L = get_layout(info, 0, op);
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, double(ops::check_attention_layout(L, op.c_str()))); });
}

// cpuIsa() -> the CPU attention tile kernel in use ("avx512", "avx2" or "generic")
Napi::Value attention_cpu_isa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cpu::attention_core_isa());
}

}  // namespace

void init_attention_binding(Napi::Env env, Napi::Object exports) {
  Napi::Object a = Napi::Object::New(env);
  a.Set("plan", Napi::Function::New(env, attention_plan));
  a.Set("blockSparse", Napi::Function::New(env, attention_block_sparse));
  a.Set("checkLayout", Napi::Function::New(env, attention_check_layout));
  a.Set("cpuIsa", Napi::Function::New(env, attention_cpu_isa));
  a.Set("varlen", Napi::Function::New(env, attention_varlen));
  a.Set("paged", Napi::Function::New(env, attention_paged));
  a.Set("kvCache", Napi::Function::New(env, attention_kv_cache));
  a.Set("cacheAppend", Napi::Function::New(env, attention_cache_append));
  exports.Set("attention", a);
}

}  // namespace llmk::napi
