// Addon entry point: registers every binding. Context-aware (loads in worker_threads).
#include "common.h"
#include "../core/stream.h"

namespace llmk::napi {

EnvData& env_data(Napi::Env env) { return *env.GetInstanceData<EnvData>(); }

Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<EnvData>(new EnvData());
  env_data(env).completions.init(env);
  // The thread's CPU stream exists before any tensor: a storage records the stream its allocating op
  // runs on only when the thread already has one (stream workers must not get streams of their own).
  guarded(env, [] { default_stream(Device{}); });
  init_result_info(env, exports);
  init_tensor_binding(env, exports);
  init_runtime_binding(env, exports);
  init_ops_binding(env, exports);
  init_moe_binding(env, exports);
  init_int4_binding(env, exports);
  init_attention_binding(env, exports);
  init_dist_binding(env, exports);
  return exports;
}

}  // namespace llmk::napi

static Napi::Object InitLlmk(Napi::Env env, Napi::Object exports) { return llmk::napi::init_module(env, exports); }
NODE_API_MODULE(llmk, InitLlmk)
