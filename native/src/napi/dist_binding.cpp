// Bindings for dist (ops/dist.h, core/nccl_loader.h). A communicator is a Napi::External holding a
// shared_ptr; ts/dist.ts wraps it in the Communicator class.
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include "common.h"
#include "../core/nccl_loader.h"
#include "../ops/dist.h"

namespace llmk::napi {
namespace {

using CommPtr = std::shared_ptr<ops::dist::Communicator>;
using CommExternal = Napi::External<CommPtr>;

// Tags our externals, so an external made by another addon is refused instead of reinterpreted.
const napi_type_tag kCommTag = {0x6c6c6d6b2d636f6dULL, 0x9d1c5a3e7f20b4a1ULL};

Napi::Value wrap_comm(Napi::Env env, CommPtr c) {
  auto e = CommExternal::New(env, new CommPtr(std::move(c)), [](Napi::Env, CommPtr* p) { delete p; });
  NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, e, &kCommTag), Napi::Value());
  return e;
}

ops::dist::Communicator& arg_comm(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  bool tagged = false;
  if (v.IsExternal() && napi_check_object_type_tag(info.Env(), v, &kCommTag, &tagged) != napi_ok) tagged = false;
  if (!tagged) throw_js(info.Env(), llmk::Error(ErrCode::Arg, "dist: not a communicator handle"));
  CommPtr* p = v.As<CommExternal>().Data();
  if (!p || !*p) throw_js(info.Env(), llmk::Error(ErrCode::Arg, "dist: not a communicator handle"));
  return **p;
}

// JS integers that the ops layer range-checks with its own messages: only "is an int" is checked here.
constexpr int64_t kIntMin = INT32_MIN, kIntMax = INT32_MAX;

// Timeouts: a positive number of milliseconds, rounded up; huge ones are clamped by the ops layer.
int64_t arg_timeout(const Napi::CallbackInfo& info, size_t i) {
  const double ms = arg_num(info, i, "dist.init: timeoutMs");
  if (!(ms > 0)) throw_js(info.Env(), llmk::Error(ErrCode::Arg, llmk::fmt("dist.init: timeoutMs must be positive, got %g", ms)));
  return ms >= double(ops::dist::kMaxTimeoutMs) ? ops::dist::kMaxTimeoutMs : int64_t(std::ceil(ms));
}

Napi::Object load_info_object(Napi::Env env, const nccl::LoadInfo& li) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", li.ok);
  o.Set("version", li.ok ? Napi::Value(Napi::String::New(env, li.version_str)) : env.Null());
  o.Set("versionCode", li.version ? Napi::Value(Napi::Number::New(env, li.version)) : env.Null());
  o.Set("path", li.ok ? Napi::Value(Napi::String::New(env, li.path)) : env.Null());
  o.Set("reason", li.ok ? env.Null() : Napi::Value(Napi::String::New(env, li.error)));
  Napi::Array s = Napi::Array::New(env, li.searched.size());
  for (size_t i = 0; i < li.searched.size(); i++) s.Set(uint32_t(i), li.searched[i]);
  o.Set("searched", s);
  return o;
}

Napi::Value nccl_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&] { return load_info_object(env, nccl::info()); });
}

Napi::Value nccl_probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_js(env, llmk::Error(ErrCode::Arg, "dist.nccl.probe: path must be a string"));
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return guarded(env, [&] { return load_info_object(env, nccl::load({path}, nullptr)); });
}

Napi::Value nccl_unique_id(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&] {
    std::string id = ops::dist::nccl_unique_id();
    auto a = Napi::Uint8Array::New(env, id.size());
    std::memcpy(a.Data(), id.data(), id.size());
    return a;
  });
}

Napi::Value check_local_id(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = arg_bytes(info, 0, "dist.init: uniqueId");
  return Napi::String::New(env, ops::dist::check_local_id(id));
}

Napi::Value init_local(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = arg_bytes(info, 0, "dist.init: uniqueId");
  const int rank = int(arg_int(info, 1, "dist.init: rank", kIntMin, kIntMax));
  const int world = int(arg_int(info, 2, "dist.init: worldSize", kIntMin, kIntMax));
  const int64_t tmo = arg_timeout(info, 3);
  return guarded(env, [&] { return wrap_comm(env, ops::dist::init_local(id, rank, world, tmo)); });
}

Napi::Value init_nccl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = arg_bytes(info, 0, "dist.init: uniqueId");
  const int rank = int(arg_int(info, 1, "dist.init: rank", kIntMin, kIntMax));
  const int world = int(arg_int(info, 2, "dist.init: worldSize", kIntMin, kIntMax));
  llmk::Device dev = arg_device(info, 3);
  const int64_t tmo = arg_timeout(info, 5);
  return guarded(env, [&] { return wrap_comm(env, ops::dist::init_nccl(id, rank, world, dev, tmo)); });
}

// Runs f(communicator, env) on argument 0 under guarded(); f returns a JS value.
template <typename F>
Napi::Value on_comm(const Napi::CallbackInfo& info, F&& f) {
  Napi::Env env = info.Env();
  auto& c = arg_comm(info, 0);
  return guarded(env, [&]() -> Napi::Value { return f(c, env); });
}
// The same for calls that return nothing.
template <typename F>
Napi::Value on_comm_void(const Napi::CallbackInfo& info, F&& f) {
  return on_comm(info, [&](ops::dist::Communicator& c, Napi::Env env) -> Napi::Value { f(c); return env.Undefined(); });
}
// The handle of a collective's output when the op allocated it, else undefined (written in place).
Napi::Value new_output(Napi::Env env, const llmk::Tensor& out_arg, const llmk::Tensor& r) {
  return out_arg.defined() ? env.Undefined() : wrap_tensor(env, r);
}

Napi::Value all_reduce(const Napi::CallbackInfo& info) {
  const llmk::Tensor& in = arg_tensor(info, 1, "tensor");
  const llmk::Tensor out = arg_opt_tensor(info, 2, "out");
  const int op = int(arg_int(info, 3, "dist: op", kIntMin, kIntMax));
  return on_comm_void(info, [&](auto& c) { ops::dist::all_reduce(c, in, out, ops::dist::red_op_from_int(op)); });
}

Napi::Value all_gather(const Napi::CallbackInfo& info) {
  const llmk::Tensor& in = arg_tensor(info, 1, "tensor");
  const llmk::Tensor out = arg_opt_tensor(info, 2, "out");
  return on_comm(info, [&](auto& c, Napi::Env env) { return new_output(env, out, ops::dist::all_gather(c, in, out)); });
}

Napi::Value reduce_scatter(const Napi::CallbackInfo& info) {
  const llmk::Tensor& in = arg_tensor(info, 1, "tensor");
  const llmk::Tensor out = arg_opt_tensor(info, 2, "out");
  const int op = int(arg_int(info, 3, "dist: op", kIntMin, kIntMax));
  return on_comm(info, [&](auto& c, Napi::Env env) {
    return new_output(env, out, ops::dist::reduce_scatter(c, in, out, ops::dist::red_op_from_int(op)));
  });
}

Napi::Value broadcast(const Napi::CallbackInfo& info) {
  const llmk::Tensor& in = arg_tensor(info, 1, "tensor");
  const llmk::Tensor out = arg_opt_tensor(info, 2, "out");
  const int root = int(arg_int(info, 3, "dist.broadcast: root", kIntMin, kIntMax));
  return on_comm_void(info, [&](auto& c) { ops::dist::broadcast(c, in, out, root); });
}

Napi::Value send(const Napi::CallbackInfo& info) {
  const llmk::Tensor& t = arg_tensor(info, 1, "tensor");
  const int peer = int(arg_int(info, 2, "dist.send: peer", kIntMin, kIntMax));
  return on_comm_void(info, [&](auto& c) { ops::dist::send(c, t, peer); });
}

Napi::Value recv(const Napi::CallbackInfo& info) {
  const llmk::Tensor& t = arg_tensor(info, 1, "tensor");
  const int peer = int(arg_int(info, 2, "dist.recv: peer", kIntMin, kIntMax));
  return on_comm_void(info, [&](auto& c) { ops::dist::recv(c, t, peer); });
}

Napi::Value barrier(const Napi::CallbackInfo& info) {
  return on_comm_void(info, [](auto& c) { c.check_usable("barrier"); c.barrier(); });
}

Napi::Value group_start(const Napi::CallbackInfo& info) {
  return on_comm_void(info, [](auto& c) { c.check_usable("group"); c.group_start(); });
}

Napi::Value group_end(const Napi::CallbackInfo& info) {
  return on_comm_void(info, [](auto& c) { c.group_end(); });
}

Napi::Value destroy(const Napi::CallbackInfo& info) {
  return on_comm_void(info, [](auto& c) { c.destroy(); });
}

Napi::Value abort_comm(const Napi::CallbackInfo& info) {
  const std::string why = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string();
  return on_comm_void(info, [&](auto& c) { c.abort(why); });
}

Napi::Value poll_ready(const Napi::CallbackInfo& info) {
  return on_comm(info, [](auto& c, Napi::Env env) { return Napi::Number::New(env, c.poll_ready()); });
}

// null while healthy, else [message, detail].
Napi::Value comm_error(const Napi::CallbackInfo& info) {
  return on_comm(info, [](auto& c, Napi::Env env) -> Napi::Value {
    const std::string e = c.error();
    if (e.empty()) return env.Null();
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(0u, e);
    a.Set(1u, c.error_detail());
    return a;
  });
}

}  // namespace

void init_dist_binding(Napi::Env env, Napi::Object exports) {
  Napi::Object d = Napi::Object::New(env);
  d.Set("ncclInfo", Napi::Function::New(env, nccl_info));
  d.Set("ncclProbe", Napi::Function::New(env, nccl_probe));
  d.Set("ncclUniqueId", Napi::Function::New(env, nccl_unique_id));
  d.Set("checkLocalId", Napi::Function::New(env, check_local_id));
  d.Set("initLocal", Napi::Function::New(env, init_local));
  d.Set("initNccl", Napi::Function::New(env, init_nccl));
  d.Set("pollReady", Napi::Function::New(env, poll_ready));
  d.Set("allReduce", Napi::Function::New(env, all_reduce));
  d.Set("allGather", Napi::Function::New(env, all_gather));
  d.Set("reduceScatter", Napi::Function::New(env, reduce_scatter));
  d.Set("broadcast", Napi::Function::New(env, broadcast));
  d.Set("send", Napi::Function::New(env, send));
  d.Set("recv", Napi::Function::New(env, recv));
  d.Set("barrier", Napi::Function::New(env, barrier));
  d.Set("groupStart", Napi::Function::New(env, group_start));
  d.Set("groupEnd", Napi::Function::New(env, group_end));
  d.Set("destroy", Napi::Function::New(env, destroy));
  d.Set("abort", Napi::Function::New(env, abort_comm));
  d.Set("error", Napi::Function::New(env, comm_error));
  exports.Set("dist", d);
}

}  // namespace llmk::napi
