// Creation, copies and conversions of tensors (the runtime ops every family relies on).
#pragma once
#include <cstdint>
#include <memory>
#include "../core/stream.h"
#include "../core/tensor.h"

namespace llmk::ops {

// Device from its parts; throws ERR_LLMK_UNAVAILABLE / ERR_LLMK_DEVICE when it cannot be used.
Device resolve_device(int kind, int index);

// A new tensor holding a copy of host bytes (nbytes must equal the tensor's size).
Tensor from_host(const void* data, int64_t nbytes, const Shape& shape, DType dtype, Device device);
Tensor full(const Shape& shape, DType dtype, Device device, double value);
// Seeded uniform [0,1) (normal=false) or standard normal values; identical on every device.
Tensor random(const Shape& shape, DType dtype, Device device, uint64_t seed, bool normal);
Tensor cast(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);
// Copies the tensor into host memory after the work queued on `stream` (may be called off the JS thread).
void copy_to_host(const Tensor& t, void* dst, const std::shared_ptr<Stream>& stream);

}  // namespace llmk::ops

namespace llmk::ops {
// Like from_host, from float32 values converted to dtype (used for half types given as Float32Array).
Tensor from_host_f32(const float* data, int64_t n, const Shape& shape, DType dtype, Device device);
// Copies to host (as float32, converting half types, when as_f32) once the work writing t is known to be
// done: no stream is waited for (toArray waits first, on the thread that waited).
void copy_ready_to_host(const Tensor& t, void* dst, bool as_f32);
// Copies to host as float32 (converting half types) after the work queued on `stream`.
void copy_to_host_f32(const Tensor& t, float* dst, const std::shared_ptr<Stream>& stream);
}  // namespace llmk::ops
