// Shared N-API plumbing: per-environment data, the JS tensor handle, and error conversion.
#pragma once
#include <napi.h>
#include <functional>
#include "../core/error.h"
#include "../core/tensor.h"

namespace llmk::napi {

struct EnvData {
  Napi::FunctionReference tensor_ctor;   // NativeTensor
  Napi::FunctionReference stream_ctor;   // NativeStream
  Napi::FunctionReference error_ctor;    // LlmkError from ts/errors.ts (set by the loader)
};
EnvData& env_data(Napi::Env env);

// Throws a JS LlmkError (or a plain Error before the loader registered the class).
[[noreturn]] void throw_js(Napi::Env env, const llmk::Error& e);
Napi::Object make_error(Napi::Env env, const llmk::Error& e);

// Runs f, converting llmk::Error / std::bad_alloc / other exceptions into JS exceptions.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const llmk::Error& e) {
    throw_js(env, e);
  } catch (const std::bad_alloc&) {
    throw_js(env, llmk::Error(ErrCode::OOM, "out of host memory"));
  } catch (const std::exception& e) {
    throw_js(env, llmk::Error(ErrCode::Internal, e.what()));
  }
}

// The JS-visible tensor handle. ts/tensor.ts wraps it in the public Tensor class.
class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;
  const llmk::Tensor& tensor(Napi::Env env) const;  // throws ERR_LLMK_DISPOSED after dispose
  void set(Napi::Env env, llmk::Tensor t, bool owns_memory);

 private:
  Napi::Value dispose(const Napi::CallbackInfo& info);
  void release(Napi::Env env);
  llmk::Tensor t_;
  bool disposed_ = false;
  int64_t accounted_ = 0;  // host bytes reported to V8 (owners of CPU storage only)
};

// Unwraps argument i as a live tensor; ERR_LLMK_ARG when it is not a tensor handle.
const llmk::Tensor& arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* name);
// Wraps a fresh tensor (result of an op) in a new handle.
Napi::Object wrap_tensor(Napi::Env env, llmk::Tensor t, bool owns_memory = true);
Shape arg_shape(const Napi::CallbackInfo& info, size_t i);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i);
llmk::Device arg_device(const Napi::CallbackInfo& info, size_t kind_i);  // reads (kind, index) at kind_i, kind_i+1

void init_tensor_binding(Napi::Env env, Napi::Object exports);
void init_runtime_binding(Napi::Env env, Napi::Object exports);
void init_ops_binding(Napi::Env env, Napi::Object exports);
Napi::Object init_module(Napi::Env env, Napi::Object exports);

}  // namespace llmk::napi
