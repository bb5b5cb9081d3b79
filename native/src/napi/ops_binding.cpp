// Bindings for the reference ops add and matmul.
#include "common.h"
#include "../ops/elementwise.h"
#include "../ops/matmul.h"

namespace llmk::napi {
namespace {

Napi::Value add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& a = arg_tensor(info, 0, "a");
  const Tensor& b = arg_tensor(info, 1, "b");
  return guarded(env, [&] { return wrap_tensor(env, ops::add(a, b)); });
}

Napi::Value matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& a = arg_tensor(info, 0, "a");
  const Tensor& b = arg_tensor(info, 1, "b");
  return guarded(env, [&] { return wrap_tensor(env, ops::matmul(a, b)); });
}

}  // namespace

void init_ops_binding(Napi::Env env, Napi::Object exports) {
  exports.Set("add", Napi::Function::New(env, add));
  exports.Set("matmul", Napi::Function::New(env, matmul));
}

}  // namespace llmk::napi
