#include "elementwise.h"
#include <cmath>
#include "common.cuh"

namespace llmk::cuda {
namespace {

template <typename T> __device__ __forceinline__ double rd(const T* p, int64_t i) { return double(p[i]); }
template <> __device__ __forceinline__ double rd<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <> __device__ __forceinline__ double rd<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }

template <typename I> __device__ __forceinline__ I sat(double v, double lo, double hi) {
  if (isnan(v)) return I(0);
  v = trunc(v);
  return I(v <= lo ? lo : (v >= hi ? hi : v));
}
template <typename T> __device__ __forceinline__ void wr(T* p, int64_t i, double v);
template <> __device__ __forceinline__ void wr<float>(float* p, int64_t i, double v) { p[i] = float(v); }
template <> __device__ __forceinline__ void wr<__half>(__half* p, int64_t i, double v) { p[i] = __float2half_rn(float(v)); }
template <> __device__ __forceinline__ void wr<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, double v) { p[i] = __float2bfloat16_rn(float(v)); }
template <> __device__ __forceinline__ void wr<int32_t>(int32_t* p, int64_t i, double v) { p[i] = sat<int32_t>(v, -2147483648.0, 2147483647.0); }
template <> __device__ __forceinline__ void wr<int64_t>(int64_t* p, int64_t i, double v) {
  p[i] = isnan(v) ? 0 : (v <= -9.2233720368547758e18 ? INT64_MIN : (v >= 9.2233720368547758e18 ? INT64_MAX : int64_t(trunc(v))));
}
template <> __device__ __forceinline__ void wr<int8_t>(int8_t* p, int64_t i, double v) { p[i] = sat<int8_t>(v, -128.0, 127.0); }
template <> __device__ __forceinline__ void wr<uint8_t>(uint8_t* p, int64_t i, double v) { p[i] = sat<uint8_t>(v, 0.0, 255.0); }

template <typename T> __device__ __forceinline__ T add1(T a, T b) { return T(a + b); }
template <> __device__ __forceinline__ __half add1<__half>(__half a, __half b) { return __float2half_rn(__half2float(a) + __half2float(b)); }
template <> __device__ __forceinline__ __nv_bfloat16 add1<__nv_bfloat16>(__nv_bfloat16 a, __nv_bfloat16 b) {
  return __float2bfloat16_rn(__bfloat162float(a) + __bfloat162float(b));
}

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* o, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    o[i] = add1(a[i], b[i]);
}

template <typename S, typename D>
__global__ void cast_kernel(const S* s, D* d, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    wr<D>(d, i, rd<S>(s, i));
}

template <typename D>
__global__ void fill_kernel(D* d, int64_t n, double v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    wr<D>(d, i, v);
}

dim3 grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256, cap = int64_t(sm_count()) * 8;
  return dim3(unsigned(blocks < 1 ? 1 : (blocks > cap ? cap : blocks)));
}

// Calls f(T*) with the C++ type of a dtype.
template <typename F> void with_type(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(static_cast<float*>(nullptr)); break;
    case DType::F16: f(static_cast<__half*>(nullptr)); break;
    case DType::BF16: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    case DType::I32: f(static_cast<int32_t*>(nullptr)); break;
    case DType::I64: f(static_cast<int64_t*>(nullptr)); break;
    case DType::I8: f(static_cast<int8_t*>(nullptr)); break;
    case DType::U8: f(static_cast<uint8_t*>(nullptr)); break;
  }
}

}  // namespace

void add(const void* a, const void* b, void* out, int64_t n, DType dtype, void* stream) {
  if (n == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    add_kernel<T><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n);
  });
  check_launch("add");
}

void cast(const void* src, DType st, void* dst, DType dt, int64_t n, void* stream) {
  if (n == 0) return;
  with_type(st, [&](auto* stag) {
    using S = std::remove_pointer_t<decltype(stag)>;
    with_type(dt, [&](auto* dtag) {
      using D = std::remove_pointer_t<decltype(dtag)>;
      cast_kernel<S, D><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  check_launch("cast");
}

void fill(void* dst, DType dtype, int64_t n, double value, void* stream) {
  if (n == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    fill_kernel<T><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<T*>(dst), n, value);
  });
  check_launch("fill");
}

}  // namespace llmk::cuda
