#include "elementwise.h"
#include "../core/convert.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;
using convert::Elem;

template <DType D> void add_typed(const void* a_, const void* b_, void* o_, int64_t n) {
  using T = typename Elem<D>::T;
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  T* o = static_cast<T*>(o_);
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    if constexpr (D == DType::F32) {
      for (int64_t i = s; i < e; i++) o[i] = a[i] + b[i];
    } else if constexpr (D == DType::F16) {
      for (int64_t i = s; i < e; i++) o[i] = f32_to_f16(f16_to_f32(a[i]) + f16_to_f32(b[i]));
    } else if constexpr (D == DType::BF16) {
      for (int64_t i = s; i < e; i++) o[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
    } else {
      for (int64_t i = s; i < e; i++) o[i] = convert::add_wrapping(a[i], b[i]);
    }
  });
}

}  // namespace

void add(const void* a, const void* b, void* out, int64_t n, DType dtype) {
  convert::dispatch(dtype, [&](auto d) { add_typed<decltype(d)::value>(a, b, out, n); });
}

void cast(const void* src, DType st, void* dst, DType dt, int64_t n) {
  convert::dispatch(st, [&](auto s) {
    convert::dispatch(dt, [&](auto d) {
      constexpr DType S = decltype(s)::value, D = decltype(d)::value;
      auto* in = static_cast<const typename Elem<S>::T*>(src);
      auto* out = static_cast<typename Elem<D>::T*>(dst);
      parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) convert::convert_one<S, D>(in, out, i);
      });
    });
  });
}

void fill(void* dst, DType dtype, int64_t n, double value) {
  convert::dispatch(dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    const typename Elem<D>::T v = convert::from_real<D>(value);
    auto* out = static_cast<typename Elem<D>::T*>(dst);
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) out[i] = v;
    });
  });
}

}  // namespace llmk::cpu
