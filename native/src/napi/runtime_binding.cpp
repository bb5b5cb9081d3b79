// Bindings for the runtime: backends, streams, synchronisation, allocator stats, device timing.
#include <chrono>
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

class SyncWorker : public Napi::AsyncWorker {
 public:
  SyncWorker(Napi::Env env, std::vector<std::shared_ptr<Stream>> streams)
      : Napi::AsyncWorker(env), streams_(std::move(streams)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      for (auto& s : streams_) s->synchronize();
    } catch (const llmk::Error& e) {
      error_ = std::make_unique<llmk::Error>(e);
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(error_ ? make_error(Env(), *error_) : e.Value()); }

 private:
  std::vector<std::shared_ptr<Stream>> streams_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<llmk::Error> error_;
};

std::vector<std::shared_ptr<Stream>> streams_of(llmk::Device d) {
  auto a = default_stream(d), b = current_stream(d);
  if (a == b) return {a};
  return {a, b};
}

Napi::Value synchronize_async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llmk::Device d = arg_device(info, 0);
  return guarded(env, [&] {
    auto* w = new SyncWorker(env, streams_of(d));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
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
  int iters = info[2].As<Napi::Number>().Int32Value();
  Napi::Function fn = info[3].As<Napi::Function>();
  bool graph = info[4].ToBoolean();
  if (iters < 1) throw_js(env, llmk::Error(ErrCode::Arg, "iters must be >= 1"));
  return guarded(env, [&] {
    auto call = [&] { fn.Call({}); };
    double ms = ops::time_on_device(d, iters, graph, call);
    return Napi::Number::New(env, ms);
  });
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
}

}  // namespace llmk::napi
