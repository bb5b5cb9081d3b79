// Bindings for block-sparse attention: unwrap, call ops::attention_block_sparse, wrap.
#include <cmath>
#include "common.h"
#include "../cpu/attention_core.h"
#include "../ops/attention.h"

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

int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key, int64_t def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, std::string("attention.blockSparse: ") + key + " must be a number"));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15)
    throw_js(env, llmk::Error(ErrCode::Arg, std::string("attention.blockSparse: ") + key + " must be an integer"));
  return int64_t(d);
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
  if (!info[5].IsObject() || !info[6].IsObject())
    throw_js(env, llmk::Error(ErrCode::Arg, "attention.blockSparse: layout and options objects required"));
  Napi::Object lo = info[5].As<Napi::Object>(), oo = info[6].As<Napi::Object>();
  L.heads = get_int(env, lo, "heads", 1);
  L.block_q = get_int(env, lo, "blockQ", 64);
  L.block_k = get_int(env, lo, "blockK", 64);
  L.q_len = get_int(env, lo, "qLen", 0);
  L.k_len = get_int(env, lo, "kLen", 0);
  ops::AttentionOptions o;
  Napi::Value sc = oo.Get("scale");
  if (!sc.IsUndefined() && !sc.IsNull()) {
    if (!sc.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, "attention.blockSparse: scale must be a number"));
    o.has_scale = true;
    o.scale = sc.As<Napi::Number>().DoubleValue();
  }
  o.causal = oo.Get("causal").ToBoolean().Value();
  o.win_left = get_int(env, oo, "windowLeft", -1);
  o.win_right = get_int(env, oo, "windowRight", -1);
  Napi::Value cap = oo.Get("softcap");
  if (!cap.IsUndefined() && !cap.IsNull()) {
    if (!cap.IsNumber()) throw_js(env, llmk::Error(ErrCode::Arg, "attention.blockSparse: softcap must be a number"));
    o.softcap = cap.As<Napi::Number>().DoubleValue();
  }
  o.return_lse = oo.Get("returnLse").ToBoolean().Value();
  o.force_path = int(get_int(env, oo, "forcePath", -1));
  return guarded(env, [&]() -> Napi::Value {
    ops::AttentionResult r = ops::attention_block_sparse(q, k, v, L, o);
    Napi::Array res = Napi::Array::New(env, 2);
    res.Set(uint32_t(0), wrap_tensor(env, r.out));
    if (r.lse.defined()) res.Set(uint32_t(1), wrap_tensor(env, r.lse));
    else res.Set(uint32_t(1), env.Null());
    return res;
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
}

}  // namespace llmk::napi
