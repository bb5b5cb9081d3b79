#include "device_timer.h"
#include "launch.h"
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
  // Owns the graph and events, so an enqueue that throws leaks nothing.
  struct Resources {
    cudaGraphExec_t exec = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Resources() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
      if (exec) cudaGraphExecDestroy(exec);
    }
  } r;
  if (use_graph) {
    cuda_throw_if(int(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)), "cudaStreamBeginCapture");
    cudaGraph_t g = nullptr;
    try { enqueue(); } catch (...) { cudaStreamEndCapture(s, &g); if (g) cudaGraphDestroy(g); cudaGetLastError(); throw; }
    cuda_throw_if(int(cudaStreamEndCapture(s, &g)), "cudaStreamEndCapture");
    cudaError_t e = cudaGraphInstantiate(&r.exec, g, 0);
    cudaGraphDestroy(g);
    cuda_throw_if(int(e), "cudaGraphInstantiate");
    cuda_throw_if(int(cudaGraphLaunch(r.exec, s)), "cudaGraphLaunch");  // warm-up replay
  }
  cuda_throw_if(int(cudaEventCreate(&r.start)), "cudaEventCreate");
  cuda_throw_if(int(cudaEventCreate(&r.stop)), "cudaEventCreate");
  cuda_throw_if(int(cudaEventRecord(r.start, s)), "cudaEventRecord");
  for (int i = 0; i < iters; i++) {
    if (r.exec) cuda_throw_if(int(cudaGraphLaunch(r.exec, s)), "cudaGraphLaunch");
    else enqueue();
  }
  cuda_throw_if(int(cudaEventRecord(r.stop, s)), "cudaEventRecord");
  float ms = 0;
  cuda_throw_if(int(cudaEventSynchronize(r.stop)), "device timing");
  cuda_throw_if(int(cudaEventElapsedTime(&ms, r.start, r.stop)), "cudaEventElapsedTime");
  stream->synchronize();
  return double(ms) / iters;
#else
  (void)use_graph;
  throw_no_cuda("timeOnDevice");
#endif
}

}  // namespace llmk::ops
