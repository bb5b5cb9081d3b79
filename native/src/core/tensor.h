// Contiguous row-major tensor: storage + byte offset + shape + dtype. Cheap to copy (shared_ptr).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "device.h"
#include "dtype.h"
#include "error.h"
#include "storage.h"

namespace llmk {

using Shape = std::vector<int64_t>;

// Number of elements, refusing negative dims and products that overflow int64 (or 2^62 bytes).
int64_t checked_numel(const Shape& shape, DType dtype);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device);

  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_[size_t(i < 0 ? i + ndim() : i)]; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  int64_t numel() const { return numel_; }
  int64_t nbytes() const { return numel_ * int64_t(dtype_size(dtype_)); }
  bool defined() const { return storage_ != nullptr; }

  // On CUDA this also records the current stream on the storage (see Storage::note_use): call it
  // on the thread and with the current stream that the work using the pointer is enqueued on.
  void* data() const {
    if (storage_->device().kind != DeviceKind::CPU) storage_->note_use();
    return static_cast<char*>(storage_->data()) + offset_;
  }
  template <typename T> T* data_as() const { return static_cast<T*>(data()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  int64_t offset_bytes() const { return offset_; }

  // Views sharing storage.
  Tensor reshape(const Shape& shape) const;
  Tensor narrow0(int64_t start, int64_t len) const;

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
  int64_t numel_ = 0;
};

// Contract helpers for the ops layer (each throws llmk::Error with a clear message).
void check_dtype(const Tensor& t, DType want, const char* op, const char* name);
void check_float_dtype(const Tensor& t, const char* op, const char* name);
void check_ndim(const Tensor& t, int nd, const char* op, const char* name);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace llmk
