// Bindings for attention (block-sparse, varlen, paged, the KV cache scatter): unwrap, call the op, wrap.
#include <cmath>
#include "common.h"
#include "../cpu/attention_core.h"
#include "../ops/attention.h"
#include "../ops/attention_serving.h"

namespace llmk::napi {
namespace {

const int32_t* arg_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t* len) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_js(env, llmk::Error(ErrCode::Arg, std::string("attention.blockSparse: layout ") + name + " must be an Int32Array"));
  Napi::Int32Array a = info[i].As<Napi::Int32Array>();
  *len = int64_t(a.ElementLength());
  return a.Data();
}

int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key, int64_t def, const char* op = "attention.blockSparse") {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": " + key + " must be a number"));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15)
    throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": " + key + " must be an integer"));
  return int64_t(d);
}

// { scale?, causal, windowLeft, windowRight, softcap, returnLse, forcePath } (argument i)
ops::AttentionOptions get_options(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Env env = info.Env();
  if (!info[i].IsObject()) throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": options object required"));
  Napi::Object oo = info[i].As<Napi::Object>();
  ops::AttentionOptions o;
  Napi::Value sc = oo.Get("scale");
  if (!sc.IsUndefined() && !sc.IsNull()) {
    if (!sc.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": scale must be a number"));
    o.has_scale = true;
    o.scale = sc.As<Napi::Number>().DoubleValue();
  }
  o.causal = oo.Get("causal").ToBoolean().Value();
  o.win_left = get_int(env, oo, "windowLeft", -1, op);
  o.win_right = get_int(env, oo, "windowRight", -1, op);
  Napi::Value cap = oo.Get("softcap");
  if (!cap.IsUndefined() && !cap.IsNull()) {
    if (!cap.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, std::string(op) + ": softcap must be a number"));
    o.softcap = cap.As<Napi::Number>().DoubleValue();
  }
  o.return_lse = oo.Get("returnLse").ToBoolean().Value();
  o.force_path = int(get_int(env, oo, "forcePath", -1, op));
  return o;
}

Napi::Value wrap_result(Napi::Env env, const ops::AttentionResult& r) {
  Napi::Array res = Napi::Array::New(env, 2);
  res.Set(uint32_t(0), wrap_tensor(env, r.out));
  if (r.lse.defined()) res.Set(uint32_t(1), wrap_tensor(env, r.lse));
  else res.Set(uint32_t(1), env.Null());
  return res;
}

// attentionBlockSparse(q, k, v, rowPtr: Int32Array, colIdx: Int32Array,
//   layout: { heads, blockQ, blockK, qLen, kLen },
//   opts: { scale?, causal, windowLeft, windowRight, softcap, returnLse, forcePath }) -> [out, lse | null]
Napi::Value attention_block_sparse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "q");
  const Tensor& k = arg_tensor(info, 1, "k");
  const Tensor& v = arg_tensor(info, 2, "v");
  ops::AttentionLayout L;
  L.row_ptr = arg_i32(info, 3, "rowPtr", &L.row_ptr_len);
  L.col_idx = arg_i32(info, 4, "colIdx", &L.nnz);
  if (!info[5].IsObject()) throw_js(env, llmk::Error(ErrCode::Arg, "attention.blockSparse: layout object required"));
  Napi::Object lo = info[5].As<Napi::Object>();
  L.heads = get_int(env, lo, "heads", 1);
  L.block_q = get_int(env, lo, "blockQ", 64);
  L.block_k = get_int(env, lo, "blockK", 64);
  L.q_len = get_int(env, lo, "qLen", 0);
  L.k_len = get_int(env, lo, "kLen", 0);
  const ops::AttentionOptions o = get_options(info, 6, "attention.blockSparse");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::attention_block_sparse(q, k, v, L, o)); });
}

// attentionVarlen(q, k, v, cuSeqlensQ, cuSeqlensK, opts) -> [out, lse | null]
Napi::Value attention_varlen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "q");
  const Tensor& k = arg_tensor(info, 1, "k");
  const Tensor& v = arg_tensor(info, 2, "v");
  const Tensor& cq = arg_tensor(info, 3, "cuSeqlensQ");
  const Tensor& ck = arg_tensor(info, 4, "cuSeqlensK");
  const ops::AttentionOptions o = get_options(info, 5, "attention.varlen");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::attention_varlen(q, k, v, cq, ck, o)); });
}

// attentionPaged(q, keyCache, valueCache, blockTables, seqLens, cuSeqlensQ, opts) -> [out, lse | null]
Napi::Value attention_paged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& q = arg_tensor(info, 0, "q");
  const Tensor& kc = arg_tensor(info, 1, "keyCache");
  const Tensor& vc = arg_tensor(info, 2, "valueCache");
  const Tensor& bt = arg_tensor(info, 3, "blockTables");
  const Tensor& sl = arg_tensor(info, 4, "seqLens");
  const Tensor& cq = arg_tensor(info, 5, "cuSeqlensQ");
  const ops::AttentionOptions o = get_options(info, 6, "attention.paged");
  return guarded(env, [&]() -> Napi::Value { return wrap_result(env, ops::attention_paged(q, kc, vc, bt, sl, cq, o)); });
}

// attentionCacheAppend(keyCache, valueCache, k, v, slotMapping) -> undefined
Napi::Value attention_cache_append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& kc = arg_tensor(info, 0, "keyCache");
  const Tensor& vc = arg_tensor(info, 1, "valueCache");
  const Tensor& k = arg_tensor(info, 2, "k");
  const Tensor& v = arg_tensor(info, 3, "v");
  const Tensor& sm = arg_tensor(info, 4, "slotMapping");
  return guarded(env, [&]() -> Napi::Value {
    ops::attention_cache_append(kc, vc, k, v, sm);
    return env.Undefined();
  });
}

// attentionCheckLayout(rowPtr, colIdx, { heads, blockQ, blockK, qLen, kLen }) -> max blocks per row
Napi::Value attention_check_layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ops::AttentionLayout L;
  L.row_ptr = arg_i32(info, 0, "rowPtr", &L.row_ptr_len);
  L.col_idx = arg_i32(info, 1, "colIdx", &L.nnz);
  if (!info[2].IsObject()) throw_js(env, llmk::Error(ErrCode::Arg, "attention.checkLayout: layout object required"));
  Napi::Object lo = info[2].As<Napi::Object>();
  L.heads = get_int(env, lo, "heads", 1);
  L.block_q = get_int(env, lo, "blockQ", 64);
  L.block_k = get_int(env, lo, "blockK", 64);
  L.q_len = get_int(env, lo, "qLen", 0);
  L.k_len = get_int(env, lo, "kLen", 0);
  return guarded(env, [&]() -> Napi::Value {
    return Napi::Number::New(env, double(ops::check_attention_layout(L, "attention.checkLayout")));
  });
}

// attentionCpuIsa() -> the CPU attention tile kernel in use ("avx512", "avx2" or "generic")
Napi::Value attention_cpu_isa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cpu::attention_core_isa());
}

}  // namespace

void init_attention_binding(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionBlockSparse", Napi::Function::New(env, attention_block_sparse));
  exports.Set("attentionCheckLayout", Napi::Function::New(env, attention_check_layout));
  exports.Set("attentionCpuIsa", Napi::Function::New(env, attention_cpu_isa));
  exports.Set("attentionVarlen", Napi::Function::New(env, attention_varlen));
  exports.Set("attentionPaged", Napi::Function::New(env, attention_paged));
  exports.Set("attentionCacheAppend", Napi::Function::New(env, attention_cache_append));
}

}  // namespace llmk::napi
