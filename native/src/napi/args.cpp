// The argument vocabulary of the bindings (see common.h).
#include <cmath>
#include <cstdlib>
#include <string>
#include "common.h"

namespace llmk::napi {

namespace {

[[noreturn]] void throw_arg(const Napi::CallbackInfo& info, const std::string& msg) {
  throw_js(info.Env(), llmk::Error(ErrCode::Arg, msg));
}

// A short description of a JS value for messages: numbers print as numbers, others by type.
std::string describe(const Napi::Value& v) {
  if (v.IsNumber()) {  // shortest of %.15g / %.17g that reads back as the same number
    const double d = v.As<Napi::Number>().DoubleValue();
    std::string s = llmk::fmt("%.15g", d);
    return std::strtod(s.c_str(), nullptr) == d || std::isnan(d) ? s : llmk::fmt("%.17g", d);
  }
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

Napi::Value arg_at(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

}  // namespace

llmk::Tensor arg_opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = arg_at(info, i);
  if (v.IsUndefined() || v.IsNull()) return llmk::Tensor();
  return arg_tensor(info, i, name);
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = arg_at(info, i);
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  // Compared as doubles first: int64 limits are not exact doubles, and a cast of an out-of-range
  // double is undefined behaviour.
  if (!(d == std::floor(d)) || d < double(lo) || d > double(hi) || int64_t(d) < lo || int64_t(d) > hi)
    throw_arg(info, llmk::fmt("%s must be an integer in [%lld, %lld], got %s", name, lo, hi, describe(v)));
  return int64_t(d);
}

double arg_num(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = arg_at(info, i);
  if (!v.IsNumber()) throw_arg(info, llmk::fmt("%s must be a number, got %s", name, describe(v)));
  return v.As<Napi::Number>().DoubleValue();
}

std::string arg_bytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = arg_at(info, i);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_arg(info, llmk::fmt("%s must be a Uint8Array, got %s", name, describe(v)));
  auto a = v.As<Napi::Uint8Array>();
  return std::string(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
}

Napi::Value wrap_result(Napi::Env env, llmk::Tensor t, size_t slot) {
  if (!t.defined()) return env.Null();
  const llmk::Shape& shape = t.shape();
  if (slot >= kResultSlots || shape.size() > kResultMaxDims)
    throw llmk::Error(ErrCode::Internal, llmk::fmt("wrap_result: slot %zu / rank %zu out of range", slot, shape.size()));
  double* info = env_data(env).result_slots + slot * kResultStride;
  info[0] = double(int(t.dtype()));
  info[1] = double(shape.size());
  for (size_t k = 0; k < shape.size(); k++) info[2 + k] = double(shape[k]);
  return wrap_tensor(env, std::move(t));
}

Napi::Array wrap_results(Napi::Env env, std::initializer_list<llmk::Tensor> ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  uint32_t k = 0;
  for (const llmk::Tensor& t : ts) { a.Set(k, wrap_result(env, t, k)); k++; }
  return a;
}

void init_result_info(Napi::Env env, Napi::Object exports) {
  Napi::Float64Array buf = Napi::Float64Array::New(env, kResultSlots * kResultStride);
  env_data(env).result_slots = buf.Data();
  env_data(env).result_info = Napi::Persistent(buf);
  exports.Set("resultInfo", buf);
}

}  // namespace llmk::napi
