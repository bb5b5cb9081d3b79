#include "cuda_runtime.h"
#include <mutex>
#include <vector>
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk {

#ifdef LLMK_WITH_CUDA
bool cuda_compiled() { return true; }

void cuda_throw_if(int code, const char* what) {
  if (code == 0) return;
  cudaError_t e = static_cast<cudaError_t>(code);
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  if (e == cudaErrorMemoryAllocation)
    throw Error(ErrCode::OOM, std::string(what) + ": out of CUDA memory", cudaGetErrorName(e));
  throw Error(ErrCode::Cuda, std::string(what) + " failed: " + cudaGetErrorString(e), cudaGetErrorName(e));
}

bool cuda_available(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
    cudaGetLastError();
    if (why) *why = e == cudaErrorNoDevice ? "no CUDA device found" : "CUDA driver not found";
    return false;
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = std::string("CUDA initialisation failed: ") + cudaGetErrorName(e);
    return false;
  }
  if (n == 0) { if (why) *why = "no CUDA device found"; return false; }
  return true;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
  return n;
}

void cuda_set_device(int index) {
  std::string why;
  if (!cuda_available(&why)) throw Error(ErrCode::Unavailable, "CUDA is unavailable: " + why);
  int n = cuda_device_count();
  if (index < 0 || index >= n)
    throw Error(ErrCode::Device, fmt("cuda:%d does not exist (%d CUDA device(s))", index, n));
  cuda_throw_if(int(cudaSetDevice(index)), "cudaSetDevice");
}

int* cuda_error_flag(int device) {
  static std::mutex mu;
  static std::vector<int*> flags;
  std::lock_guard<std::mutex> l(mu);
  if (int(flags.size()) <= device) flags.resize(size_t(device) + 1, nullptr);
  if (!flags[size_t(device)]) {
    int* p = nullptr;
    cuda_throw_if(int(cudaMalloc(&p, sizeof(int))), "cudaMalloc(error flag)");
    cuda_throw_if(int(cudaMemset(p, 0, sizeof(int))), "cudaMemset(error flag)");
    flags[size_t(device)] = p;
  }
  return flags[size_t(device)];
}

void cuda_check_error_flag(int device, void* stream) {
  int* f = cuda_error_flag(device);
  int h = 0;
  auto s = static_cast<cudaStream_t>(stream);
  cuda_throw_if(int(cudaMemcpyAsync(&h, f, sizeof(int), cudaMemcpyDeviceToHost, s)), "cudaMemcpyAsync(error flag)");
  cuda_throw_if(int(cudaStreamSynchronize(s)), "cudaStreamSynchronize");
  if (h) {
    cudaMemsetAsync(f, 0, sizeof(int), s);
    cudaStreamSynchronize(s);
    throw Error(ErrCode::Index, "a kernel found an index out of range in its input (for example an expert id >= numExperts); its output is not valid");
  }
}

void cuda_memcpy(void* dst, const void* src, int64_t nbytes, int kind, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  cuda_throw_if(int(cudaMemcpyAsync(dst, src, size_t(nbytes), static_cast<cudaMemcpyKind>(kind), s)), "cudaMemcpyAsync");
  cuda_throw_if(int(cudaStreamSynchronize(s)), "cudaStreamSynchronize");
}

void cuda_memcpy_sync(void* dst, const void* src, int64_t nbytes, int kind) {
  cuda_throw_if(int(cudaMemcpy(dst, src, size_t(nbytes), static_cast<cudaMemcpyKind>(kind))), "cudaMemcpy");
}

void cuda_memcpy_async(void* dst, const void* src, int64_t nbytes, int kind, void* stream) {
  cuda_throw_if(int(cudaMemcpyAsync(dst, src, size_t(nbytes), static_cast<cudaMemcpyKind>(kind), static_cast<cudaStream_t>(stream))),
                "cudaMemcpyAsync");
}

#else
bool cuda_compiled() { return false; }
void cuda_throw_if(int code, const char* what) {
  if (code) throw Error(ErrCode::Cuda, std::string(what) + " failed");
}
bool cuda_available(std::string* why) {
  if (why) *why = "this is a CPU-only build of llm-kernels (rebuild with LLMK_BUILD=cuda)";
  return false;
}
int cuda_device_count() { return 0; }
void cuda_set_device(int) { throw Error(ErrCode::Unavailable, "CUDA is unavailable: this is a CPU-only build"); }
int* cuda_error_flag(int) { throw Error(ErrCode::Unavailable, "CUDA is unavailable: this is a CPU-only build"); }
void cuda_check_error_flag(int, void*) {}
void cuda_memcpy(void*, const void*, int64_t, int, void*) {
  throw Error(ErrCode::Unavailable, "CUDA is unavailable: this is a CPU-only build");
}
void cuda_memcpy_sync(void*, const void*, int64_t, int) {
  throw Error(ErrCode::Unavailable, "CUDA is unavailable: this is a CPU-only build");
}
void cuda_memcpy_async(void*, const void*, int64_t, int, void*) {
  throw Error(ErrCode::Unavailable, "CUDA is unavailable: this is a CPU-only build");
}
#endif

}  // namespace llmk
