// Element conversion between any two dtypes, and integer wrap-around addition, shared by the CPU and
// CUDA cast/fill/add kernels so that both backends give bit-identical results.
//
// Semantics (the same as the float64 reference in test/reference/convert.ts):
// - to a floating dtype: one round-to-nearest-even of the exact value. Integers above 2^24 (float32)
//   or 2^53 (int64 through double) are not rounded twice: the value travels as a round-to-odd double
//   and float, which keeps the final rounding correct (round-to-odd into >= p+2 bits, then RNE to p).
// - floating to integer: truncate toward zero, saturate at the type's range, NaN -> 0.
// - integer to integer: exact, saturating at the destination's range (int64 never goes through double).
// - integer add wraps around (two's complement), like NumPy and PyTorch.
#pragma once
#include <cstdint>
#include <type_traits>
#include "dtype.h"
#include "half.h"

namespace llmk::convert {

template <DType D> struct Elem;  // storage type of one element
template <> struct Elem<DType::F32> { using T = float; };
template <> struct Elem<DType::F16> { using T = uint16_t; };
template <> struct Elem<DType::BF16> { using T = uint16_t; };
template <> struct Elem<DType::I32> { using T = int32_t; };
template <> struct Elem<DType::I64> { using T = int64_t; };
template <> struct Elem<DType::I8> { using T = int8_t; };
template <> struct Elem<DType::U8> { using T = uint8_t; };

template <DType D> constexpr bool kFloating = D == DType::F32 || D == DType::F16 || D == DType::BF16;

template <DType D> struct Limits;  // integer ranges, as int64
template <> struct Limits<DType::I32> { static constexpr int64_t lo = -2147483648LL, hi = 2147483647LL; };
template <> struct Limits<DType::I64> { static constexpr int64_t lo = INT64_MIN, hi = INT64_MAX; };
template <> struct Limits<DType::I8> { static constexpr int64_t lo = -128, hi = 127; };
template <> struct Limits<DType::U8> { static constexpr int64_t lo = 0, hi = 255; };

LLMK_HD uint64_t f64_bits(double d) {
#if defined(__CUDA_ARCH__)
  return uint64_t(__double_as_longlong(d));
#else
  uint64_t u; std::memcpy(&u, &d, 8); return u;
#endif
}
LLMK_HD double bits_f64(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d; std::memcpy(&d, &u, 8); return d;
#endif
}

// The float nearest to v whose last mantissa bit is odd when v is not a float (round to odd).
LLMK_HD float f64_to_f32_odd(double v) {
  float f = float(v);
  double back = double(f);
  if (back == v || v != v) return f;  // exact, or NaN
  uint32_t u = f32_bits(f);
  if (u & 1u) return f;
  // f is even: the odd neighbour on v's side. Magnitude bits +1 moves away from zero, -1 toward it
  // (from Inf that is FLT_MAX, from 0 the smallest subnormal).
  bool f_beyond = (back < 0 ? -back : back) > (v < 0 ? -v : v);
  return bits_f32(f_beyond ? u - 1u : u + 1u);
}

// int64 as a double, rounded to odd when it needs more than 53 bits.
LLMK_HD double i64_to_f64_odd(int64_t v) {
  if (v >= -(int64_t(1) << 53) && v <= (int64_t(1) << 53)) return double(v);
  uint64_t a = v < 0 ? 0 - uint64_t(v) : uint64_t(v);
  int shift = 0;
  while ((a >> shift) >= (uint64_t(1) << 53)) shift++;  // 1..11
  uint64_t mant = a >> shift;
  if (a & ((uint64_t(1) << shift) - 1)) mant |= 1u;  // sticky bit: round to odd
  double d = double(mant) * double(uint64_t(1) << shift);  // exact: 53-bit mantissa, power-of-two scale
  return v < 0 ? -d : d;
}

template <DType D> LLMK_HD typename Elem<D>::T saturate_int(int64_t v) {
  using T = typename Elem<D>::T;
  return T(v < Limits<D>::lo ? Limits<D>::lo : (v > Limits<D>::hi ? Limits<D>::hi : v));
}

// v is exact, or rounded to odd with at least 53 bits (an int64 source).
template <DType D> LLMK_HD typename Elem<D>::T from_real(double v) {
  using T = typename Elem<D>::T;
  if constexpr (D == DType::F32) return float(v);
  else if constexpr (D == DType::F16) return f32_to_f16(f64_to_f32_odd(v));
  else if constexpr (D == DType::BF16) return f32_to_bf16(f64_to_f32_odd(v));
  else {
    if (v != v) return T(0);
    // Compare before converting: the bounds as doubles are exact for every type but int64, where
    // hi = 2^63 - 1 rounds up to 2^63, so ">=" catches exactly the values that overflow.
    if (v <= double(Limits<D>::lo)) return T(Limits<D>::lo);
    if (v >= double(Limits<D>::hi)) return T(Limits<D>::hi);
    return T(int64_t(v));  // int64_t() truncates toward zero
  }
}

template <DType D> LLMK_HD typename Elem<D>::T from_int(int64_t v) {
  if constexpr (kFloating<D>) return from_real<D>(i64_to_f64_odd(v));
  else return saturate_int<D>(v);
}

template <DType S> LLMK_HD double load_real(const typename Elem<S>::T* p, int64_t i) {
  if constexpr (S == DType::F32) return double(p[i]);
  else if constexpr (S == DType::F16) return double(f16_to_f32(p[i]));
  else return double(bf16_to_f32(p[i]));
}

// Converts element i of src (dtype S) into element i of dst (dtype D).
template <DType S, DType D>
LLMK_HD void convert_one(const typename Elem<S>::T* src, typename Elem<D>::T* dst, int64_t i) {
  if constexpr (S == D) dst[i] = src[i];
  else if constexpr (kFloating<S>) dst[i] = from_real<D>(load_real<S>(src, i));
  else dst[i] = from_int<D>(int64_t(src[i]));
}

// a + b with two's-complement wrap-around for integers (signed overflow is undefined in C++).
template <typename T> LLMK_HD T add_wrapping(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return T(U(U(a) + U(b)));
}

// Host only: calls f(std::integral_constant<DType, D>{}) with the dtype as a compile-time constant.
template <typename F> void dispatch(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(std::integral_constant<DType, DType::F32>{}); break;
    case DType::F16: f(std::integral_constant<DType, DType::F16>{}); break;
    case DType::BF16: f(std::integral_constant<DType, DType::BF16>{}); break;
    case DType::I32: f(std::integral_constant<DType, DType::I32>{}); break;
    case DType::I64: f(std::integral_constant<DType, DType::I64>{}); break;
    case DType::I8: f(std::integral_constant<DType, DType::I8>{}); break;
    case DType::U8: f(std::integral_constant<DType, DType::U8>{}); break;
  }
}

}  // namespace llmk::convert
