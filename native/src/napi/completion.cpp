#include "completion.h"
#include <cstring>
#include "common.h"

namespace llmk::napi {

void Signal::post(Pending* p) {
  std::lock_guard<std::mutex> l(mu_);
  if (alive_ && napi_call_threadsafe_function(tsfn_, p, napi_tsfn_nonblocking) == napi_ok) return;
  delete p;  // napi_closing: the environment is being torn down; nobody is left to settle the promise
}

void Completions::init(napi_env env) {
  napi_value name;
  napi_create_string_utf8(env, "llm-kernels completion", NAPI_AUTO_LENGTH, &name);
  auto* keep = new std::shared_ptr<Signal>(signal_);  // owned by the threadsafe function
  napi_status st = napi_create_threadsafe_function(
      env, nullptr, nullptr, name, 0, 1, keep,
      [](napi_env, void* data, void*) {
        auto* sig = static_cast<std::shared_ptr<Signal>*>(data);
        { std::lock_guard<std::mutex> l((*sig)->mu_); (*sig)->alive_ = false; }
        delete sig;
      },
      signal_.get(), call_js, &signal_->tsfn_);
  if (st != napi_ok) {
    delete keep;
    signal_->alive_ = false;
    throw_js(Napi::Env(env), llmk::Error(ErrCode::Internal, "cannot create the completion signal"));
  }
  napi_unref_threadsafe_function(env, signal_->tsfn_);  // only pending waits keep the loop alive
}

Napi::Promise Completions::begin(Napi::Env env, Pending** out) {
  auto p = std::make_unique<Pending>();
  napi_value promise;
  if (napi_create_promise(env, &p->deferred, &promise) != napi_ok) throw Napi::Error::New(env);
  if (signal_->pending_++ == 0) napi_ref_threadsafe_function(env, signal_->tsfn_);
  *out = p.release();
  return Napi::Promise(env, promise);
}

void Completions::call_js(napi_env env, napi_value, void* context, void* data) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(data));
  if (!env) return;  // the threadsafe function is being deleted with its environment: drop
  auto* sig = static_cast<Signal*>(context);
  if (--sig->pending_ == 0) napi_unref_threadsafe_function(env, sig->tsfn_);
  try {
    settle(env, *p);
  } catch (...) {
    // A terminating environment refuses to run JS: nothing is left to tell.
  }
}

void Completions::settle(napi_env env, Pending& p) {
  Napi::Env e(env);
  Napi::HandleScope scope(e);
  if (p.error) {
    llmk::Error err(ErrCode::Internal, "unknown error");
    try {
      std::rethrow_exception(p.error);
    } catch (const llmk::Error& x) {
      err = x;
    } catch (const std::bad_alloc&) {
      err = llmk::Error(ErrCode::OOM, "out of host memory");
    } catch (const std::exception& x) {
      err = llmk::Error(ErrCode::Internal, x.what());
    } catch (...) {
    }
    napi_reject_deferred(env, p.deferred, make_error(e, err));
    return;
  }
  napi_value result;
  if (!p.data) {
    napi_get_undefined(env, &result);
  } else {
    size_t n = p.size;
    napi_status st = napi_create_external_arraybuffer(
        env, p.data, n,
        [](napi_env fenv, void* data, void* hint) {
          std::free(data);
          int64_t change;
          napi_adjust_external_memory(fenv, -int64_t(reinterpret_cast<uintptr_t>(hint)), &change);
        },
        reinterpret_cast<void*>(uintptr_t(n)), &result);
    if (st == napi_ok) {
      p.data = nullptr;  // the ArrayBuffer owns it now
      int64_t change;
      napi_adjust_external_memory(env, int64_t(n), &change);
    } else {  // runtimes without external buffers: one more copy
      void* dst;
      if (napi_create_arraybuffer(env, n, &dst, &result) != napi_ok) throw Napi::Error::New(e);
      std::memcpy(dst, p.data, n);
    }
  }
  napi_resolve_deferred(env, p.deferred, result);
}

}  // namespace llmk::napi
