// Bindings for the tensor handle and tensor creation/copies (ops/tensor_ops.h).
#include <cstdio>
#include <cstdlib>
#include "common.h"
#include "../core/stream.h"
#include "../ops/tensor_ops.h"

namespace llmk::napi {
namespace {

bool debug_leaks() {
  static bool on = [] { const char* e = std::getenv("LLMK_DEBUG_LEAKS"); return e && *e && *e != '0'; }();
  return on;
}

}  // namespace

Napi::Object make_error(Napi::Env env, const llmk::Error& e) {
  EnvData& d = env_data(env);
  Napi::Object err;
  if (!d.error_ctor.IsEmpty()) {
    err = d.error_ctor.New({Napi::String::New(env, e.what()), Napi::String::New(env, err_code_name(e.code))});
  } else {
    err = Napi::Error::New(env, e.what()).Value();
    err.Set("code", err_code_name(e.code));
  }
  if (!e.detail.empty()) err.Set(e.code == ErrCode::Nccl ? "ncclResult" : "cudaError", e.detail);
  return err;
}

void throw_js(Napi::Env env, const llmk::Error& e) { throw Napi::Error(env, make_error(env, e)); }

namespace {
constexpr double kGenScale = 16777216.0;  // handle = gen * 2^24 + slot
}  // namespace

double TensorTable::insert(llmk::Tensor t, int64_t accounted) {
  uint32_t idx;
  if (!free_.empty()) { idx = free_.back(); free_.pop_back(); }
  else {
    if (slots_.size() >= (1u << 24)) throw llmk::Error(ErrCode::OOM, "too many live tensors (16M)");
    idx = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[idx];
  s.t = std::move(t);
  s.accounted = accounted;
  s.live = true;
  s.gen++;  // 1..kMaxGen: release() retires a slot at kMaxGen, so a generation never wraps
  return double(s.gen) * kGenScale + double(idx);
}

const llmk::Tensor* TensorTable::find(double h, int* state) const {
  *state = 0;
  if (!(h >= 0) || h > 4503599627370496.0) return nullptr;
  uint64_t v = uint64_t(h);
  if (double(v) != h) return nullptr;
  uint32_t idx = uint32_t(v & 0xffffffu), gen = uint32_t(v >> 24);
  if (idx >= slots_.size() || gen == 0) return nullptr;
  const Slot& s = slots_[idx];
  if (s.live && s.gen == gen) return &s.t;
  *state = 1;  // a handle we issued whose tensor was released since
  return nullptr;
}

int64_t TensorTable::release(double h, bool report_leak) {
  int state;
  if (!find(h, &state)) return 0;
  Slot& s = slots_[uint32_t(uint64_t(h)) & 0xffffffu];
  if (report_leak && debug_leaks())
    std::fprintf(stderr, "llm-kernels: leaked tensor %s %s on %s (%lld bytes) was not disposed\n", dtype_name(s.t.dtype()),
                 shape_str(s.t.shape()).c_str(), s.t.device().str().c_str(), (long long)s.t.nbytes());
  int64_t acc = s.accounted;
  s.t = llmk::Tensor();  // queued work keeps its own reference; memory goes when that work is done
  s.live = false;
  s.accounted = 0;
  if (s.gen < kMaxGen) free_.push_back(uint32_t(uint64_t(h)) & 0xffffffu);
  return acc;
}

bool TensorTable::debug_age_free_slot(uint32_t gen) {
  if (free_.empty() || gen < 1 || gen > kMaxGen) return false;
  slots_[free_.back()].gen = gen;
  return true;
}

const llmk::Tensor& peek_tensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  int state = 0;
  const llmk::Tensor* t = v.IsNumber() ? env_data(env).tensors.find(v.As<Napi::Number>().DoubleValue(), &state) : nullptr;
  if (t) return *t;
  if (state == 1) throw_js(env, llmk::Error(ErrCode::Disposed, std::string(name) + " was used after dispose()"));
  throw_js(env, llmk::Error(ErrCode::Arg, std::string(name) + " must be a Tensor"));
}

const llmk::Tensor& arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const llmk::Tensor& t = peek_tensor(info, i, name);
  guarded(info.Env(), [&] { t.storage()->use_on(current_stream(t.device())); });
  return t;
}

Napi::Value wrap_tensor(Napi::Env env, llmk::Tensor t, bool owns_memory) {
  int64_t acc = owns_memory && t.device().is_cpu() ? t.nbytes() : 0;
  double h = env_data(env).tensors.insert(std::move(t), acc);
  if (acc) Napi::MemoryManagement::AdjustExternalMemory(env, acc);
  return Napi::Number::New(env, h);
}

Shape arg_shape(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray()) throw_js(env, llmk::Error(ErrCode::Arg, "shape must be an array of integers"));
  Napi::Array a = info[i].As<Napi::Array>();
  Shape s(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value d = a.Get(k);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1.0;
    if (!(x >= 0) || x != double(int64_t(x)) || x > 9.007199254740991e15)
      throw_js(env, llmk::Error(ErrCode::Shape, "shape entries must be non-negative integers"));
    s[k] = int64_t(x);
  }
  return s;
}

DType arg_dtype(const Napi::CallbackInfo& info, size_t i) {
  int v = info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : -1;
  if (v < 0 || v >= kNumDTypes) throw_js(info.Env(), llmk::Error(ErrCode::DType, "unknown dtype"));
  return DType(v);
}

llmk::Device arg_device(const Napi::CallbackInfo& info, size_t kind_i) {
  Napi::Env env = info.Env();
  int kind = info[kind_i].As<Napi::Number>().Int32Value();
  int index = info[kind_i + 1].As<Napi::Number>().Int32Value();
  return guarded(env, [&] { return ops::resolve_device(kind, index); });
}

namespace {

Napi::Array shape_array(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (uint32_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(env, double(s[i])));
  return a;
}

// fromHost(bytes: TypedArray|ArrayBuffer view, shape, dtype, kind, index, asFloat32: boolean)
Napi::Value from_host(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw_js(env, llmk::Error(ErrCode::Arg, "data must be a TypedArray"));
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  Shape shape = arg_shape(info, 1);
  DType dtype = arg_dtype(info, 2);
  llmk::Device dev = arg_device(info, 3);
  bool as_f32 = info[5].ToBoolean();
  return guarded(env, [&] {
    Tensor t = as_f32 ? ops::from_host_f32(reinterpret_cast<const float*>(p), int64_t(ta.ElementLength()), shape, dtype, dev)
                      : ops::from_host(p, int64_t(ta.ByteLength()), shape, dtype, dev);
    return wrap_tensor(env, std::move(t));
  });
}

Napi::Value empty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Shape shape = arg_shape(info, 0);
  DType dtype = arg_dtype(info, 1);
  llmk::Device dev = arg_device(info, 2);
  return guarded(env, [&] { return wrap_tensor(env, Tensor::empty(shape, dtype, dev)); });
}

Napi::Value full(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Shape shape = arg_shape(info, 0);
  DType dtype = arg_dtype(info, 1);
  llmk::Device dev = arg_device(info, 2);
  double v = info[4].As<Napi::Number>().DoubleValue();
  return guarded(env, [&] { return wrap_tensor(env, ops::full(shape, dtype, dev, v)); });
}

// random(shape, dtype, kind, index, seed (number), normal)
Napi::Value random(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Shape shape = arg_shape(info, 0);
  DType dtype = arg_dtype(info, 1);
  llmk::Device dev = arg_device(info, 2);
  uint64_t seed = uint64_t(info[4].As<Napi::Number>().Int64Value());
  bool normal = info[5].ToBoolean();
  return guarded(env, [&] { return wrap_tensor(env, ops::random(shape, dtype, dev, seed, normal)); });
}

Napi::Value cast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = arg_tensor(info, 0, "tensor");
  DType dtype = arg_dtype(info, 1);
  return guarded(env, [&] { return wrap_tensor(env, ops::cast(t, dtype)); });
}

Napi::Value to_device(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = arg_tensor(info, 0, "tensor");
  llmk::Device dev = arg_device(info, 1);
  return guarded(env, [&] { return wrap_tensor(env, ops::to_device(t, dev)); });
}

Napi::Value reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = peek_tensor(info, 0, "tensor");
  Shape s = arg_shape(info, 1);
  return guarded(env, [&] { return wrap_tensor(env, t.reshape(s), false); });
}

Napi::Value narrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = peek_tensor(info, 0, "tensor");
  int64_t start = info[1].As<Napi::Number>().Int64Value(), len = info[2].As<Napi::Number>().Int64Value();
  return guarded(env, [&] { return wrap_tensor(env, t.narrow0(start, len), false); });
}

Napi::Value shape_of(const Napi::CallbackInfo& info) {
  return shape_array(info.Env(), peek_tensor(info, 0, "tensor").shape());
}

// The stream a read to the host waits for: the one of the storage's last use (its own waits cover every
// earlier writer), or the current one when none is known.
std::shared_ptr<Stream> read_stream(const Tensor& t) {
  std::shared_ptr<Stream> s = t.storage()->last_stream();
  return s ? s : current_stream(t.device());
}

size_t host_bytes(const Tensor& t, bool as_f32) { return size_t(as_f32 ? t.numel() * 4 : t.nbytes()); }

// toHostAsync(handle, asFloat32) -> Promise<ArrayBuffer>: the copy runs once the writer's stream reached
// this point, on that stream's own thread; the promise is settled through the completion signal.
Napi::Value to_host_async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = peek_tensor(info, 0, "tensor");
  bool as_f32 = info[1].ToBoolean();
  return guarded(env, [&] {
    std::shared_ptr<Stream> s = read_stream(t);
    size_t n = host_bytes(t, as_f32);
    void* buf = std::malloc(n ? n : 1);
    if (!buf) throw std::bad_alloc();
    Completions& c = env_data(env).completions;
    Pending* p = nullptr;
    Napi::Promise promise = c.begin(env, &p);
    p->data = buf;
    p->size = n;
    std::shared_ptr<Signal> sig = c.signal();
    try {
      s->when_done([t, as_f32, p, sig](std::exception_ptr err) {
        if (!err) {
          try { ops::copy_ready_to_host(t, p->data, as_f32); } catch (...) { err = std::current_exception(); }
        }
        p->error = err;
        sig->post(p);
      }, int64_t(n) * 2);
    } catch (...) {
      p->error = std::current_exception();
      sig->post(p);
    }
    return promise;
  });
}

Napi::Value to_host_sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = peek_tensor(info, 0, "tensor");
  bool as_f32 = info[1].ToBoolean();
  return guarded(env, [&] {
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, host_bytes(t, as_f32));
    read_stream(t)->synchronize();
    ops::copy_ready_to_host(t, ab.Data(), as_f32);
    return ab;
  });
}

// Test hook: sets the generation of the tensor slot reused next, to reach the wrap in a few calls.
Napi::Value debug_age_free_slot(const Napi::CallbackInfo& info) {
  double g = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  bool ok = g >= 1 && g <= double(TensorTable::kMaxGen) && g == double(uint32_t(g)) &&
            env_data(info.Env()).tensors.debug_age_free_slot(uint32_t(g));
  return Napi::Boolean::New(info.Env(), ok);
}

// release(handle, leaked): frees a tensor's handle (dispose(), or the FinalizationRegistry when leaked).
Napi::Value release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsNumber()) {
    int64_t acc = env_data(env).tensors.release(info[0].As<Napi::Number>().DoubleValue(), info[1].ToBoolean());
    if (acc) Napi::MemoryManagement::AdjustExternalMemory(env, -acc);
  }
  return env.Undefined();
}

}  // namespace

void init_tensor_binding(Napi::Env env, Napi::Object exports) {
  exports.Set("release", Napi::Function::New(env, release));
  exports.Set("fromHost", Napi::Function::New(env, from_host));
  exports.Set("empty", Napi::Function::New(env, empty));
  exports.Set("full", Napi::Function::New(env, full));
  exports.Set("random", Napi::Function::New(env, random));
  exports.Set("cast", Napi::Function::New(env, cast));
  exports.Set("toDevice", Napi::Function::New(env, to_device));
  exports.Set("reshape", Napi::Function::New(env, reshape));
  exports.Set("narrow", Napi::Function::New(env, narrow));
  exports.Set("shapeOf", Napi::Function::New(env, shape_of));
  exports.Set("toHostAsync", Napi::Function::New(env, to_host_async));
  exports.Set("toHostSync", Napi::Function::New(env, to_host_sync));
  exports.Set("debugAgeFreeSlot", Napi::Function::New(env, debug_age_free_slot));
}

}  // namespace llmk::napi
