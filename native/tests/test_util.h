// Helpers for the native GPU test programs: seeded random data, relative L2 error, poisoning,
// device buffers, and a PASS/FAIL report. Each program exits non-zero when any check failed.
#pragma once
#include <cuda_runtime.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace llmk_test {

inline uint64_t run_seed() {
  static uint64_t seed = [] {
    const char* e = std::getenv("LLMK_TEST_SEED");
    uint64_t s = e ? std::strtoull(e, nullptr, 10) : std::random_device{}();
    std::printf("seed %llu (LLMK_TEST_SEED to repeat)\n", (unsigned long long)s);
    return s;
  }();
  return seed;
}

inline std::mt19937_64& rng() { static std::mt19937_64 g(run_seed()); return g; }

inline std::vector<float> randn(size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}

// ||a - b|| / ||b||; NaN anywhere (a NaN where b is not NaN) gives +inf.
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (std::isnan(b[i]) && std::isnan(a[i])) continue;
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    double d = double(a[i]) - double(b[i]);
    num += d * d; den += double(b[i]) * double(b[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline int& failures() { static int f = 0; return f; }

inline void report(const std::string& name, bool ok, const std::string& detail = "") {
  std::printf("%s  %s  %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) failures()++;
}

#define TCUDA(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
  std::printf("FAIL  CUDA %s at %s:%d: %s\n", #x, __FILE__, __LINE__, cudaGetErrorString(e_)); std::exit(2); } } while (0)

// Device buffer filled from / read back to host vectors. poison() fills with 0xFF bytes (NaN).
template <typename T> struct DevBuf {
  T* p = nullptr; size_t n = 0;
  explicit DevBuf(size_t n_) : n(n_) { TCUDA(cudaMalloc(&p, (n ? n : 1) * sizeof(T))); }
  DevBuf(const std::vector<T>& h) : DevBuf(h.size()) { upload(h); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  void upload(const std::vector<T>& h) { TCUDA(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const { std::vector<T> h(n); TCUDA(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost)); return h; }
  void poison() { TCUDA(cudaMemset(p, 0xFF, n * sizeof(T))); }
};

inline int finish() {
  TCUDA(cudaDeviceSynchronize());
  std::printf("%s: %d failure(s)\n", failures() ? "FAILED" : "OK", failures());
  return failures() ? 1 : 0;
}

}  // namespace llmk_test
