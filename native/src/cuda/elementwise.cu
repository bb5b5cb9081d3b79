#include "elementwise.h"
#include "../core/convert.h"
#include "common.cuh"

namespace llmk::cuda {
namespace {

using convert::Elem;

// Grid-stride loops: any n (64-bit index), any alignment (scalar accesses).
template <DType D>
__global__ void add_kernel(const typename Elem<D>::T* a, const typename Elem<D>::T* b, typename Elem<D>::T* o, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (D == DType::F32) o[i] = a[i] + b[i];
    else if constexpr (D == DType::F16) o[i] = f32_to_f16(f16_to_f32(a[i]) + f16_to_f32(b[i]));
    else if constexpr (D == DType::BF16) o[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
    else o[i] = convert::add_wrapping(a[i], b[i]);
  }
}

template <DType S, DType D>
__global__ void cast_kernel(const typename Elem<S>::T* s, typename Elem<D>::T* d, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    convert::convert_one<S, D>(s, d, i);
}

template <typename T>
__global__ void fill_kernel(T* d, int64_t n, T v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) d[i] = v;
}

dim3 grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256, cap = int64_t(sm_count()) * 8;
  return dim3(unsigned(blocks < 1 ? 1 : (blocks > cap ? cap : blocks)));
}

}  // namespace

void add(const void* a, const void* b, void* out, int64_t n, DType dtype, void* stream) {
  if (n == 0) return;
  convert::dispatch(dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    using T = typename Elem<D>::T;
    add_kernel<D><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                              static_cast<T*>(out), n);
  });
  check_launch("add");
}

void cast(const void* src, DType st, void* dst, DType dt, int64_t n, void* stream) {
  if (n == 0) return;
  convert::dispatch(st, [&](auto s) {
    convert::dispatch(dt, [&](auto d) {
      constexpr DType S = decltype(s)::value, D = decltype(d)::value;
      cast_kernel<S, D><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<const typename Elem<S>::T*>(src),
                                                                    static_cast<typename Elem<D>::T*>(dst), n);
    });
  });
  check_launch("cast");
}

void fill(void* dst, DType dtype, int64_t n, double value, void* stream) {
  if (n == 0) return;
  convert::dispatch(dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    using T = typename Elem<D>::T;
    // Converted once on the host with the same function the CPU backend uses.
    fill_kernel<T><<<grid_for(n), 256, 0, as_stream(stream)>>>(static_cast<T*>(dst), n, convert::from_real<D>(value));
  });
  check_launch("fill");
}

}  // namespace llmk::cuda
