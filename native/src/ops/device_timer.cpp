#include "device_timer.h"
#include <chrono>
#include "../core/cuda_runtime.h"
#include "../core/error.h"
#include "../core/stream.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk::ops {

double time_on_device(Device device, int iters, bool use_graph, const std::function<void()>& enqueue) {
  auto stream = current_stream(device);
  if (device.is_cpu()) {
    stream->synchronize();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) enqueue();
    stream->synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  }
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device.index);
  auto s = static_cast<cudaStream_t>(stream->cuda());
  stream->synchronize();
  cudaGraphExec_t exec = nullptr;
  if (use_graph) {
    cuda_throw_if(int(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)), "cudaStreamBeginCapture");
    cudaGraph_t g = nullptr;
    try { enqueue(); } catch (...) { cudaStreamEndCapture(s, &g); if (g) cudaGraphDestroy(g); throw; }
    cuda_throw_if(int(cudaStreamEndCapture(s, &g)), "cudaStreamEndCapture");
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    cuda_throw_if(int(e), "cudaGraphInstantiate");
    cuda_throw_if(int(cudaGraphLaunch(exec, s)), "cudaGraphLaunch");  // warm-up replay
  }
  cudaEvent_t a, b;
  cuda_throw_if(int(cudaEventCreate(&a)), "cudaEventCreate");
  cuda_throw_if(int(cudaEventCreate(&b)), "cudaEventCreate");
  cudaEventRecord(a, s);
  for (int i = 0; i < iters; i++) {
    if (exec) cuda_throw_if(int(cudaGraphLaunch(exec, s)), "cudaGraphLaunch");
    else enqueue();
  }
  cudaEventRecord(b, s);
  cudaError_t e = cudaEventSynchronize(b);
  float ms = 0;
  if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (exec) cudaGraphExecDestroy(exec);
  cuda_throw_if(int(e), "device timing");
  stream->synchronize();
  return double(ms) / iters;
#else
  (void)use_graph;
  throw Error(ErrCode::Unavailable, "this build has no CUDA support");
#endif
}

}  // namespace llmk::ops
