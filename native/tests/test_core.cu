// Native GPU test of the runtime kernels (add, cast, fill, matmul) against their CPU twins.
#include <cstring>
#include "test_util.h"
#include "../src/cpu/elementwise.h"
#include "../src/cpu/matmul.h"
#include "../src/cuda/elementwise.h"
#include "../src/cuda/matmul.h"
#include "../src/core/half.h"

using namespace llmk_test;
using llmk::DType;

static std::vector<uint8_t> as_bytes(const std::vector<float>& f, DType t) {
  std::vector<uint8_t> out(f.size() * llmk::dtype_size(t));
  llmk::cpu::cast(f.data(), DType::F32, out.data(), t, int64_t(f.size()));
  return out;
}
static std::vector<float> to_f32(const std::vector<uint8_t>& b, DType t, size_t n) {
  std::vector<float> out(n);
  llmk::cpu::cast(b.data(), t, out.data(), DType::F32, int64_t(n));
  return out;
}

static void test_add(size_t n, DType t) {
  auto a = as_bytes(randn(n), t), b = as_bytes(randn(n), t);
  std::vector<uint8_t> ref(a.size());
  llmk::cpu::add(a.data(), b.data(), ref.data(), int64_t(n), t);
  DevBuf<uint8_t> da(a), db(b), dout(a.size());
  dout.poison();
  llmk::cuda::add(da.p, db.p, dout.p, int64_t(n), t, nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto got = dout.download();
  double e = rel_l2(to_f32(got, t, n).data(), to_f32(ref, t, n).data(), n);
  report("add " + std::string(llmk::dtype_name(t)) + " n=" + std::to_string(n), e == 0.0, "relL2=" + std::to_string(e));
}

static void test_cast(size_t n, DType from, DType to) {
  auto v = randn(n, 100.f);
  auto a = as_bytes(v, from);
  std::vector<uint8_t> ref(n * llmk::dtype_size(to));
  llmk::cpu::cast(a.data(), from, ref.data(), to, int64_t(n));
  DevBuf<uint8_t> da(a), dout(ref.size());
  dout.poison();
  llmk::cuda::cast(da.p, from, dout.p, to, int64_t(n), nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto got = dout.download();
  bool ok = std::memcmp(got.data(), ref.data(), ref.size()) == 0;
  report(std::string("cast ") + llmk::dtype_name(from) + "->" + llmk::dtype_name(to) + " n=" + std::to_string(n), ok);
}

static void test_matmul(int64_t M, int64_t N, int64_t K, DType t) {
  auto a = as_bytes(randn(size_t(M * K)), t), b = as_bytes(randn(size_t(K * N)), t);
  std::vector<uint8_t> ref(size_t(M * N) * llmk::dtype_size(t));
  llmk::cpu::matmul(a.data(), b.data(), ref.data(), M, N, K, t);
  DevBuf<uint8_t> da(a), db(b), dout(ref.size());
  dout.poison();
  llmk::cuda::matmul(da.p, db.p, dout.p, M, N, K, t, nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto got = dout.download();
  size_t n = size_t(M * N);
  double e = rel_l2(to_f32(got, t, n).data(), to_f32(ref, t, n).data(), n);
  double tol = t == DType::F32 ? 1e-5 : 1e-2;
  report("matmul " + std::string(llmk::dtype_name(t)) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
         std::to_string(K), e < tol, "relL2=" + std::to_string(e));
}

int main() {
  run_seed();
  bool small = std::getenv("LLMK_TEST_SMALL") != nullptr;
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I8}) {
    test_add(1, t);
    test_add(1000, t);
    if (!small) test_add(3 << 20, t);
  }
  for (DType f : {DType::F32, DType::F16, DType::BF16, DType::I32})
    for (DType to : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::I8, DType::U8}) test_cast(small ? 777 : 100003, f, to);
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    test_matmul(1, 1, 1, t);
    test_matmul(65, 33, 130, t);
    test_matmul(17, 300, 513, t);
    if (!small) test_matmul(512, 1024, 768, t);
  }
  return finish();
}
