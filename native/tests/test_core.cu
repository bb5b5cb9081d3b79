// Native GPU test of the runtime kernels (add, cast, fill, matmul) against their CPU twins, and of the
// runtime's stream-ordered memory across streams.
// Paths: every dtype and dtype pair; n = 1, tails and grid-stride sizes (more elements than the
// capped grid has threads); pointers one element off alignment; integer overflow (add wraps),
// saturating and NaN casts, integers that need more bits than the destination; matmul tails in
// M/N/K, K = 0 and an A taller than one launch's grid (two row bands).
// Outputs are poisoned (0xFF bytes) before each launch, so an unwritten element fails.
#include <cstring>
#include "test_util.h"
#include "../src/core/half.h"
#include "../src/core/stream.h"
#include "../src/core/tensor.h"
#include "../src/cpu/elementwise.h"
#include "../src/cpu/matmul.h"
#include "../src/cuda/elementwise.h"
#include "../src/cuda/matmul.h"
#include "../src/ops/matmul.h"
#include "../src/ops/tensor_ops.h"

using namespace llmk_test;
using llmk::DType;

namespace {

const DType kAll[] = {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::I8, DType::U8};
std::string dn(DType t) { return llmk::dtype_name(t); }

// n random elements of dtype t as raw bytes: floats (normal, wide exponents, NaN, ±Inf, values near
// the integer bounds) or integers (every bit pattern, so every magnitude and the extremes).
std::vector<uint8_t> random_bytes(size_t n, DType t) {
  const size_t es = llmk::dtype_size(t);
  std::vector<uint8_t> out(n * es);
  if (!llmk::is_floating(t)) {
    for (auto& b : out) b = uint8_t(rng()());
    return out;
  }
  std::vector<float> f = randn(n, 1.f);
  const float special[] = {NAN, INFINITY, -INFINITY, 0.f, -0.f, 2147483648.f, -2147483648.f, 9.2233720368547758e18f,
                           -9.3e18f, 255.5f, -128.5f, 65519.f, 65520.f, 3.0e38f, 1e-40f};
  for (size_t i = 0; i < n; i++) {
    uint64_t r = rng()() % 8;
    if (r == 0) f[i] = special[rng()() % (sizeof special / sizeof *special)];
    else if (r == 1) f[i] = std::ldexp(f[i], int(rng()() % 200) - 100);
  }
  llmk::cpu::cast(f.data(), DType::F32, out.data(), t, int64_t(n));
  return out;
}

// Element-exact comparison (the kernels share core/convert.h, so results must be bit-identical);
// NaNs compare equal whatever their payload.
bool same_elements(const std::vector<uint8_t>& got, const std::vector<uint8_t>& ref, DType t, size_t off_bytes, size_t n,
                   std::string* why) {
  const size_t es = llmk::dtype_size(t);
  for (size_t i = 0; i < n; i++) {
    const uint8_t* g = got.data() + off_bytes + i * es;
    const uint8_t* r = ref.data() + i * es;
    if (std::memcmp(g, r, es) == 0) continue;
    if (llmk::is_floating(t)) {
      float gf = llmk::load_as_f32(g, 0, int(t)), rf = llmk::load_as_f32(r, 0, int(t));
      if (std::isnan(gf) && std::isnan(rf)) continue;
    }
    *why = "first difference at element " + std::to_string(i);
    return false;
  }
  return true;
}

// misalign: the device pointers are shifted by one element from the allocation's start.
void test_add(size_t n, DType t, bool misalign = false) {
  const size_t es = llmk::dtype_size(t), off = misalign ? es : 0;
  auto a = random_bytes(n + 1, t), b = random_bytes(n + 1, t);
  std::vector<uint8_t> ref(n * es);
  llmk::cpu::add(a.data() + off, b.data() + off, ref.data(), int64_t(n), t);
  DevBuf<uint8_t> da(a), db(b), dout((n + 1) * es);
  dout.poison();
  llmk::cuda::add(da.p + off, db.p + off, dout.p + off, int64_t(n), t, nullptr);
  TCUDA(cudaDeviceSynchronize());
  std::string why;
  bool ok = same_elements(dout.download(), ref, t, off, n, &why);
  report("add " + dn(t) + " n=" + std::to_string(n) + (misalign ? " misaligned" : ""), ok, why);
}

void test_cast(size_t n, DType from, DType to, bool misalign = false) {
  const size_t ofs = misalign ? llmk::dtype_size(from) : 0, ofd = misalign ? llmk::dtype_size(to) : 0;
  auto a = random_bytes(n + 1, from);
  std::vector<uint8_t> ref(n * llmk::dtype_size(to));
  llmk::cpu::cast(a.data() + ofs, from, ref.data(), to, int64_t(n));
  DevBuf<uint8_t> da(a), dout((n + 1) * llmk::dtype_size(to));
  dout.poison();
  llmk::cuda::cast(da.p + ofs, from, dout.p + ofd, to, int64_t(n), nullptr);
  TCUDA(cudaDeviceSynchronize());
  std::string why;
  bool ok = same_elements(dout.download(), ref, to, ofd, n, &why);
  report("cast " + dn(from) + "->" + dn(to) + " n=" + std::to_string(n) + (misalign ? " misaligned" : ""), ok, why);
}

void test_fill(size_t n, DType t, double v) {
  std::vector<uint8_t> ref(n * llmk::dtype_size(t));
  llmk::cpu::fill(ref.data(), t, int64_t(n), v);
  DevBuf<uint8_t> dout(ref.size());
  dout.poison();
  llmk::cuda::fill(dout.p, t, int64_t(n), v, nullptr);
  TCUDA(cudaDeviceSynchronize());
  std::string why;
  bool ok = same_elements(dout.download(), ref, t, 0, n, &why);
  report("fill " + dn(t) + " n=" + std::to_string(n) + " value=" + std::to_string(v), ok, why);
}

std::vector<uint8_t> as_bytes(const std::vector<float>& f, DType t) {
  std::vector<uint8_t> out(f.size() * llmk::dtype_size(t));
  llmk::cpu::cast(f.data(), DType::F32, out.data(), t, int64_t(f.size()));
  return out;
}
std::vector<float> to_f32(const uint8_t* b, DType t, size_t n) {
  std::vector<float> out(n);
  llmk::cpu::cast(b, t, out.data(), DType::F32, int64_t(n));
  return out;
}

void test_matmul(int64_t M, int64_t N, int64_t K, DType t, bool misalign = false) {
  const size_t es = llmk::dtype_size(t), off = misalign ? es : 0;
  auto a = as_bytes(randn(size_t(M * K) + 1), t), b = as_bytes(randn(size_t(K * N) + 1), t);
  const size_t n = size_t(M * N);
  std::vector<uint8_t> ref(n * es);
  llmk::cpu::matmul(a.data() + off, b.data() + off, ref.data(), M, N, K, t);
  DevBuf<uint8_t> da(a), db(b), dout((n + 1) * es);
  dout.poison();
  llmk::cuda::matmul(da.p + off, db.p + off, dout.p + off, M, N, K, t, nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto got = dout.download();
  auto gf = to_f32(got.data() + off, t, n), rf = to_f32(ref.data(), t, n);
  double e = rel_l2(gf.data(), rf.data(), n);
  bool ok = K == 0 ? std::memcmp(got.data() + off, ref.data(), n * es) == 0 : e < (t == DType::F32 ? 1e-5 : 1e-2);
  report("matmul " + dn(t) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
             (misalign ? " misaligned" : ""), ok, "relL2=" + std::to_string(e));
}

// A tensor allocated on stream A, read by a long matmul on stream B, then freed while the matmul may
// still run: the free must wait for B, so memory handed out again on A (and overwritten there at
// once) cannot corrupt B's result. Compared bit for bit with the same matmul run without the race.
void test_cross_stream_free() {
  using namespace llmk;
  const Device dev{DeviceKind::CUDA, 0};
  const int64_t n = 4096;
  auto host_x = randn(size_t(n * n)), host_w = randn(size_t(n * n));
  auto stream_a = current_stream(dev);
  Tensor w = ops::from_host(host_w.data(), n * n * 4, {n, n}, DType::F32, dev);
  Tensor want;
  {
    Tensor x = ops::from_host(host_x.data(), n * n * 4, {n, n}, DType::F32, dev);
    want = ops::matmul(x, w);
  }
  Tensor x = ops::from_host(host_x.data(), n * n * 4, {n, n}, DType::F32, dev);  // allocated on A
  auto stream_b = Stream::create(dev);
  set_current_stream(stream_b);
  Tensor got = ops::matmul(x, w);  // reads x on B (tens of ms)
  set_current_stream(stream_a);
  x = Tensor();  // freed on A, stream-ordered
  Tensor reuse = Tensor::empty({n, n}, DType::F32, dev);  // likely the same memory, from A's pool
  cuda::fill(reuse.data(), DType::F32, n * n, double(NAN), stream_a->cuda());
  stream_b->synchronize();
  stream_a->synchronize();
  std::vector<float> g(size_t(n * n)), r(size_t(n * n));
  ops::copy_to_host(got, g.data(), stream_a);
  ops::copy_to_host(want, r.data(), stream_a);
  bool ok = std::memcmp(g.data(), r.data(), g.size() * 4) == 0;
  report("free on the allocation stream waits for another stream's use", ok);
}

}  // namespace

int main() {
  run_seed();
  const bool small = std::getenv("LLMK_TEST_SMALL") != nullptr;
  const size_t big = small ? 5000 : (3u << 20) + 7;  // more elements than the capped grid's threads
  for (DType t : kAll) {
    for (size_t n : {size_t(1), size_t(1000), big}) test_add(n, t);
    test_add(333, t, true);
  }
  for (DType f : kAll)
    for (DType to : kAll) {
      test_cast(small ? 777 : 100003, f, to);
      test_cast(129, f, to, true);
    }
  for (DType t : kAll)
    for (double v : {0.0, -2.5, 1.0 + 1.0 / 2048 + 1e-12, 3e9, -1e20, 1e300, double(NAN), double(INFINITY)})
      test_fill(small ? 300 : 70001, t, v);
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    test_matmul(1, 1, 1, t);
    test_matmul(65, 33, 130, t);
    test_matmul(17, 300, 513, t);
    test_matmul(5, 7, 0, t);
    test_matmul(63, 65, 17, t, true);
    if (!small) test_matmul(512, 1024, 768, t);
  }
  if (!small) {
    test_matmul(65535 * 64 + 3, 2, 3, DType::F32);  // two launches over row bands
    test_cross_stream_free();
  }
  return finish();
}
