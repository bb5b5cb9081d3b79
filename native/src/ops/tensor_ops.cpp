#include "tensor_ops.h"
#include "launch.h"
#include <cmath>
#include <cstring>
#include <vector>
#include "../core/cuda_runtime.h"
#include "../core/parallel.h"
#include "../cpu/elementwise.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/elementwise.h"
#endif

namespace llmk::ops {
namespace {

constexpr int kH2D = 1, kD2H = 2, kD2D = 3, kDefault = 4;  // cudaMemcpyKind values

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Counter-based: value i depends only on (seed, i), so every device and thread count agrees.
void random_fill(float* out, int64_t n, uint64_t seed, bool normal) {
  uint64_t key = splitmix64(seed);
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) {
      uint64_t r = splitmix64(key ^ uint64_t(i) * 0xd1342543de82ef95ull);
      double u1 = double(r >> 11) * (1.0 / 9007199254740992.0);
      if (!normal) { out[i] = float(u1); continue; }
      uint64_t r2 = splitmix64(r);
      double u2 = double(r2 >> 11) * (1.0 / 9007199254740992.0);
      out[i] = float(std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2));
    }
  });
}

}  // namespace

Device resolve_device(int kind, int index) {
  if (kind == int(DeviceKind::CPU)) return Device{};
  std::string why;
  if (!cuda_available(&why)) throw Error(ErrCode::Unavailable, "CUDA is unavailable: " + why);
  int n = cuda_device_count();
  LLMK_CHECK(index >= 0 && index < n, Device, "cuda:%d does not exist (%d CUDA device(s))", index, n);
  return Device{DeviceKind::CUDA, index};
}

Tensor from_host(const void* data, int64_t nbytes, const Shape& shape, DType dtype, Device device) {
  int64_t n = checked_numel(shape, dtype);
  LLMK_CHECK(n * int64_t(dtype_size(dtype)) == nbytes, Shape, "data has %lld bytes but shape %s of %s needs %lld",
             (long long)nbytes, shape_str(shape).c_str(), dtype_name(dtype), (long long)(n * int64_t(dtype_size(dtype))));
  Tensor t = Tensor::empty(shape, dtype, device);
  if (nbytes == 0) return t;
  if (device.is_cpu()) std::memcpy(t.data(), data, size_t(nbytes));
  else cuda_memcpy(t.data(), data, nbytes, kH2D, cuda_launch(device, "fromHost").stream);
  return t;
}

Tensor full(const Shape& shape, DType dtype, Device device, double value) {
  Tensor t = Tensor::empty(shape, dtype, device);
  if (device.is_cpu()) {
    enqueue_cpu([t, value] { cpu::fill(t.data(), t.dtype(), t.numel(), value); }, t.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda::fill(t.data(), dtype, t.numel(), value, cuda_launch(device, "full").stream);
#endif
  }
  return t;
}

Tensor random(const Shape& shape, DType dtype, Device device, uint64_t seed, bool normal) {
  LLMK_CHECK(is_floating(dtype), DType, "%s: dtype must be float32, float16 or bfloat16, got %s",
             normal ? "randn" : "rand", dtype_name(dtype));
  int64_t n = checked_numel(shape, dtype);
  std::vector<float> host(static_cast<size_t>(n));
  random_fill(host.data(), n, seed, normal);
  Tensor f = from_host(host.data(), n * 4, shape, DType::F32, device);
  return dtype == DType::F32 ? f : cast(f, dtype);
}

Tensor cast(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  if (t.device().is_cpu()) {
    enqueue_cpu([t, out] { cpu::cast(t.data(), t.dtype(), out.data(), out.dtype(), t.numel()); }, t.nbytes() + out.nbytes());
  } else {
#ifdef LLMK_WITH_CUDA
    cuda::cast(t.data(), t.dtype(), out.data(), dtype, t.numel(), cuda_launch(t.device(), "cast").stream);
#endif
  }
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), device);
  const Device src = t.device();
  if (src.is_cpu() && device.is_cpu()) {
    enqueue_cpu([t, out] { std::memcpy(out.data(), t.data(), size_t(t.nbytes())); }, 2 * t.nbytes());
    return out;
  }
#ifdef LLMK_WITH_CUDA
  if (src == device) {  // same GPU: stream-ordered copy, no host wait
    void* stream = cuda_launch(device, "to").stream;
    if (t.nbytes()) cuda_memcpy_async(out.data(), t.data(), t.nbytes(), kD2D, stream);
    return out;
  }
#endif
  // Crossing devices: wait for the source's queued work, then copy on the destination's stream.
  current_stream(src)->synchronize();
  if (t.nbytes() == 0) return out;
  if (src.is_cpu()) {
    cuda_memcpy(out.data(), t.data(), t.nbytes(), kH2D, cuda_launch(device, "to").stream);
  } else if (device.is_cpu()) {
    cuda_memcpy(out.data(), t.data(), t.nbytes(), kD2H, cuda_launch(src, "to").stream);
  } else {
    cuda_memcpy(out.data(), t.data(), t.nbytes(), kDefault, cuda_launch(device, "to").stream);  // across GPUs (UVA)
  }
  return out;
}

void copy_to_host(const Tensor& t, void* dst, const std::shared_ptr<Stream>& stream) {
  stream->synchronize();
  if (t.nbytes() == 0) return;
  if (t.device().is_cpu()) {
    std::memcpy(dst, t.data(), size_t(t.nbytes()));
  } else {
    cuda_set_device(t.device().index);
    cuda_memcpy(dst, t.data(), t.nbytes(), kD2H, stream->cuda());
  }
}

}  // namespace llmk::ops

namespace llmk::ops {

Tensor from_host_f32(const float* data, int64_t n, const Shape& shape, DType dtype, Device device) {
  LLMK_CHECK(is_floating(dtype), DType, "float32 data can only fill a floating dtype, not %s", dtype_name(dtype));
  LLMK_CHECK(checked_numel(shape, dtype) == n, Shape, "data has %lld elements but shape %s needs %lld", (long long)n,
             shape_str(shape).c_str(), (long long)checked_numel(shape, dtype));
  if (dtype == DType::F32) return from_host(data, n * 4, shape, dtype, device);
  std::vector<uint16_t> h(static_cast<size_t>(n));
  cpu::cast(data, DType::F32, h.data(), dtype, n);
  return from_host(h.data(), n * 2, shape, dtype, device);
}

void copy_ready_to_host(const Tensor& t, void* dst, bool as_f32) {
  if (t.nbytes() == 0) return;
  const bool convert = as_f32 && t.dtype() != DType::F32;
  const void* src = static_cast<const char*>(t.storage()->data()) + t.offset_bytes();  // records no stream use
  if (t.device().is_cpu()) {
    if (convert) cpu::cast(src, t.dtype(), dst, DType::F32, t.numel());
    else std::memcpy(dst, src, size_t(t.nbytes()));
    return;
  }
  std::vector<uint8_t> raw(convert ? size_t(t.nbytes()) : 0);
  cuda_set_device(t.device().index);
  cuda_memcpy_sync(convert ? raw.data() : dst, src, t.nbytes(), kD2H);
  if (convert) cpu::cast(raw.data(), t.dtype(), dst, DType::F32, t.numel());
}

void copy_to_host_f32(const Tensor& t, float* dst, const std::shared_ptr<Stream>& stream) {
  if (t.dtype() == DType::F32) { copy_to_host(t, dst, stream); return; }
  std::vector<uint8_t> raw(size_t(t.nbytes()));
  copy_to_host(t, raw.data(), stream);
  cpu::cast(raw.data(), t.dtype(), dst, DType::F32, t.numel());
}

}  // namespace llmk::ops
