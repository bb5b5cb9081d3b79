// Native GPU test of the INT4 kernels: each CUDA kernel against the CPU implementation on fresh random
// data, at sizes hitting every path (tiny, tails, general, fast paths, every benchmark shape), with
// poisoned outputs. Prints PASS/FAIL lines; with LLMK_INT4_TIME=1 also device times of the bench shapes.
// LLMK_TEST_SMALL=1 (compute-sanitizer runs): small cases only (every path, no benchmark shapes).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../src/core/cuda_runtime.h"
#include "../src/core/dtype.h"
#include "../src/core/error.h"
#include "../src/core/half.h"
#include "../src/cpu/int4.h"
#include "../src/cuda/int4.h"
#include "../src/cuda/int4_lean.h"
#include "test_util.h"

using namespace llmk_test;
using llmk::DType;

namespace {

uint64_t xs_state = 0;
inline uint64_t xorshift() {
  xs_state ^= xs_state << 13; xs_state ^= xs_state >> 7; xs_state ^= xs_state << 17;
  return xs_state;
}
inline float urand() { return float(xorshift() >> 40) * (1.f / 16777216.f) * 2.f - 1.f; }  // [-1, 1)

std::vector<uint8_t> rand_bytes(size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(xorshift() >> 32);
  return v;
}
// Floats of dtype dt as raw storage bytes.
std::vector<uint8_t> rand_floats(size_t n, DType dt, float scale, float offset = 0.f) {
  std::vector<uint8_t> v(n * llmk::dtype_size(dt));
  for (size_t i = 0; i < n; i++) llmk::store_from_f32(v.data(), int64_t(i), int(dt), offset + scale * urand());
  return v;
}
std::vector<float> as_f32(const std::vector<uint8_t>& raw, DType dt) {
  const size_t n = raw.size() / llmk::dtype_size(dt);
  std::vector<float> f(n);
  for (size_t i = 0; i < n; i++) f[i] = llmk::load_as_f32(raw.data(), int64_t(i), int(dt));
  return f;
}

struct Weight {  // host canonical
  int64_t N, K, group;
  DType sdt;
  std::vector<uint8_t> q, s, z;  // z empty = symmetric
};

Weight rand_weight(int64_t N, int64_t K, int64_t group, DType sdt, bool zeros) {
  Weight w{N, K, group, sdt, rand_bytes(size_t(N * K / 2)), rand_floats(size_t(N * (K / group)), sdt, 0.01f, 0.02f), {}};
  if (zeros) { w.z = rand_bytes(size_t(N * (K / group))); for (auto& b : w.z) b &= 15; }
  return w;
}

struct DevWeight {
  DevBuf<uint8_t> q, s, z;
  bool prepared;
  DevWeight(const Weight& w, bool prepare)
      : q(std::max<size_t>(w.q.size(), size_t(llmk::cpu::int4_prepared_qbytes(w.N, w.K)))),
        s(w.s.size()), z(std::max<size_t>(w.z.size(), 1)), prepared(prepare) {
    if (!prepare) {
      TCUDA(cudaMemcpy(q.p, w.q.data(), w.q.size(), cudaMemcpyHostToDevice));
      s.upload(w.s);
      if (!w.z.empty()) z.upload(w.z);
      return;
    }
    DevBuf<uint8_t> cq(w.q), cs(w.s), cz(w.z.empty() ? std::vector<uint8_t>(1) : w.z);
    llmk::cuda::int4_prepare(cq.p, cs.p, int(llmk::dtype_size(w.sdt)), w.z.empty() ? nullptr : cz.p, w.N, w.K,
                             w.group, q.p, s.p, w.z.empty() ? nullptr : z.p, nullptr);
    TCUDA(cudaDeviceSynchronize());
  }
};

const char* dtn(DType d) { return llmk::dtype_name(d); }

// Candidate kernels (issue 17) are chosen by environment variables. A variant is a space-separated list
// of NAME=VALUE settings of those knobs; matmul_case runs each variant of g_variants on the same data.
const char* const kKnobs[] = {"LLMK_INT4_TILE", "LLMK_INT4_LEAN", "LLMK_INT4_F32SCALE", "LLMK_INT4_SPLITS",
                              "LLMK_INT4_LEAN_DEPTH", "LLMK_INT4_SWAPAB"};
std::vector<std::string> g_variants;
bool g_expect_lean = false;  // every case of the current variants must take the lean path
bool g_sweep = false;        // print one SWEEP JSON line per timed run (scripts/gpu-sweep.sh)
const std::string& apply_variant(const std::string& v) {
  for (const char* k : kKnobs) unsetenv(k);
  size_t i = 0;
  while (i < v.size()) {
    const size_t j = std::min(v.find(' ', i), v.size()), eq = v.find('=', i);
    if (eq < j) setenv(v.substr(i, eq - i).c_str(), v.substr(eq + 1, j - eq - 1).c_str(), 1);
    i = j + 1;
  }
  return v;
}

// One matmul case: GPU vs CPU on `check_rows` sampled rows (all rows when M is small).
void matmul_case(int64_t M, int64_t N, int64_t K, int64_t group, DType xdt, DType sdt, bool zeros, bool prepare,
                 bool bias, bool perm, bool time_it = false, std::vector<int> tiles = {}, int64_t xoff = 0) {
  // xoff: x starts xoff elements into its device buffer (like a narrow/reshape view); an offset that is
  // not a multiple of 16 bytes must take the general path unless act-order gathers x into aligned memory.
  char name[256];
  std::snprintf(name, sizeof name, "matmul M=%lld N=%lld K=%lld g=%lld x=%s s=%s%s%s%s%s%s", (long long)M,
                (long long)N, (long long)K, (long long)group, dtn(xdt), dtn(sdt), zeros ? " zeros" : "",
                prepare ? " prepared" : " canonical", bias ? " bias" : "", perm ? " perm" : "",
                xoff ? (" x+" + std::to_string(xoff)).c_str() : "");
  const bool prep = prepare && llmk::cuda::int4_fast_layout(N, K);
  Weight w = rand_weight(N, K, group, sdt, zeros);
  auto x = rand_floats(size_t(M * K), xdt, 1.f);
  auto b = rand_floats(size_t(N), DType::F32, 1.f);
  std::vector<int32_t> pm;
  if (perm) {
    pm.resize(size_t(K));
    for (int64_t k = 0; k < K; k++) pm[size_t(k)] = int32_t(k);
    for (int64_t k = K - 1; k > 0; k--) std::swap(pm[size_t(k)], pm[size_t(xorshift() % uint64_t(k + 1))]);
  }
  DevWeight dw(w, prep);
  const size_t xe = llmk::dtype_size(xdt);
  DevBuf<uint8_t> dxbuf(x.size() + size_t(xoff) * xe), db(b);
  TCUDA(cudaMemcpy(dxbuf.p + xoff * xe, x.data(), x.size(), cudaMemcpyHostToDevice));
  uint8_t* const dxp = dxbuf.p + xoff * xe;
  DevBuf<int32_t> dp(pm.empty() ? std::vector<int32_t>(1) : pm);
  const size_t ysz = size_t(M * N) * llmk::dtype_size(xdt);
  // CPU reference on sampled rows (all rows when M is small).
  std::vector<int64_t> rows;
  if (M <= 32) for (int64_t m = 0; m < M; m++) rows.push_back(m);
  else { rows = {0, 1, M / 2, M - 2, M - 1}; for (int i = 0; i < 3; i++) rows.push_back(int64_t(xorshift() % uint64_t(M))); }
  std::vector<uint8_t> xs(rows.size() * size_t(K) * xe), ys(rows.size() * size_t(N) * 4);
  for (size_t i = 0; i < rows.size(); i++) std::memcpy(xs.data() + i * K * xe, x.data() + rows[i] * K * xe, K * xe);
  llmk::cpu::int4_matmul(xs.data(), int(xdt), w.q.data(), w.s.data(), int(sdt), zeros ? w.z.data() : nullptr,
                         bias ? b.data() : nullptr, int(DType::F32), perm ? pm.data() : nullptr, ys.data(),
                         int(DType::F32), int64_t(rows.size()), N, K, group);
  const auto want = as_f32(ys, DType::F32);
  const double tol = xdt == DType::F32 ? 1e-5 : 1e-2;

  // Default plan, then (tiles non-empty) each forced tile configuration.
  std::vector<int> plan = {-1};
  for (int t : tiles) plan.push_back(t);
  for (size_t vi = 0; vi < std::max<size_t>(1, g_variants.size()); vi++)
  for (int tile : plan) {
    const std::string variant = g_variants.empty() ? std::string() : apply_variant(g_variants[vi]);
    if (tile >= 0) setenv("LLMK_INT4_TILE", std::to_string(tile).c_str(), 1);
    else unsetenv("LLMK_INT4_TILE");
    DevBuf<uint8_t> dy(ysz);
    dy.poison();
    const int64_t wsb = llmk::cuda::int4_matmul_workspace(M, N, K, group, int(xdt), prep, perm);
    DevBuf<uint8_t> ws(size_t(std::max<int64_t>(wsb, 1)));
    int splits = 1;
    const char* path = llmk::cuda::int4_matmul_path(M, N, K, int(xdt), prep, perm ? nullptr : dxp, &splits);
    const auto lean = llmk::cuda::int4_lean_plan(M, N, K, group, int(xdt), prep, perm ? nullptr : dxp, int(sdt), zeros);
    if (lean.name) { path = lean.name; splits = lean.splits; }
    auto launch = [&] {
      llmk::Int4MatmulParams p;
      p.x = dxp; p.xdt = xdt; p.qweight = dw.q.p; p.scales = dw.s.p; p.sdt = sdt;
      p.zeros = zeros ? dw.z.p : nullptr; p.prepared = prep; p.bias = bias ? db.p : nullptr; p.bdt = DType::F32;
      p.perm = perm ? dp.p : nullptr; p.y = dy.p; p.M = M; p.N = N; p.K = K; p.group = group;
      llmk::cuda::int4_matmul(p, ws.p, wsb, nullptr, nullptr);
    };
    try {
      launch();
    } catch (const llmk::Error& e) {
      report(name, false, std::string("threw: ") + e.what());
      continue;
    }
    TCUDA(cudaDeviceSynchronize());
    if (lean.name) {  // again on a poisoned output: the split-K tickets must be back to zero
      dy.poison();
      launch();
      TCUDA(cudaDeviceSynchronize());
    }
    auto y = dy.download();
    std::vector<uint8_t> yg(rows.size() * size_t(N) * xe);
    for (size_t i = 0; i < rows.size(); i++) std::memcpy(yg.data() + i * N * xe, y.data() + rows[i] * N * xe, N * xe);
    auto got = as_f32(yg, xdt);
    const double err = rel_l2(got.data(), want.data(), got.size());
    char det[160];
    std::snprintf(det, sizeof det, "path=%s splits=%d rel_l2=%.3g", path, splits, err);
    const bool misaligned = !perm && (xoff * int64_t(xe)) % 16 != 0;
    const bool path_ok = (!misaligned || std::string(path) == "general") && (!g_expect_lean || lean.name);
    report(std::string(name) + (tile >= 0 ? " tile=" + std::to_string(tile) : "") + (variant.empty() ? "" : " [" + variant + "]"),
           err < tol && path_ok, det);
    if (!time_it) continue;
    cudaEvent_t e0, e1;
    TCUDA(cudaEventCreate(&e0)); TCUDA(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) launch();
    const int iters = M >= 1024 ? 10 : 50;
    TCUDA(cudaEventRecord(e0));
    for (int i = 0; i < iters; i++) launch();
    TCUDA(cudaEventRecord(e1));
    TCUDA(cudaEventSynchronize(e1));
    float ms = 0;
    TCUDA(cudaEventElapsedTime(&ms, e0, e1));
    ms /= float(iters);
    const double bytes = double(N) * K / 2 + double(N) * (K / group) * llmk::dtype_size(sdt) + double(M) * K * xe + double(M) * N * xe;
    const double flops = 2.0 * double(M) * N * K;
    std::printf("TIME int4 N=%lld K=%lld M=%lld x=%s path=%s splits=%d ms=%.4f GB/s=%.0f TFLOP/s=%.1f%s\n",
                (long long)N, (long long)K, (long long)M, dtn(xdt), path, splits, ms, bytes / ms / 1e6, flops / ms / 1e9,
                tile < 0 ? " (default)" : "");
    if (g_sweep)
      std::printf("SWEEP {\"family\":\"int4\",\"variant\":\"%s\",\"N\":%lld,\"K\":%lld,\"M\":%lld,\"path\":\"%s\","
                  "\"splits\":%d,\"us\":%.3f,\"bytes\":%.0f,\"GBps\":%.1f,\"TFLOPs\":%.2f,\"rel_l2\":%.3g,\"ok\":%s}\n",
                  variant.empty() ? "base" : variant.c_str(), (long long)N, (long long)K, (long long)M, path, splits,
                  ms * 1e3, bytes, bytes / ms / 1e6, flops / ms / 1e9, err, err < tol && path_ok ? "true" : "false");
    cudaEventDestroy(e0); cudaEventDestroy(e1);
  }
  for (const char* k : kKnobs) unsetenv(k);
}

void quantize_case(int64_t N, int64_t K, int64_t group, DType wdt, DType sdt, bool sym) {
  char name[200];
  std::snprintf(name, sizeof name, "quantize+dequantize N=%lld K=%lld g=%lld w=%s s=%s %s", (long long)N,
                (long long)K, (long long)group, dtn(wdt), dtn(sdt), sym ? "sym" : "asym");
  auto w = rand_floats(size_t(N * K), wdt, 1.f, sym ? 0.f : 0.3f);
  const int64_t G = K / group;
  std::vector<uint8_t> q(size_t(N * K / 2)), s(size_t(N * G) * llmk::dtype_size(sdt)), z(size_t(N * G));
  llmk::cpu::int4_quantize(w.data(), int(wdt), N, K, group, sym, q.data(), s.data(), int(sdt), sym ? nullptr : z.data());
  DevBuf<uint8_t> dw(w), dq(q.size()), ds(s.size()), dz(z.size());
  dq.poison(); ds.poison(); dz.poison();
  llmk::cuda::int4_quantize(dw.p, int(wdt), N, K, group, sym, dq.p, ds.p, int(sdt), sym ? nullptr : dz.p, nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto gq = dq.download(), gs = ds.download(), gz = dz.download();
  size_t qdiff = 0;
  for (size_t i = 0; i < q.size(); i++) qdiff += gq[i] != q[i];
  bool ok = gs == s && (sym || gz == z) && qdiff <= q.size() / 10000;  // rounding ties may differ rarely
  report(name, ok, "q bytes differing: " + std::to_string(qdiff));
  // dequantize
  const size_t oe = llmk::dtype_size(wdt);
  std::vector<uint8_t> deq(size_t(N * K) * oe);
  llmk::cpu::int4_dequantize(q.data(), s.data(), int(sdt), sym ? nullptr : z.data(), N, K, group, deq.data(), int(wdt));
  DevBuf<uint8_t> dd(deq.size());
  dd.poison();
  dq.upload(q); ds.upload(s); dz.upload(z);
  llmk::cuda::int4_dequantize(dq.p, ds.p, int(sdt), sym ? nullptr : dz.p, N, K, group, dd.p, int(wdt), nullptr);
  TCUDA(cudaDeviceSynchronize());
  report(std::string("dequantize ") + name, dd.download() == deq);
}

void prepare_case(int64_t N, int64_t K, int64_t group, DType sdt, bool zeros) {
  char name[160];
  std::snprintf(name, sizeof name, "prepare/unprepare N=%lld K=%lld g=%lld s=%s%s", (long long)N, (long long)K,
                (long long)group, dtn(sdt), zeros ? " zeros" : "");
  Weight w = rand_weight(N, K, group, sdt, zeros);
  std::vector<uint8_t> hp(size_t(llmk::cpu::int4_prepared_qbytes(N, K)));
  llmk::cpu::int4_pack_prepared(w.q.data(), N, K, hp.data());
  std::vector<uint8_t> back(w.q.size());
  llmk::cpu::int4_unpack_prepared(hp.data(), N, K, back.data());
  DevWeight dw(w, true);
  bool ok = back == w.q && dw.q.download() == hp;
  DevBuf<uint8_t> cq(w.q.size()), cs(w.s.size()), cz(std::max<size_t>(w.z.size(), 1));
  cq.poison(); cs.poison();
  llmk::cuda::int4_unprepare(dw.q.p, dw.s.p, int(llmk::dtype_size(sdt)), zeros ? dw.z.p : nullptr, N, K, group, cq.p,
                             cs.p, zeros ? cz.p : nullptr, nullptr);
  TCUDA(cudaDeviceSynchronize());
  ok = ok && cq.download() == w.q && cs.download() == w.s && (!zeros || cz.download() == w.z);
  report(name, ok);
}

// NaN in one element of x: its output row is all NaN (on the GPU and on the CPU twin), every other row
// matches the CPU. Covers the mma path (split-K or not) and the general path.
void nan_case(int64_t M, int64_t N, int64_t K, int64_t group, DType xdt, bool prepare) {
  char name[200];
  std::snprintf(name, sizeof name, "NaN in x propagates to its row only: M=%lld N=%lld K=%lld x=%s %s", (long long)M,
                (long long)N, (long long)K, dtn(xdt), prepare ? "prepared" : "canonical");
  const bool prep = prepare && llmk::cuda::int4_fast_layout(N, K);
  Weight w = rand_weight(N, K, group, xdt, true);
  auto x = rand_floats(size_t(M * K), xdt, 1.f);
  const int64_t bad = M / 2;
  llmk::store_from_f32(x.data(), bad * K + K / 3, int(xdt), NAN);
  const size_t xe = llmk::dtype_size(xdt);
  std::vector<uint8_t> ys(size_t(M * N) * 4);
  llmk::cpu::int4_matmul(x.data(), int(xdt), w.q.data(), w.s.data(), int(xdt), w.z.data(), nullptr, 0, nullptr,
                         ys.data(), int(DType::F32), M, N, K, group);
  const auto want = as_f32(ys, DType::F32);
  DevWeight dw(w, prep);
  DevBuf<uint8_t> dx(x), dy(size_t(M * N) * xe);
  dy.poison();
  const int64_t wsb = llmk::cuda::int4_matmul_workspace(M, N, K, group, int(xdt), prep, false);
  DevBuf<uint8_t> ws(size_t(std::max<int64_t>(wsb, 1)));
  int splits = 1;
  const char* path = llmk::cuda::int4_matmul_path(M, N, K, int(xdt), prep, dx.p, &splits);
  llmk::Int4MatmulParams p;
  p.x = dx.p; p.xdt = xdt; p.qweight = dw.q.p; p.scales = dw.s.p; p.sdt = xdt; p.zeros = dw.z.p; p.prepared = prep;
  p.y = dy.p; p.M = M; p.N = N; p.K = K; p.group = group;
  llmk::cuda::int4_matmul(p, ws.p, wsb, nullptr, nullptr);
  TCUDA(cudaDeviceSynchronize());
  const auto got = as_f32(dy.download(), xdt);
  bool nan_ok = true;
  std::vector<float> g2, w2;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      const float gv = got[size_t(m * N + n)], wv = want[size_t(m * N + n)];
      if (m == bad) nan_ok = nan_ok && std::isnan(gv) && std::isnan(wv);
      else { g2.push_back(gv); w2.push_back(wv); }
    }
  const double err = rel_l2(g2.data(), w2.data(), g2.size());
  char det[160];
  std::snprintf(det, sizeof det, "path=%s splits=%d nan_row=%s rel_l2(other rows)=%.3g", path, splits,
                nan_ok ? "ok" : "WRONG", err);
  report(name, nan_ok && err < 1e-2, det);
}

void bad_perm_case() {
  const int64_t M = 2, N = 32, K = 64;
  Weight w = rand_weight(N, K, 32, DType::F16, false);
  DevWeight dw(w, true);
  auto x = rand_floats(size_t(M * K), DType::F16, 1.f);
  std::vector<int32_t> pm(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; k++) pm[size_t(k)] = int32_t(k);
  pm[5] = int32_t(K + 3);
  DevBuf<uint8_t> dx(x), dy(size_t(M * N * 2));
  DevBuf<int32_t> dp(pm);
  const int64_t wsb = llmk::cuda::int4_matmul_workspace(M, N, K, 32, int(DType::F16), true, true);
  DevBuf<uint8_t> ws(static_cast<size_t>(wsb));
  DevBuf<int> flag(std::vector<int>{0});
  llmk::Int4MatmulParams p;
  p.x = dx.p; p.xdt = DType::F16; p.qweight = dw.q.p; p.scales = dw.s.p; p.sdt = DType::F16; p.prepared = true;
  p.perm = dp.p; p.y = dy.p; p.M = M; p.N = N; p.K = K; p.group = 32;
  llmk::cuda::int4_matmul(p, ws.p, wsb, flag.p, nullptr);
  TCUDA(cudaDeviceSynchronize());
  report("out-of-range act-order permutation raises the device error flag", flag.download()[0] != 0);
}

// quant.permuteColumns (the standalone gather used by act-order dequantize): every element against
// the CPU, 2- and 4-byte elements, a tail-sized K; an out-of-range entry raises the flag and zeroes.
void permute_cols_case(int64_t M, int64_t K, DType dt) {
  const size_t es = llmk::dtype_size(dt);
  auto x = rand_floats(size_t(M * K), dt, 1.f);
  std::vector<int32_t> pm(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; k++) pm[size_t(k)] = int32_t(k);
  std::shuffle(pm.begin(), pm.end(), std::mt19937(unsigned(xs_state)));
  std::vector<uint8_t> ref(x.size());
  llmk::cpu::permute_cols(x.data(), pm.data(), ref.data(), M, K, int64_t(es));
  DevBuf<uint8_t> dx(x), dout(x.size());
  DevBuf<int32_t> dp(pm);
  DevBuf<int> flag(std::vector<int>{0});
  dout.poison();
  llmk::cuda::permute_cols(dx.p, dp.p, dout.p, M, K, int(es), flag.p, nullptr);
  TCUDA(cudaDeviceSynchronize());
  const bool same = dout.download() == ref && flag.download()[0] == 0;
  pm[size_t(K / 2)] = int32_t(-1);
  dp.upload(pm);
  llmk::cuda::permute_cols(dx.p, dp.p, dout.p, M, K, int(es), flag.p, nullptr);
  TCUDA(cudaDeviceSynchronize());
  auto bad = dout.download();
  bool zeroed = true;
  for (int64_t m = 0; m < M; m++)
    for (size_t b = 0; b < es; b++) zeroed = zeroed && bad[size_t(m * K + K / 2) * es + b] == 0;
  char name[96];
  std::snprintf(name, sizeof name, "permute_cols M=%lld K=%lld %s", (long long)M, (long long)K, llmk::dtype_name(dt));
  report(name, same && flag.download()[0] != 0 && zeroed, same ? "" : "differs from the CPU");
}

// Lean M ≤ 16 candidate (LLMK_INT4_LEAN=1): every template branch (x and scale dtypes, zero points,
// float32 scales, ring depths) against the CPU, with N, K and split tails; each case runs twice so
// that the in-launch split-K tickets are known to be reset.
void lean_cases() {
  const DType F16 = DType::F16, BF16 = DType::BF16, F32 = DType::F32;
  g_expect_lean = true;
  for (const char* mode : {"LLMK_INT4_LEAN=1", "LLMK_INT4_LEAN=1 LLMK_INT4_F32SCALE=1"}) {
    const std::string m(mode);
    g_variants = {m};
    for (DType xdt : {F16, BF16}) {
      matmul_case(1, 64, 128, 64, xdt, xdt, false, true, true, false);       // one CTA, no split
      matmul_case(3, 48, 320, 64, xdt, F32, true, true, true, false);        // N % 64 != 0, K % 128 != 0
      matmul_case(16, 272, 1056, 1056, xdt, xdt, true, true, false, false);  // K % 64 = 32, group = K
      matmul_case(9, 1040, 2048, 128, xdt, BF16, false, true, true, true);   // act-order
      matmul_case(12, 32, 48, 48, xdt, F16, true, true, true, false);        // K < 64
      matmul_case(16, 128, 8192, 128, xdt, xdt, false, true, true, false);   // x slice (44 KB) bounds the split
    }
    g_variants = {m + " LLMK_INT4_SPLITS=7", m + " LLMK_INT4_SPLITS=64"};   // uneven and one-block splits
    matmul_case(5, 256, 4096, 256, F16, F16, true, true, true, false);
    g_variants = {m + " LLMK_INT4_LEAN_DEPTH=4", m + " LLMK_INT4_LEAN_DEPTH=16", m + " LLMK_INT4_SWAPAB=1"};
    matmul_case(4, 512, 2048, 128, F16, F16, false, true, true, false);
    matmul_case(2, 128, 192, 64, F16, F16, false, true, true, false);       // fewer blocks than the ring
    matmul_case(8, 48, 1056, 1056, F16, F16, false, true, true, false);     // SWAP at M = 8, tails
    g_variants = {m + " LLMK_INT4_SWAPAB=1 LLMK_INT4_SPLITS=5"};
    matmul_case(1, 320, 4096, 128, F16, F16, false, true, true, true);      // SWAP, split, act-order
  }
  g_expect_lean = false;
  setenv("LLMK_INT4_LEAN", "1", 1);  // NaN in one x row stays in that row (split-K, in-launch reduction)
  nan_case(5, 256, 512, 64, F16, true);
  unsetenv("LLMK_INT4_LEAN");
  g_variants = {"LLMK_INT4_LEAN=1"};  // not eligible (group 32, M 17): the default path, still correct
  matmul_case(4, 128, 256, 32, F16, F16, false, true, true, false);
  matmul_case(17, 128, 256, 64, F16, F16, false, true, true, false);
  g_variants.clear();
}

// D2D copy of `bytes` (the bandwidth anchor of the sweep), mean of 20 after a warm-up.
void copy_anchor(size_t bytes) {
  DevBuf<uint8_t> a(bytes), b(bytes);
  cudaEvent_t e0, e1;
  TCUDA(cudaEventCreate(&e0)); TCUDA(cudaEventCreate(&e1));
  TCUDA(cudaMemcpy(b.p, a.p, bytes, cudaMemcpyDeviceToDevice));
  TCUDA(cudaEventRecord(e0));
  for (int i = 0; i < 20; i++) TCUDA(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice));
  TCUDA(cudaEventRecord(e1));
  TCUDA(cudaEventSynchronize(e1));
  float ms = 0;
  TCUDA(cudaEventElapsedTime(&ms, e0, e1));
  ms /= 20;
  std::printf("SWEEP {\"family\":\"copy\",\"bytes\":%zu,\"us\":%.3f,\"GBps\":%.1f}\n", bytes, ms * 1e3,
              2.0 * double(bytes) / ms / 1e6);  // read + write
  cudaEventDestroy(e0); cudaEventDestroy(e1);
}

// LLMK_INT4_SWEEP=1 (scripts/gpu-sweep.sh): copy anchors, then every variant × bench shape × M ≤ 16,
// each checked against the CPU on the same data and timed. LLMK_INT4_SWEEP_VARIANTS overrides the
// variant list (';'-separated; an empty entry is the default path).
int sweep() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines survive a timeout kill
  g_sweep = true;
  for (size_t mb : {8, 34, 117}) copy_anchor(mb << 20);
  std::string list = "; LLMK_INT4_TILE=0; LLMK_INT4_LEAN=1; LLMK_INT4_LEAN=1 LLMK_INT4_F32SCALE=1;"
                     " LLMK_INT4_LEAN=1 LLMK_INT4_LEAN_DEPTH=4; LLMK_INT4_LEAN=1 LLMK_INT4_LEAN_DEPTH=16;"
                     " LLMK_INT4_LEAN=1 LLMK_INT4_F32SCALE=1 LLMK_INT4_LEAN_DEPTH=16;"
                     " LLMK_INT4_LEAN=1 LLMK_INT4_SWAPAB=1; LLMK_INT4_LEAN=1 LLMK_INT4_SWAPAB=1 LLMK_INT4_F32SCALE=1;"
                     " LLMK_INT4_LEAN=1 LLMK_INT4_SPLITS=4; LLMK_INT4_LEAN=1 LLMK_INT4_SPLITS=16";
  if (const char* e = std::getenv("LLMK_INT4_SWEEP_VARIANTS")) list = e;
  g_variants.clear();
  for (size_t i = 0; i <= list.size();) {
    size_t j = std::min(list.find(';', i), list.size());
    std::string v = list.substr(i, j - i);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    g_variants.push_back(v);
    i = j + 1;
  }
  const int64_t shapes[][2] = {{4096, 4096}, {8192, 8192}, {8192, 28672}, {28672, 8192}};
  for (auto& sh : shapes)
    for (int64_t m : {1, 4, 8, 16})
      matmul_case(m, sh[0], sh[1], 128, DType::F16, DType::F16, false, true, false, false, true);
  g_variants.clear();
  return finish();
}

}  // namespace

int main() {
  xs_state = run_seed() | 1;
  if (std::getenv("LLMK_INT4_SWEEP")) return sweep();
  const bool timing = std::getenv("LLMK_INT4_TIME") != nullptr;
  const bool small = std::getenv("LLMK_TEST_SMALL") != nullptr && !timing;
  const DType F16 = DType::F16, BF16 = DType::BF16, F32 = DType::F32;

  quantize_case(64, 256, 32, F32, F16, true);
  quantize_case(48, 384, 128, F16, F16, false);
  quantize_case(33, 256, 256, BF16, BF16, true);
  quantize_case(20, 100, 100, F32, F32, false);
  prepare_case(16, 16, 16, F16, false);
  prepare_case(64, 320, 64, F16, true);
  if (!small) prepare_case(7392 / 16 * 16, 192, 64, F32, true);
  prepare_case(48, 4096, 128, BF16, false);
  bad_perm_case();
  permute_cols_case(3, 100, F16);
  permute_cols_case(5, 4096 + 7, F32);
  permute_cols_case(1, 1, BF16);
  nan_case(5, 256, 512, 64, DType::F16, true);     // mma16n128, split-K
  nan_case(70, 256, 512, 128, DType::BF16, true);  // mma64
  nan_case(4, 40, 96, 32, DType::F16, true);       // N % 16 != 0: general path
  lean_cases();

  // Tiny, tails, general path, every tile config.
  for (DType xdt : {F16, BF16}) {
    matmul_case(1, 16, 32, 32, xdt, xdt, false, true, false, false);
    matmul_case(1, 64, 128, 128, xdt, xdt, true, true, true, false);
    matmul_case(3, 48, 48, 48, xdt, F32, false, true, true, false);          // K % 64 != 0, group = K
    matmul_case(5, 100, 320, 64, xdt, xdt, true, true, true, false);         // N % 16 != 0: general path
    matmul_case(7, 96, 320, 32, xdt, xdt, false, true, false, false);        // K = 320 (K % 128 != 0)
    matmul_case(16, 7392 / 4, 1024, 128, xdt, xdt, true, true, true, false); // N % 64 != 0
    matmul_case(17, 272, 576, 64, xdt, BF16, false, true, true, false);
    matmul_case(64, 1040, 2048, 128, xdt, xdt, true, true, false, false);
    matmul_case(65, 1024, 1024, 256, xdt, xdt, false, true, true, true);     // act-order
    matmul_case(200, 528, 1088, 64, xdt, F16, true, true, true, false, false, {0, 1, 2, 3, 4, 5});
    matmul_case(5, 336, 192, 32, xdt, xdt, true, true, true, true, false, {0, 1, 2, 3, 4, 5});
    if (!small) matmul_case(300, 2048, 2048, 2048, xdt, xdt, false, true, false, false);
    matmul_case(3, 128, 1056, 32, xdt, xdt, true, true, true, false);        // K tail (K % 64 = 32) in the last split
    matmul_case(5, 128, 256, 64, xdt, xdt, true, true, true, false, false, {}, 1);  // x 2 bytes off: general path
    matmul_case(6, 128, 256, 64, xdt, xdt, false, true, false, false, false, {}, 8); // x 16 bytes off: mma path
    matmul_case(4, 128, 256, 32, xdt, xdt, true, true, true, true, false, {}, 3);   // unaligned x, act-order
    matmul_case(9, 512, 512, 128, xdt, xdt, true, false, true, false);       // canonical layout: general path
  }
  matmul_case(4, 64, 256, 64, F32, F16, true, true, true, false);            // float32 x: general path
  matmul_case(33, 100, 96, 32, F32, F32, false, false, true, true);
  matmul_case(1, 10944, 256, 128, F16, F16, false, true, false, false);
  matmul_case(2, 256, 10944, 64, BF16, BF16, true, true, true, false);
  matmul_case(7, 72, 128, 32, F32, F32, true, true, true, false, false, {}, 1);  // float32 x, odd offset
  // General path beyond one launch's grid.y (65535 · 8 rows): two row-block launches; the sampled rows
  // come from both (0, 1, M/2 from the first, M-2, M-1 from the second).
  if (!small) matmul_case(600000, 8, 32, 32, F16, F16, false, true, true, false);

  // Every benchmark shape (g = 128), float16; sampled rows are checked against the CPU.
  const int64_t shapes[][2] = {{4096, 4096}, {8192, 8192}, {28672, 8192}, {8192, 28672}, {7392, 8192}};
  const int64_t ms[] = {1, 4, 16, 64, 256, 1024, 4096};
  const bool full = timing || std::getenv("LLMK_INT4_FULL") != nullptr;
  for (auto& s : shapes)
    for (int64_t m : ms)
      if (!small && (full || ((m == 1 || m == 16 || m == 256) && s[0] * s[1] <= 8192 * 8192)))
        matmul_case(m, s[0], s[1], 128, F16, F16, false, true, false, false, timing,
                    timing ? (m <= 16 ? std::vector<int>{0, 4} : m <= 64 ? std::vector<int>{0, 1, 2, 3} : std::vector<int>{2, 3, 5})
                           : std::vector<int>{});
  return finish();
}
