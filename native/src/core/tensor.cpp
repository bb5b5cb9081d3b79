#include "tensor.h"

namespace llmk {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t checked_numel(const Shape& shape, DType dtype) {
  const int64_t limit = (int64_t(1) << 62) / int64_t(dtype_size(dtype));
  int64_t n = 1;
  for (int64_t d : shape) {
    LLMK_CHECK(d >= 0, Shape, "negative dimension in shape %s", shape_str(shape).c_str());
    if (d != 0 && n > limit / d)
      throw Error(ErrCode::Shape, "element count of shape " + shape_str(shape) + " overflows");
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.numel_ = checked_numel(shape, dtype);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = Storage::allocate(t.numel_ * int64_t(dtype_size(dtype)), device);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  int64_t n = checked_numel(shape, dtype_);
  LLMK_CHECK(n == numel_, Shape, "cannot reshape %s (%lld elements) to %s", shape_str(shape_).c_str(),
             (long long)numel_, shape_str(shape).c_str());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::narrow0(int64_t start, int64_t len) const {
  LLMK_CHECK(ndim() >= 1, Shape, "narrow needs a tensor with at least one dimension");
  LLMK_CHECK(start >= 0 && len >= 0 && start <= shape_[0] - len, Index,
             "narrow(0, %lld, %lld) is out of range for dimension 0 of size %lld", (long long)start,
             (long long)len, (long long)shape_[0]);
  Tensor t = *this;
  int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  t.shape_[0] = len;
  t.numel_ = row * len;
  t.offset_ += start * row * int64_t(dtype_size(dtype_));
  return t;
}

void check_dtype(const Tensor& t, DType want, const char* op, const char* name) {
  LLMK_CHECK(t.dtype() == want, DType, "%s: %s must be %s, got %s", op, name, dtype_name(want), dtype_name(t.dtype()));
}
void check_float_dtype(const Tensor& t, const char* op, const char* name) {
  LLMK_CHECK(is_floating(t.dtype()), DType, "%s: %s must be float32, float16 or bfloat16, got %s", op, name,
             dtype_name(t.dtype()));
}
void check_ndim(const Tensor& t, int nd, const char* op, const char* name) {
  LLMK_CHECK(t.ndim() == nd, Shape, "%s: %s must have %d dimensions, got shape %s", op, name, nd,
             shape_str(t.shape()).c_str());
}
void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LLMK_CHECK(a.device() == b.device(), Device, "%s: tensors are on different devices (%s and %s)", op,
             a.device().str().c_str(), b.device().str().c_str());
}

}  // namespace llmk
