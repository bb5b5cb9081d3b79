// Bindings for quant (ops/int4.h): unwrap tensors and numbers, call the op, wrap the results.
#include <string>
#include "common.h"
#include "../ops/int4.h"

namespace llmk::napi {
namespace {

int64_t num_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw_js(info.Env(), llmk::Error(ErrCode::Arg, std::string("quant: ") + name + " must be a number"));
  return info[i].As<Napi::Number>().Int64Value();
}

llmk::Tensor opt_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return llmk::Tensor();
  return arg_tensor(info, i, name);
}

// Wraps the parts; a part that shares storage with an input (nothing to convert) does not own memory
// in the V8 accounting.
Napi::Array wrap_parts(Napi::Env env, const ops::Int4Parts& p, const llmk::Tensor& q, const llmk::Tensor& s,
                       const llmk::Tensor& z) {
  auto fresh = [](const llmk::Tensor& out, const llmk::Tensor& in) {
    return !in.defined() || out.storage() != in.storage();
  };
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, wrap_tensor(env, p.qweight, fresh(p.qweight, q)));
  a.Set(1u, wrap_tensor(env, p.scales, fresh(p.scales, s)));
  a.Set(2u, p.zeros.defined() ? Napi::Value(wrap_tensor(env, p.zeros, fresh(p.zeros, z))) : env.Null());
  return a;
}

// quantize(w, group, symmetric, scaleDtypeId) -> [qweight, scales, zeros | null]
Napi::Value quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor w = arg_tensor(info, 0, "w");
  const int64_t group = num_arg(info, 1, "groupSize");
  const bool sym = info[2].ToBoolean();
  const DType sdt = arg_dtype(info, 3);
  return guarded(env, [&] { return wrap_parts(env, ops::int4_quantize(w, group, sym, sdt), {}, {}, {}); });
}

// dequantize(qweight, scales, zeros?, n, k, group, outDtypeId) -> tensor
Napi::Value dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor q = arg_tensor(info, 0, "qweight"), s = arg_tensor(info, 1, "scales"), z = opt_arg(info, 2, "zeros");
  const int64_t n = num_arg(info, 3, "n"), k = num_arg(info, 4, "k"), g = num_arg(info, 5, "groupSize");
  const DType odt = arg_dtype(info, 6);
  return guarded(env, [&] { return Napi::Value(wrap_tensor(env, ops::int4_dequantize(q, s, z, n, k, g, odt))); });
}

// prepare(qweight, scales, zeros?, n, k, group, deviceKind, deviceIndex) -> [qweight, scales, zeros | null]
Napi::Value prepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor q = arg_tensor(info, 0, "qweight"), s = arg_tensor(info, 1, "scales"), z = opt_arg(info, 2, "zeros");
  const int64_t n = num_arg(info, 3, "n"), k = num_arg(info, 4, "k"), g = num_arg(info, 5, "groupSize");
  llmk::Device dev = arg_device(info, 6);
  return guarded(env, [&] { return Napi::Value(wrap_parts(env, ops::int4_prepare(q, s, z, n, k, g, dev), q, s, z)); });
}

// toCanonical(qweight, scales, zeros?, n, k, group) -> [qweight, scales, zeros | null]
Napi::Value to_canonical(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor q = arg_tensor(info, 0, "qweight"), s = arg_tensor(info, 1, "scales"), z = opt_arg(info, 2, "zeros");
  const int64_t n = num_arg(info, 3, "n"), k = num_arg(info, 4, "k"), g = num_arg(info, 5, "groupSize");
  return guarded(env, [&] { return Napi::Value(wrap_parts(env, ops::int4_to_canonical(q, s, z, n, k, g), q, s, z)); });
}

// matmul(x, qweight, scales, zeros?, perm?, bias?, n, k, group, prepared, int8) -> y
Napi::Value matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor x = arg_tensor(info, 0, "x"), q = arg_tensor(info, 1, "qweight"), s = arg_tensor(info, 2, "scales");
  llmk::Tensor z = opt_arg(info, 3, "zeros"), perm = opt_arg(info, 4, "perm"), bias = opt_arg(info, 5, "bias");
  const int64_t n = num_arg(info, 6, "n"), k = num_arg(info, 7, "k"), g = num_arg(info, 8, "groupSize");
  const bool prepared = info[9].ToBoolean(), int8 = info[10].ToBoolean();
  return guarded(env, [&] {
    return Napi::Value(wrap_tensor(env, ops::int4_matmul(x, q, s, z, perm, bias, n, k, g, prepared, int8)));
  });
}

// permuteColumns(x, perm) -> x[:, perm]
Napi::Value permute_columns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor x = arg_tensor(info, 0, "x"), perm = arg_tensor(info, 1, "perm");
  return guarded(env, [&] { return Napi::Value(wrap_tensor(env, ops::int4_permute_cols(x, perm))); });
}

// matmulPath(x, n, k, prepared, actOrder) -> string
Napi::Value matmul_path(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Tensor x = arg_tensor(info, 0, "x");
  const int64_t n = num_arg(info, 1, "n"), k = num_arg(info, 2, "k");
  const bool prepared = info[3].ToBoolean(), act_order = info[4].ToBoolean();
  return guarded(env, [&] {
    return Napi::Value(Napi::String::New(env, ops::int4_matmul_path(x, n, k, prepared, act_order)));
  });
}

}  // namespace

void init_int4_binding(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("quantize", Napi::Function::New(env, quantize));
  o.Set("dequantize", Napi::Function::New(env, dequantize));
  o.Set("prepare", Napi::Function::New(env, prepare));
  o.Set("toCanonical", Napi::Function::New(env, to_canonical));
  o.Set("matmul", Napi::Function::New(env, matmul));
  o.Set("permuteColumns", Napi::Function::New(env, permute_columns));
  o.Set("matmulPath", Napi::Function::New(env, matmul_path));
  exports.Set("int4", o);
}

}  // namespace llmk::napi
