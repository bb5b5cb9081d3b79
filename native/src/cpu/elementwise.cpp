#include "elementwise.h"
#include <cmath>
#include <limits>
#include "../core/half.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

template <typename T>
void add_typed(const T* a, const T* b, T* o, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) o[i] = T(a[i] + b[i]);
  });
}

template <uint16_t (*To)(float), float (*From)(uint16_t)>
void add_half(const uint16_t* a, const uint16_t* b, uint16_t* o, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) o[i] = To(From(a[i]) + From(b[i]));
  });
}

double read(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::I8: return static_cast<const int8_t*>(p)[i];
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

template <typename I>
I saturate(double v) {
  if (std::isnan(v)) return 0;
  v = std::trunc(v);
  if (v <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return I(v);
}

void write(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = float(v); break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(float(v)); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = saturate<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = saturate<int64_t>(v); break;
    case DType::I8: static_cast<int8_t*>(p)[i] = saturate<int8_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = saturate<uint8_t>(v); break;
  }
}

}  // namespace

void add(const void* a, const void* b, void* out, int64_t n, DType dtype) {
  switch (dtype) {
    case DType::F32: add_typed(static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(out), n); break;
    case DType::F16: add_half<f32_to_f16, f16_to_f32>(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), static_cast<uint16_t*>(out), n); break;
    case DType::BF16: add_half<f32_to_bf16, bf16_to_f32>(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), static_cast<uint16_t*>(out), n); break;
    case DType::I32: add_typed(static_cast<const int32_t*>(a), static_cast<const int32_t*>(b), static_cast<int32_t*>(out), n); break;
    case DType::I64: add_typed(static_cast<const int64_t*>(a), static_cast<const int64_t*>(b), static_cast<int64_t*>(out), n); break;
    case DType::I8: add_typed(static_cast<const int8_t*>(a), static_cast<const int8_t*>(b), static_cast<int8_t*>(out), n); break;
    case DType::U8: add_typed(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), static_cast<uint8_t*>(out), n); break;
  }
}

void cast(const void* src, DType st, void* dst, DType dt, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) write(dst, dt, i, read(src, st, i));
  });
}

void fill(void* dst, DType dtype, int64_t n, double value) {
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) write(dst, dtype, i, value);
  });
}

}  // namespace llmk::cpu
