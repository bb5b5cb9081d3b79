// Device waits finish off the JS thread (on the stream's worker or waiter thread) and are signalled back
// to the event loop through one napi_threadsafe_function per environment: no libuv pool thread ever
// waits for a device, and a completion that arrives while its environment is torn down is dropped.
#pragma once
#include <napi.h>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>

namespace llmk::napi {

// One pending promise. Made on the JS thread, filled on any thread, settled on the JS thread.
struct Pending {
  napi_deferred deferred = nullptr;
  std::exception_ptr error;  // rejects with it when set
  void* data = nullptr;      // resolves with an ArrayBuffer taking over this malloc'd block when set,
  size_t size = 0;           // else with undefined
  ~Pending() { std::free(data); }
};

// Shared by the environment and by work in flight, so a late post() stays safe after the env is gone.
class Signal {
 public:
  // Hands p to the JS thread (any thread may call it); deletes it when the environment is gone or going.
  void post(Pending* p);

 private:
  friend class Completions;
  std::mutex mu_;
  bool alive_ = true;                     // false once the threadsafe function was finalised
  napi_threadsafe_function tsfn_ = nullptr;
  int pending_ = 0;                       // JS thread only: > 0 keeps the event loop alive
};

class Completions {
 public:
  void init(napi_env env);  // creates the (unreferenced) threadsafe function
  // A new promise and its Pending; post the Pending through signal() once the wait is over.
  Napi::Promise begin(Napi::Env env, Pending** out);
  const std::shared_ptr<Signal>& signal() const { return signal_; }

 private:
  static void call_js(napi_env env, napi_value, void* context, void* data);
  static void settle(napi_env env, Pending& p);
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
};

}  // namespace llmk::napi
