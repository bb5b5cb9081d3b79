// Native GPU test of the CUDA MoE expert layer against the CPU kernel (cpu/moe_experts.h) on fresh
// random data: every activation and gate layout, dense float32/float16/bfloat16 weights, INT4 weights in
// the canonical and the tuned (prepared) layout, biases, an expert map, and the device error flag for
// out-of-range ids. Prints PASS/FAIL lines; exits non-zero on any failure.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../src/core/cuda_runtime.h"
#include "../src/core/half.h"
#include "../src/cpu/int4.h"
#include "../src/cpu/moe_experts.h"
#include "../src/cpu/moe_experts_act.h"
#include "../src/cuda/moe_experts.h"
#include "test_util.h"

using namespace llmk_test;

namespace {

struct Case {
  int64_t T, H, I;
  int k, E, act;
  bool interleaved;
  int xdt, wdt;      // 0 f32, 1 f16, 2 bf16; wdt = -1: INT4
  bool tuned, bias, map;
};

std::vector<uint8_t> bytes_of(const std::vector<float>& v, int dt) {
  const size_t es = dt == 0 ? 4 : 2;
  std::vector<uint8_t> out(v.size() * es);
  for (size_t i = 0; i < v.size(); i++) llmk::store_from_f32(out.data(), int64_t(i), dt, v[i]);
  return out;
}

template <typename T> T* dev(const std::vector<T>& h, std::vector<void*>& owned) {
  void* p = nullptr;
  TCUDA(cudaMalloc(&p, std::max<size_t>(h.size(), 1) * sizeof(T)));
  if (!h.empty()) TCUDA(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  owned.push_back(p);
  return static_cast<T*>(p);
}

// A projection [E, N, K] on the host (cpu view) and on the device (cuda view).
struct Proj {
  std::vector<uint8_t> dense, q, scales_b, bias_b, packed;
  std::vector<float> scales_t;
  llmk::cpu::ExpertWeight host, gpu;
};

void make_proj(Proj& p, const Case& c, int64_t N, int64_t K, std::vector<void*>& owned) {
  const int64_t rows = c.E * N;
  std::vector<float> w = randn(size_t(rows * K), 1.f / std::sqrt(float(K)));
  if (c.wdt >= 0) {
    p.dense = bytes_of(w, c.wdt);
    p.host.dense = p.dense.data();
    p.host.dt = c.wdt;
    p.gpu = p.host;
    p.gpu.dense = dev(p.dense, owned);
  } else {
    const int64_t g = 32, G = K / g;
    p.q.resize(size_t(rows * K / 2));
    std::vector<float> sc(size_t(rows * G));
    llmk::cpu::int4_quantize(w.data(), 0, rows, K, g, true, p.q.data(), sc.data(), 0, nullptr);
    p.scales_t = sc;
    p.host.q = p.q.data(); p.host.scales = p.scales_t.data(); p.host.sdt = 0; p.host.group = g;
    p.gpu = p.host;
    p.gpu.total_rows = rows;
    if (c.tuned) {
      p.packed.resize(size_t(llmk::cpu::int4_prepared_qbytes(rows, K)));
      llmk::cpu::int4_pack_prepared(p.q.data(), rows, K, p.packed.data());
      std::vector<float> st(sc.size());
      llmk::cpu::transpose_bytes(sc.data(), rows, G, 4, st.data());
      p.gpu.q = dev(p.packed, owned);
      p.gpu.scales = dev(st, owned);
      p.gpu.tuned = true;
    } else {
      p.gpu.q = dev(p.q, owned);
      p.gpu.scales = dev(sc, owned);
    }
  }
  if (c.bias) {
    p.bias_b = bytes_of(randn(size_t(rows), 0.5f), 0);
    p.host.bias = p.bias_b.data();
    p.gpu.bias = dev(p.bias_b, owned);
  }
}

void run(const Case& c, bool bad_id = false) {
  std::vector<void*> owned;
  const bool gated = llmk::moe_act::gated(c.act);
  const int64_t n = c.T * c.k, N1 = gated ? 2 * c.I : c.I;
  std::vector<float> xf = randn(size_t(c.T * c.H));
  std::vector<uint8_t> x = bytes_of(xf, c.xdt);
  std::vector<float> wts = randn(size_t(n), 0.5f);
  const int Eg = c.map ? c.E + 3 : c.E;
  std::vector<int32_t> ids(static_cast<size_t>(n)), map;
  for (auto& v : ids) v = int32_t(rng()() % uint64_t(Eg));
  if (bad_id && n > 0) ids[size_t(n / 2)] = Eg;
  if (c.map) {
    for (int g = 0; g < Eg; g++) map.push_back(g < c.E ? c.E - 1 - g : -1);
  }
  Proj gu, dn;
  make_proj(gu, c, N1, c.H, owned);
  make_proj(dn, c, c.H, c.I, owned);
  llmk::cpu::MoeExpertsParams p;
  p.tokens = c.T; p.hidden = c.H; p.inter = c.I; p.k = c.k; p.experts = c.E; p.global_experts = Eg;
  p.activation = c.act; p.interleaved = c.interleaved;
  const size_t es = c.xdt == 0 ? 4 : 2;
  std::vector<uint8_t> y_cpu(size_t(c.T * c.H) * es), y_gpu(y_cpu.size());
  if (!bad_id) {
    p.expert_map = c.map ? map.data() : nullptr;
    llmk::cpu::moe_experts(x.data(), c.xdt, wts.data(), ids.data(), gu.host, dn.host, p, y_cpu.data());
  }
  p.expert_map = c.map ? dev(map, owned) : nullptr;
  void* y = dev(y_gpu, owned);
  std::vector<uint8_t> sc(size_t(llmk::cuda::moe_experts_scratch_bytes(n, c.H, c.I, c.E)));
  int* flag = dev(std::vector<int>{0}, owned);
  llmk::cuda::moe_experts(dev(x, owned), c.xdt, dev(wts, owned), dev(ids, owned), gu.gpu, dn.gpu, p, y,
                          dev(sc, owned), flag, nullptr);
  TCUDA(cudaDeviceSynchronize());
  int fl = 0;
  TCUDA(cudaMemcpy(&fl, flag, 4, cudaMemcpyDeviceToHost));
  const std::string name = "T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) + " I=" + std::to_string(c.I) +
                           " E=" + std::to_string(c.E) + " act=" + std::to_string(c.act) + (c.interleaved ? " il" : "") +
                           " xdt=" + std::to_string(c.xdt) + " wdt=" + std::to_string(c.wdt) + (c.tuned ? " tuned" : "") +
                           (c.bias ? " bias" : "") + (c.map ? " map" : "");
  if (bad_id) {
    report("error flag for an out-of-range id, " + name, fl == 1);
  } else {
    TCUDA(cudaMemcpy(y_gpu.data(), y, y_gpu.size(), cudaMemcpyDeviceToHost));
    std::vector<float> a(size_t(c.T * c.H)), b(a.size());
    for (size_t i = 0; i < a.size(); i++) {
      a[i] = llmk::load_as_f32(y_gpu.data(), int64_t(i), c.xdt);
      b[i] = llmk::load_as_f32(y_cpu.data(), int64_t(i), c.xdt);
    }
    const double err = rel_l2(a.data(), b.data(), a.size());
    report(name, fl == 0 && err < (c.xdt == 0 && c.wdt <= 0 ? 1e-4 : 2e-2), "rel " + std::to_string(err));
  }
  for (void* q : owned) cudaFree(q);
}

}  // namespace

int main() {
  run_seed();
  for (int act = 0; act <= 4; act++)
    for (bool il : {false, true}) {
      if (il && !llmk::moe_act::gated(act)) continue;
      run({9, 64, 48, 2, 4, act, il, 0, 0, false, true, false});
    }
  for (int xdt : {0, 1, 2})
    for (int wdt : {0, 1, 2}) run({17, 96, 64, 2, 5, 0, false, xdt, wdt, false, false, false});
  for (bool tuned : {false, true})
    for (int64_t T : {1, 40}) run({T, 128, 64, 2, 4, 1, true, 0, -1, tuned, true, false});
  run({33, 64, 32, 3, 6, 0, false, 0, 0, false, false, true});
  run({8, 64, 32, 2, 4, 0, false, 0, 0, false, false, false}, true);
  return finish();
}
