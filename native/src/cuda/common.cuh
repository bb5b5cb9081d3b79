// Shared helpers for CUDA kernels: launch checks, index math, half conversions.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cstdint>
#include "../core/cuda_runtime.h"
#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/half.h"

namespace llmk::cuda {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Call right after every launch: turns a launch error into ERR_LLMK_CUDA.
inline void check_launch(const char* kernel) { cuda_throw_if(int(cudaGetLastError()), kernel); }

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Runs the statement(s) after T with T = the CUDA element type of a floating dtype (float, __half,
// __nv_bfloat16); any other dtype throws ERR_LLMK_DTYPE. dtype may be a DType or its int value.
//   LLMK_DISPATCH_FLOAT(dt, T, launch<T>(args));
#define LLMK_DISPATCH_FLOAT(dtype, T, ...)                                          \
  switch (::llmk::DType(dtype)) {                                                   \
    case ::llmk::DType::F32: { using T = float; __VA_ARGS__; } break;              \
    case ::llmk::DType::F16: { using T = __half; __VA_ARGS__; } break;             \
    case ::llmk::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;     \
    default: ::llmk::cuda::throw_bad_dtype(dtype, __func__);                        \
  }
// The same for the tensor-core paths: float16 and bfloat16 only.
#define LLMK_DISPATCH_HALF(dtype, T, ...)                                           \
  switch (::llmk::DType(dtype)) {                                                   \
    case ::llmk::DType::F16: { using T = __half; __VA_ARGS__; } break;             \
    case ::llmk::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;     \
    default: ::llmk::cuda::throw_bad_dtype(dtype, __func__);                        \
  }
[[noreturn]] inline void throw_bad_dtype(DType dt, const char* where) {
  throw Error(ErrCode::DType, std::string(where) + ": unsupported dtype " + dtype_name(dt));
}
[[noreturn]] inline void throw_bad_dtype(int dt, const char* where) { throw_bad_dtype(DType(dt), where); }

// Multiprocessor count of the current device (cached per device).
int sm_count();

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace llmk::cuda
