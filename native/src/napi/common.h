// Shared N-API plumbing: per-environment data, the JS tensor handle, and error conversion.
#pragma once
#include <napi.h>
#include <deque>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>
#include "../core/error.h"
#include "../core/tensor.h"
#include "completion.h"

namespace llmk::napi {

// Live tensors of one JS environment. JS holds a number (slot index + generation), which makes creating
// and disposing a tensor two cheap calls with no per-object N-API wrapper or finalizer; ts/tensor.ts
// backs leaks up with a FinalizationRegistry that calls release().
class TensorTable {
 public:
  double insert(llmk::Tensor t, int64_t accounted);
  // The live tensor of a handle, or nullptr with *state: 0 = not a handle, 1 = disposed.
  const llmk::Tensor* find(double handle, int* state) const;
  // Frees a handle's slot; returns the host bytes that were reported to V8 (0 if it was not live).
  int64_t release(double handle, bool report_leak);
  // Test hook: sets the generation of the slot reused next (the wrap is otherwise 2^28 reuses away).
  bool debug_age_free_slot(uint32_t gen);
  static constexpr uint32_t kMaxGen = 0x0fffffffu;  // handle = gen * 2^24 + slot stays below 2^52

 private:
  struct Slot { llmk::Tensor t; uint32_t gen = 0; int64_t accounted = 0; bool live = false; };
  std::deque<Slot> slots_;  // deque: references stay valid while slots are added
  std::vector<uint32_t> free_;  // a slot whose generation reached kMaxGen is retired, never reused
};

struct EnvData {
  TensorTable tensors;
  Completions completions;               // toArray() / synchronize() promises
  Napi::FunctionReference stream_ctor;   // NativeStream
  Napi::FunctionReference error_ctor;    // LlmkError from ts/errors.ts (set by the loader)
  Napi::Reference<Napi::Float64Array> result_info;  // exported as native.resultInfo (see wrap_result)
  double* result_slots = nullptr;                   // its data
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

// ---- The argument vocabulary of the bindings -------------------------------------------------
// Every binding reads its positional arguments with these and nothing else. Each throws a JS LlmkError
// ERR_LLMK_ARG naming the argument (pass `name` with its op, e.g. "moe.topk: k"), the expected and the
// actual value; none truncates, rounds or wraps a value silently. Contracts between arguments (shapes,
// dtypes, ranges that depend on other arguments) belong to the ops layer, not here. Booleans are read
// with info[i].ToBoolean() (JS truthiness, as the TypeScript layer documents).
//
//   const Tensor& x = arg_tensor(info, 0, "x");
//   Tensor bias = arg_opt_tensor(info, 1, "bias");                   // undefined/null: !bias.defined()
//   int64_t k = arg_int(info, 2, "moe.topk: k", 1, 1024);            // an integer in [lo, hi]
//   double scale = arg_num(info, 3, "moe.topk: scale");              // any number (NaN/Inf: ops decide)
//   return guarded(env, [&] { auto r = ops::f(x, bias, k, scale); return wrap_results(env, {r.a, r.b}); });

// Argument i as a live tensor that the op about to be queued uses: orders the current stream after the
// stream of the tensor's last use (the stream contract, core/storage.h). ERR_LLMK_ARG when it is not a
// tensor handle, ERR_LLMK_DISPOSED after dispose.
const llmk::Tensor& arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* name);
// The same without the stream ordering: for metadata, views, and reads that wait for the last use themselves.
const llmk::Tensor& peek_tensor(const Napi::CallbackInfo& info, size_t i, const char* name);
// Argument i as a tensor, or an undefined Tensor when it is missing, undefined or null.
llmk::Tensor arg_opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* name);
// Argument i as an integer in [lo, hi]: a JS number that is a whole number in range (2^32 + 1 is not 1).
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
// Argument i as a JS number (ERR_LLMK_ARG when it is not a number).
double arg_num(const Napi::CallbackInfo& info, size_t i, const char* name);
// Argument i as the bytes of a Uint8Array.
std::string arg_bytes(const Napi::CallbackInfo& info, size_t i, const char* name);
Shape arg_shape(const Napi::CallbackInfo& info, size_t i);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i);
llmk::Device arg_device(const Napi::CallbackInfo& info, size_t kind_i);  // reads (kind, index) at kind_i, kind_i+1

// ---- Results ----------------------------------------------------------------------------------
// A handle for a fresh tensor (result of an op). owns_memory: report its CPU bytes to V8 (not for views).
Napi::Value wrap_tensor(Napi::Env env, llmk::Tensor t, bool owns_memory = true);
// Results whose shapes the op decides (TypeScript never recomputes them). The handle is returned; the
// dtype and shape go to slot `slot` of the environment's result-info buffer (a Float64Array exported once as
// `native.resultInfo`: kResultStride doubles per slot, dtype id, ndim, dims), which ts/tensor.ts `adopt()`
// reads at once. A buffer instead of a [handle, shape, dtype] array per result: building those arrays cost
// about 0.3 µs per result, a third of a small op's dispatch.
//   const [w, ids] = native.moe.topk(...);  adopt(w, device, 0); adopt(ids, device, 1);
constexpr size_t kResultSlots = 8, kResultMaxDims = 8, kResultStride = 2 + kResultMaxDims;
Napi::Value wrap_result(Napi::Env env, llmk::Tensor t, size_t slot = 0);
// Several results: an array of handles (null for an undefined Tensor), result i described in slot i.
Napi::Array wrap_results(Napi::Env env, std::initializer_list<llmk::Tensor> ts);
void init_result_info(Napi::Env env, Napi::Object exports);

void init_tensor_binding(Napi::Env env, Napi::Object exports);
void init_runtime_binding(Napi::Env env, Napi::Object exports);
void init_ops_binding(Napi::Env env, Napi::Object exports);
// One per kernel family (native/src/napi/<family>_binding.cpp).
void init_moe_binding(Napi::Env env, Napi::Object exports);
void init_int4_binding(Napi::Env env, Napi::Object exports);
void init_attention_binding(Napi::Env env, Napi::Object exports);
void init_dist_binding(Napi::Env env, Napi::Object exports);
Napi::Object init_module(Napi::Env env, Napi::Object exports);

}  // namespace llmk::napi
