// Bindings for the runtime: backends, streams, synchronisation, allocator stats, device timing.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include "common.h"
#include "../core/cuda_runtime.h"
#include "../core/parallel.h"
#include "../core/stream.h"
#include "../ops/device_timer.h"

namespace llmk::napi {
namespace {

class NativeStream : public Napi::ObjectWrap<NativeStream> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeStream", {InstanceMethod<&NativeStream::sync>("synchronizeSync")});
  }
  explicit NativeStream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeStream>(info) {
    llmk::Device d = arg_device(info, 0);
    stream = guarded(info.Env(), [&] { return Stream::create(d); });
  }
  Napi::Value sync(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { stream->synchronize(); });
    return info.Env().Undefined();
  }
  std::shared_ptr<Stream> stream;
};

Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw_js(info.Env(), llmk::Error(ErrCode::Arg, "setErrorClass: not a constructor"));
  env_data(info.Env()).error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("available", true);
  cpu.Set("threads", num_threads());
  r.Set("cpu", cpu);
  Napi::Object cu = Napi::Object::New(env);
  std::string why;
  bool ok = cuda_available(&why);
  cu.Set("compiled", cuda_compiled());
  cu.Set("available", ok);
  cu.Set("deviceCount", ok ? cuda_device_count() : 0);
  if (!ok) cu.Set("reason", why);
  r.Set("cuda", cu);
  return r;
}

Napi::Value memory_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int kind = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  if (kind != 0 && kind != 1) throw_js(env, llmk::Error(ErrCode::Arg, "memoryStats: device kind must be 0 (cpu) or 1 (cuda)"));
  AllocatorStats s = allocator_stats(DeviceKind(kind));
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveBytes", double(s.live_bytes));
  o.Set("liveBlocks", double(s.live_blocks));
  o.Set("totalAllocs", double(s.total_allocs));
  return o;
}

Napi::Value set_current(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsObject()) {
    if (!info[0].As<Napi::Object>().InstanceOf(env_data(env).stream_ctor.Value()))
      throw_js(env, llmk::Error(ErrCode::Arg, "setCurrentStream: not a Stream"));
    set_current_stream(NativeStream::Unwrap(info[0].As<Napi::Object>())->stream);
  } else {
    llmk::Device d = arg_device(info, 1);
    guarded(env, [&] { set_current_stream(default_stream(d)); });
  }
  return env.Undefined();
}

std::vector<std::shared_ptr<Stream>> streams_of(llmk::Device d) {
  auto a = default_stream(d), b = current_stream(d);
  if (a == b) return {a};
  return {a, b};
}

// synchronizeAsync(kind, index) -> Promise<void>: settled through the completion signal once every
// stream of the device on this thread reached this point (first error wins); no libuv thread waits.
Napi::Value synchronize_async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Device d = arg_device(info, 0);
  return guarded(env, [&] {
    auto streams = streams_of(d);
    Completions& c = env_data(env).completions;
    Pending* p = nullptr;
    Napi::Promise promise = c.begin(env, &p);
    struct Join { std::atomic<int> left; std::mutex mu; std::exception_ptr first; };
    auto join = std::make_shared<Join>();
    join->left = int(streams.size());
    std::shared_ptr<Signal> sig = c.signal();
    auto done = [join, p, sig](std::exception_ptr err) {
      if (err) { std::lock_guard<std::mutex> l(join->mu); if (!join->first) join->first = err; }
      if (join->left.fetch_sub(1) != 1) return;
      p->error = join->first;
      sig->post(p);
    };
    for (auto& s : streams) {
      try { s->when_done(done, 0); } catch (...) { done(std::current_exception()); }
    }
    return promise;
  });
}

Napi::Value synchronize_sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Device d = arg_device(info, 0);
  guarded(env, [&] { synchronize_device(d); });
  return env.Undefined();
}

// deviceTime(kind, index, iters, fn, useGraph) -> milliseconds per call of fn, measured on the device:
// CUDA events around `iters` calls (or replays of a graph captured from one call); on the CPU, the host
// clock around the calls and the stream's completion.
Napi::Value device_time(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Device d = arg_device(info, 0);
  double it = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (!(it >= 1 && it <= 2147483647.0 && it == double(int(it))))
    throw_js(env, llmk::Error(ErrCode::Arg, "deviceTime: iters must be an integer in [1, 2^31 - 1]"));
  if (!info[3].IsFunction()) throw_js(env, llmk::Error(ErrCode::Arg, "deviceTime: fn must be a function"));
  int iters = int(it);
  Napi::Function fn = info[3].As<Napi::Function>();
  bool graph = info[4].ToBoolean();
  return guarded(env, [&] {
    auto call = [&] { fn.Call({}); };
    double ms = ops::time_on_device(d, iters, graph, call);
    return Napi::Number::New(env, ms);
  });
}

// isCurrentStream(nativeStream) -> whether ops on its device are queued on it now (tests, withStream).
Napi::Value is_current_stream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(env_data(env).stream_ctor.Value()))
    throw_js(env, llmk::Error(ErrCode::Arg, "isCurrentStream: not a Stream"));
  auto s = NativeStream::Unwrap(info[0].As<Napi::Object>())->stream;
  return Napi::Boolean::New(env, current_stream_if_any(s->device()) == s);
}

// Test hook: queues a task that sleeps `ms` on the current CPU stream (a device that stays busy).
Napi::Value debug_sleep(const Napi::CallbackInfo& info) {
  double ms = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(ms >= 0 && ms <= 60000)) throw_js(info.Env(), llmk::Error(ErrCode::Arg, "debugSleep: ms must be in [0, 60000]"));
  enqueue_cpu([ms] { std::this_thread::sleep_for(std::chrono::microseconds(int64_t(ms * 1000))); });
  return info.Env().Undefined();
}

// Test hook: debugProbe() queues a task on the current CPU stream (never run inline by enqueue) that counts
// whether it ran on the thread that queued it (synchronize() runs tasks the worker has not taken yet itself);
// debugProbeCounts() -> [on that thread, on another thread].
std::atomic<int64_t> probes_on_caller{0}, probes_elsewhere{0};
Napi::Value debug_probe(const Napi::CallbackInfo& info) {
  enqueue_cpu([caller = std::this_thread::get_id()] {
    (std::this_thread::get_id() == caller ? probes_on_caller : probes_elsewhere).fetch_add(1);
  });
  return info.Env().Undefined();
}

Napi::Value debug_probe_counts(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(uint32_t(0), Napi::Number::New(info.Env(), double(probes_on_caller.load())));
  a.Set(uint32_t(1), Napi::Number::New(info.Env(), double(probes_elsewhere.load())));
  return a;
}

// Test hook: sets (value a string) or unsets (value undefined) an environment variable of the process, as a
// task on the current CPU stream, so kernels queued there before it see the old value and those after it the new
// one (setenv is not thread-safe against getenv: work on other streams is the caller's to keep idle). Jest gives each test file a copy of process.env, so
// assigning process.env there never reaches the native getenv of LLMK_CPU_*_ISA.
Napi::Value debug_set_env(const Napi::CallbackInfo& info) {
  if (!info[0].IsString() || !(info[1].IsString() || info[1].IsUndefined()))
    throw_js(info.Env(), llmk::Error(ErrCode::Arg, "debugSetEnv: name must be a string, value a string or undefined"));
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::optional<std::string> value;
  if (info[1].IsString()) value = info[1].As<Napi::String>().Utf8Value();
  enqueue_cpu([name, value] {
    if (value) setenv(name.c_str(), value->c_str(), 1);
    else unsetenv(name.c_str());
  });
  return info.Env().Undefined();
}

}  // namespace

void init_runtime_binding(Napi::Env env, Napi::Object exports) {
  Napi::Function sctor = NativeStream::define(env);
  env_data(env).stream_ctor = Napi::Persistent(sctor);
  exports.Set("NativeStream", sctor);
  exports.Set("setErrorClass", Napi::Function::New(env, set_error_class));
  exports.Set("backends", Napi::Function::New(env, backends));
  exports.Set("memoryStats", Napi::Function::New(env, memory_stats));
  exports.Set("setCurrentStream", Napi::Function::New(env, set_current));
  exports.Set("synchronizeAsync", Napi::Function::New(env, synchronize_async));
  exports.Set("synchronizeSync", Napi::Function::New(env, synchronize_sync));
  exports.Set("deviceTime", Napi::Function::New(env, device_time));
  exports.Set("isCurrentStream", Napi::Function::New(env, is_current_stream));
  exports.Set("debugSleep", Napi::Function::New(env, debug_sleep));
  exports.Set("debugSetEnv", Napi::Function::New(env, debug_set_env));
  exports.Set("debugProbe", Napi::Function::New(env, debug_probe));
  exports.Set("debugProbeCounts", Napi::Function::New(env, debug_probe_counts));
}

}  // namespace llmk::napi
