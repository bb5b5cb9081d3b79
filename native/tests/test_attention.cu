// Native GPU test of block-sparse attention: every CUDA path against the CPU kernel on fresh random
// inputs (sizes hitting tails, GQA, D = 64/96/128/256, masks, decode split-K), poisoned outputs.
// `test_attention --bench` instead times the issue's benchmark cases with CUDA events (JSON lines).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../src/core/dtype.h"
#include "../src/core/error.h"
#include "../src/core/half.h"
#include "../src/cpu/attention.h"
#include "../src/cuda/attention.h"
#include "test_util.h"

using namespace llmk_test;
using llmk::DType;

namespace {

bool g_cpu_only = false;
bool g_skip_naive = false;  // --cpu-only: only the CPU kernel against the float64 reference (no GPU needed)

struct Layout {
  int64_t heads = 1, nqb = 0, nkb = 0, bq = 64, bk = 64;
  std::vector<int32_t> row_ptr, col_idx;
  int64_t max_row = 0;
};

// Builds a layout from a predicate keep(head, qb, kb).
template <typename F>
Layout make_layout(int64_t heads, int64_t Nq, int64_t Nk, int64_t bq, int64_t bk, F keep) {
  Layout L;
  L.heads = heads; L.bq = bq; L.bk = bk;
  L.nqb = (Nq + bq - 1) / bq; L.nkb = (Nk + bk - 1) / bk;
  L.row_ptr.push_back(0);
  for (int64_t h = 0; h < heads; h++) {
    if (h > 0) L.row_ptr.push_back(L.row_ptr.back());
    for (int64_t r = 0; r < L.nqb; r++) {
      int64_t n = 0;
      for (int64_t c = 0; c < L.nkb; c++)
        if (keep(h, r, c)) { L.col_idx.push_back(int32_t(c)); n++; }
      L.row_ptr.push_back(int32_t(L.col_idx.size()));
      L.max_row = std::max(L.max_row, n);
    }
  }
  return L;
}

Layout dense_layout(int64_t Nq, int64_t Nk, int64_t bq, int64_t bk) {
  return make_layout(1, Nq, Nk, bq, bk, [](int64_t, int64_t, int64_t) { return true; });
}
// Block (r, c) kept when some key of c is <= the last query of r + Nk - Nq (bottom-right causal).
Layout causal_layout(int64_t Nq, int64_t Nk, int64_t bq, int64_t bk) {
  return make_layout(1, Nq, Nk, bq, bk, [=](int64_t, int64_t r, int64_t c) {
    const int64_t last_q = std::min(Nq - 1, (r + 1) * bq - 1);
    return c * bk <= last_q + Nk - Nq;
  });
}
// Hostile layout (what the ops layer refuses, fed straight to the launchers): `bad` inserted at the end
// (or the start) of head 0's block row `row`, so the row stays sorted (bad >= nkb at the end, < 0 at the start).
Layout with_bad_index(Layout L, int64_t row, int32_t bad, bool at_start = false) {
  const size_t at = size_t(L.row_ptr[size_t(at_start ? row : row + 1)]);
  L.col_idx.insert(L.col_idx.begin() + std::ptrdiff_t(at), bad);
  for (size_t e = size_t(row + 1); e < L.row_ptr.size(); e++) L.row_ptr[e]++;
  L.max_row++;
  return L;
}

Layout random_layout(int64_t heads, int64_t Nq, int64_t Nk, int64_t bq, int64_t bk, double density) {
  std::uniform_real_distribution<double> u(0, 1);
  return make_layout(heads, Nq, Nk, bq, bk, [&](int64_t, int64_t, int64_t) { return u(rng()) < density; });
}

uint16_t to_half_bits(float x, DType dt) { return dt == DType::F16 ? llmk::f32_to_f16(x) : llmk::f32_to_bf16(x); }

// Host buffer in dtype from floats; also gives back the rounded floats.
std::vector<uint8_t> encode(const std::vector<float>& x, DType dt) {
  std::vector<uint8_t> raw(x.size() * llmk::dtype_size(dt));
  if (dt == DType::F32) std::memcpy(raw.data(), x.data(), raw.size());
  else {
    auto* h = reinterpret_cast<uint16_t*>(raw.data());
    for (size_t i = 0; i < x.size(); i++) h[i] = to_half_bits(x[i], dt);
  }
  return raw;
}
std::vector<float> decode(const std::vector<uint8_t>& raw, DType dt, size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; i++) x[i] = llmk::load_as_f32(raw.data(), int64_t(i), int(dt));
  return x;
}

// float64 reference expanding the layout to a dense mask (small cases): checks the CPU kernel itself.
std::vector<double> naive(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                          int64_t B, int64_t Nq, int64_t Nk, int64_t Hq, int64_t Hkv, int64_t D, const Layout& L,
                          double scale, bool causal, int64_t wl, int64_t wr, double softcap) {
  std::vector<double> out(static_cast<size_t>(B * Nq * Hq * D), 0.0), s(static_cast<size_t>(Nk));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t i = 0; i < Nq; i++) {
        const int64_t lh = L.heads == 1 ? 0 : h, r = i / L.bq, hk = h / (Hq / Hkv);
        std::vector<char> keep(size_t(Nk), 0);
        for (int32_t p = L.row_ptr[size_t(lh * (L.nqb + 1) + r)]; p < L.row_ptr[size_t(lh * (L.nqb + 1) + r + 1)]; p++)
          for (int64_t j = int64_t(L.col_idx[size_t(p)]) * L.bk; j < std::min(Nk, int64_t(L.col_idx[size_t(p)] + 1) * L.bk); j++)
            keep[size_t(j)] = 1;
        const auto kr = llmk::cpu::key_range(i, Nq, Nk, causal, wl, wr);
        double mx = -INFINITY;
        for (int64_t j = 0; j < Nk; j++) {
          s[size_t(j)] = -INFINITY;
          if (!keep[size_t(j)] || j < kr.lo || j > kr.hi) continue;
          double x = 0;
          for (int64_t d = 0; d < D; d++)
            x += double(q[size_t(((b * Nq + i) * Hq + h) * D + d)]) * double(k[size_t(((b * Nk + j) * Hkv + hk) * D + d)]);
          x *= scale;
          if (softcap > 0) x = softcap * std::tanh(x / softcap);
          s[size_t(j)] = x;
          mx = std::max(mx, x);
        }
        if (mx == -INFINITY) continue;
        double den = 0;
        for (int64_t j = 0; j < Nk; j++) den += std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j < Nk; j++) {
          const double w = std::exp(s[size_t(j)] - mx) / den;
          if (w == 0) continue;
          for (int64_t d = 0; d < D; d++)
            out[size_t(((b * Nq + i) * Hq + h) * D + d)] += w * double(v[size_t(((b * Nk + j) * Hkv + hk) * D + d)]);
        }
      }
  return out;
}

struct Case {
  std::string name;
  DType dt = DType::BF16;
  int64_t B = 1, Nq = 128, Nk = 128, Hq = 4, Hkv = 4, D = 64;
  Layout L;
  bool causal = false;
  int64_t wl = -1, wr = -1;
  float softcap = 0.f, scale = 0.f;  // scale 0 = 1/sqrt(D)
  int force = -1;
  float input_scale = 1.f;
  int64_t misalign_q = 0, misalign_kv = 0;  // elements the device q / k,v pointers are shifted by (unaligned views)
  bool no_lse = false;                      // launch with lse = nullptr
  bool hostile = false;                     // layout holds an out-of-range index: expect the error flag / ERR_LLMK_INDEX
  int expect_path = -1;                     // >= 0: the automatic path choice must be this one
};

// Host bytes shifted by `elems` elements (the device copy then starts off 16-byte alignment).
std::vector<uint8_t> shifted(const std::vector<uint8_t>& raw, int64_t elems, size_t es) {
  std::vector<uint8_t> r(size_t(elems) * es, 0);
  r.insert(r.end(), raw.begin(), raw.end());
  return r;
}

void run_case(const Case& c) {
  const size_t nq = size_t(c.B * c.Nq * c.Hq * c.D), nk = size_t(c.B * c.Nk * c.Hkv * c.D);
  const size_t nl = size_t(c.B * c.Hq * c.Nq);
  auto qraw = encode(randn(nq, c.input_scale), c.dt), kraw = encode(randn(nk, c.input_scale), c.dt),
       vraw = encode(randn(nk), c.dt);
  const size_t es = llmk::dtype_size(c.dt);
  const float scale = c.scale != 0.f ? c.scale : 1.f / std::sqrt(float(c.D));

  // CPU reference (the CPU kernel, itself tested against the float64 reference in jest).
  std::vector<uint8_t> out_cpu(nq * es);
  std::vector<float> lse_cpu(nl);
  llmk::cpu::AttnParams cp;
  cp.B = c.B; cp.Nq = c.Nq; cp.Nk = c.Nk; cp.Hq = c.Hq; cp.Hkv = c.Hkv; cp.D = c.D; cp.dtype = int(c.dt);
  cp.q = qraw.data(); cp.k = kraw.data(); cp.v = vraw.data(); cp.out = out_cpu.data(); cp.lse = lse_cpu.data();
  cp.row_ptr = c.L.row_ptr.data(); cp.col_idx = c.L.col_idx.data(); cp.layout_heads = c.L.heads;
  cp.nqb = c.L.nqb; cp.nkb = c.L.nkb; cp.nnz = int64_t(c.L.col_idx.size()); cp.block_q = c.L.bq; cp.block_k = c.L.bk;
  cp.scale = scale; cp.causal = c.causal; cp.win_left = c.wl; cp.win_right = c.wr; cp.softcap = c.softcap;
  if (c.hostile) {
    bool index_error = false;
    try {
      llmk::cpu::attention_block_sparse(cp);
    } catch (const llmk::Error& e) {
      index_error = e.code == llmk::ErrCode::Index;
    }
    report(c.name + " [cpu throws ERR_LLMK_INDEX]", index_error);
  } else {
    llmk::cpu::attention_block_sparse(cp);
  }
  if (!c.hostile && !g_skip_naive && double(c.B) * double(c.Nq) * double(c.Nk) * double(c.Hq) * double(c.D) <= 4e8) {
    auto ref = naive(decode(qraw, c.dt, nq), decode(kraw, c.dt, nk), decode(vraw, c.dt, nk), c.B, c.Nq, c.Nk, c.Hq,
                     c.Hkv, c.D, c.L, scale, c.causal, c.wl, c.wr, c.softcap);
    auto oc = decode(out_cpu, c.dt, nq);
    std::vector<float> rf(ref.begin(), ref.end());
    const double e = rel_l2(oc.data(), rf.data(), nq);
    char b2[96];
    std::snprintf(b2, sizeof b2, "rel_l2=%.2e", e);
    report(c.name + " [cpu vs float64 naive]", e < (c.dt == DType::F32 ? 1e-5 : 1e-2), b2);
  }
  if (g_cpu_only) return;

  DevBuf<uint8_t> dq(shifted(qraw, c.misalign_q, es)), dk(shifted(kraw, c.misalign_kv, es)),
      dv(shifted(vraw, c.misalign_kv, es)), dout(nq * es);
  DevBuf<float> dlse(nl);
  DevBuf<int32_t> drp(c.L.row_ptr), dci(c.L.col_idx.empty() ? std::vector<int32_t>{0} : c.L.col_idx);
  DevBuf<int> flag(1);
  TCUDA(cudaMemset(flag.p, 0, sizeof(int)));
  dout.poison(); dlse.poison();
  llmk::cuda::AttnParams gp;
  gp.B = c.B; gp.Nq = c.Nq; gp.Nk = c.Nk; gp.Hq = c.Hq; gp.Hkv = c.Hkv; gp.D = c.D; gp.dtype = int(c.dt);
  gp.q = dq.p + c.misalign_q * int64_t(es); gp.k = dk.p + c.misalign_kv * int64_t(es);
  gp.v = dv.p + c.misalign_kv * int64_t(es); gp.out = dout.p; gp.lse = c.no_lse ? nullptr : dlse.p;
  gp.row_ptr = drp.p; gp.col_idx = dci.p; gp.layout_heads = c.L.heads; gp.nqb = c.L.nqb; gp.nkb = c.L.nkb;
  gp.nnz = int64_t(c.L.col_idx.size()); gp.max_row_nnz = c.L.max_row; gp.block_q = c.L.bq; gp.block_k = c.L.bk;
  gp.scale = scale; gp.causal = c.causal; gp.win_left = c.wl; gp.win_right = c.wr; gp.softcap = c.softcap;
  gp.err_flag = flag.p;
  const int64_t wsn = llmk::cuda::attention_workspace_floats(gp, c.force);
  DevBuf<float> ws(size_t(std::max<int64_t>(wsn, 1)));
  ws.poison();  // every split must write its partial rows before the merge reads them
  const int path = c.force >= 0 ? c.force : int(llmk::cuda::attention_path(gp));
  if (c.expect_path >= 0 && c.force < 0 && path != c.expect_path)
    report(c.name + " [path choice]", false, "path=" + std::to_string(path) + " expected " + std::to_string(c.expect_path));
  try {
    llmk::cuda::attention_block_sparse(gp, wsn ? ws.p : nullptr, nullptr, c.force);
  } catch (const std::exception& e) {
    report(c.name, false, std::string("threw: ") + e.what());
    return;
  }
  TCUDA(cudaDeviceSynchronize());
  const int fl = flag.download()[0];

  auto o_gpu = decode(dout.download(), c.dt, nq), o_cpu = decode(out_cpu, c.dt, nq);
  auto l_gpu = dlse.download();
  if (c.hostile) {  // the flag is what matters; every output element must still be written (no poison left)
    size_t nan_h = 0;
    for (float x : o_gpu) nan_h += std::isnan(x) ? 1 : 0;
    for (float x : l_gpu) nan_h += std::isnan(x) ? 1 : 0;
    char hb[128];
    std::snprintf(hb, sizeof hb, "path=%d flag=%d unwritten(NaN)=%zu", path, fl, nan_h);
    report(c.name, fl != 0 && nan_h == 0, hb);
    return;
  }
  size_t lse_written = 0;
  if (c.no_lse) {  // lse not asked for: the poisoned buffer must stay untouched; compare the output only
    for (float x : l_gpu) lse_written += std::isnan(x) ? 0 : 1;
    l_gpu = lse_cpu;
  }
  // LSE: same -inf positions; relative L2 over the finite ones.
  bool lse_inf_ok = true;
  size_t n_inf = 0;
  std::vector<float> lg, lc;
  for (size_t i = 0; i < nl; i++) {
    const bool ig = std::isinf(l_gpu[i]) && l_gpu[i] < 0, ic = std::isinf(lse_cpu[i]) && lse_cpu[i] < 0;
    if (ig != ic) lse_inf_ok = false;
    if (ic) n_inf++;
    else { lg.push_back(l_gpu[i]); lc.push_back(lse_cpu[i]); }
  }
  size_t nan_out = 0;
  for (float x : o_gpu) nan_out += std::isnan(x) ? 1 : 0;
  const double e_out = rel_l2(o_gpu.data(), o_cpu.data(), nq);
  const double e_lse = lg.empty() ? 0.0 : rel_l2(lg.data(), lc.data(), lg.size());
  const double tol = c.dt == DType::F32 ? 1e-5 : 1e-2;
  char buf[256];
  std::snprintf(buf, sizeof buf, "path=%d out_rel_l2=%.2e lse_rel_l2=%.2e masked_rows=%zu nan=%zu flag=%d%s", path,
                e_out, e_lse, n_inf, nan_out, fl, lse_written ? " lse written without being asked" : "");
  report(c.name, e_out < tol && e_lse < 1e-4 && lse_inf_ok && nan_out == 0 && fl == 0 && lse_written == 0, buf);
}

// ---- timing (--bench) --------------------------------------------------------------------------
void bench_case(const char* name, int64_t N, int64_t Nq, const Layout& L, bool causal, int64_t wl, int64_t wr,
                double kept_flops) {
  const int64_t B = 1, Hq = 32, Hkv = 8, D = 128;
  const size_t nq = size_t(B * Nq * Hq * D), nk = size_t(B * N * Hkv * D);
  DevBuf<uint16_t> dq(nq), dk(nk), dv(nk), dout(nq);
  {
    std::vector<uint16_t> h(std::max(nq, nk));
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& x : h) x = llmk::f32_to_bf16(nd(rng()));
    TCUDA(cudaMemcpy(dq.p, h.data(), nq * 2, cudaMemcpyHostToDevice));
    TCUDA(cudaMemcpy(dk.p, h.data(), nk * 2, cudaMemcpyHostToDevice));
    TCUDA(cudaMemcpy(dv.p, h.data() + 7, (nk - 7) * 2, cudaMemcpyHostToDevice));
  }
  DevBuf<float> dlse(size_t(B * Hq * Nq));
  DevBuf<int32_t> drp(L.row_ptr), dci(L.col_idx);
  llmk::cuda::AttnParams gp;
  gp.B = B; gp.Nq = Nq; gp.Nk = N; gp.Hq = Hq; gp.Hkv = Hkv; gp.D = D; gp.dtype = int(DType::BF16);
  gp.q = dq.p; gp.k = dk.p; gp.v = dv.p; gp.out = dout.p; gp.lse = dlse.p;
  gp.row_ptr = drp.p; gp.col_idx = dci.p; gp.layout_heads = L.heads; gp.nqb = L.nqb; gp.nkb = L.nkb;
  gp.nnz = int64_t(L.col_idx.size()); gp.max_row_nnz = L.max_row; gp.block_q = L.bq; gp.block_k = L.bk;
  gp.scale = 1.f / std::sqrt(float(D)); gp.causal = causal; gp.win_left = wl; gp.win_right = wr;
  const int64_t wsn = llmk::cuda::attention_workspace_floats(gp);
  DevBuf<float> ws(size_t(std::max<int64_t>(wsn, 1)));
  auto launch = [&] { llmk::cuda::attention_block_sparse(gp, wsn ? ws.p : nullptr, nullptr); };
  launch();
  TCUDA(cudaDeviceSynchronize());
  cudaEvent_t e0, e1;
  TCUDA(cudaEventCreate(&e0)); TCUDA(cudaEventCreate(&e1));
  // iterations sized to ~200 ms
  TCUDA(cudaEventRecord(e0));
  launch();
  TCUDA(cudaEventRecord(e1));
  TCUDA(cudaEventSynchronize(e1));
  float ms1 = 0;
  TCUDA(cudaEventElapsedTime(&ms1, e0, e1));
  const int iters = std::max(3, std::min(200, int(200.f / std::max(ms1, 0.01f))));
  std::vector<float> times;
  for (int it = 0; it < iters; it++) {
    TCUDA(cudaEventRecord(e0));
    launch();
    TCUDA(cudaEventRecord(e1));
    TCUDA(cudaEventSynchronize(e1));
    float ms = 0;
    TCUDA(cudaEventElapsedTime(&ms, e0, e1));
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  const double ms = times[times.size() / 2];
  const double density = double(L.col_idx.size()) / double(L.heads * L.nqb * L.nkb);
  std::printf("{\"case\":\"%s\",\"impl\":\"llmk\",\"N\":%lld,\"Nq\":%lld,\"ms\":%.4f,\"density\":%.4f,"
              "\"tflops\":%.1f,\"path\":%d}\n",
              name, (long long)N, (long long)Nq, ms, density, kept_flops / (ms * 1e-3) / 1e12,
              int(llmk::cuda::attention_path(gp)));
  std::fflush(stdout);
  TCUDA(cudaEventDestroy(e0)); TCUDA(cudaEventDestroy(e1));
}

// FLOPs over the token-visible pairs of the kept blocks: 4·D per (query, key) pair per head.
double kept_flops(const Layout& L, int64_t Nq, int64_t Nk, bool causal, int64_t wl, int64_t wr, int64_t Hq, int64_t D) {
  double pairs = 0;
  for (int64_t r = 0; r < L.nqb; r++)
    for (int64_t qi = r * L.bq; qi < std::min(Nq, (r + 1) * L.bq); qi++) {
      const auto kr = llmk::cpu::key_range(qi, Nq, Nk, causal, wl, wr);
      for (int32_t p = L.row_ptr[size_t(r)]; p < L.row_ptr[size_t(r + 1)]; p++) {
        const int64_t j0 = int64_t(L.col_idx[size_t(p)]) * L.bk, j1 = std::min(Nk, j0 + L.bk) - 1;
        const int64_t a = std::max(j0, kr.lo), b = std::min(j1, kr.hi);
        if (b >= a) pairs += double(b - a + 1);
      }
    }
  return pairs * 4.0 * double(D) * double(Hq);
}

int bench(bool dense_only) {
  for (int64_t N : {4096LL, 16384LL, 65536LL}) {
    const int64_t bs = 64;
    if (dense_only && N != 16384) continue;
    auto dense = dense_layout(N, N, 128, 128);
    bench_case("dense", N, N, dense, false, -1, -1, kept_flops(dense, N, N, false, -1, -1, 32, 128));
    auto causal = causal_layout(N, N, 128, 128);
    bench_case("causal", N, N, causal, true, -1, -1, kept_flops(causal, N, N, true, -1, -1, 32, 128));
    if (dense_only) continue;
    // sliding window 1024 (causal): blocks within the band.
    auto sw = make_layout(1, N, N, bs, bs, [&](int64_t, int64_t r, int64_t c) {
      return c <= r && (r - c) * bs <= 1024 + bs;
    });
    bench_case("sliding1024", N, N, sw, true, 1024, 0, kept_flops(sw, N, N, true, 1024, 0, 32, 128));
    // Phi-3-small: 64-token blocks, 16 local blocks, vertical stride 8 (causal).
    auto st = make_layout(1, N, N, bs, bs, [&](int64_t, int64_t r, int64_t c) {
      return c <= r && (r - c < 16 || (c + 1) % 8 == 0);
    });
    bench_case("strided", N, N, st, true, -1, -1, kept_flops(st, N, N, true, -1, -1, 32, 128));
    // globalLocal: 2 global blocks (rows and columns) + local band of 3 blocks each side.
    auto gl = make_layout(1, N, N, bs, bs, [&](int64_t, int64_t r, int64_t c) {
      return r < 2 || c < 2 || std::abs(r - c) <= 3;
    });
    bench_case("globalLocal", N, N, gl, false, -1, -1, kept_flops(gl, N, N, false, -1, -1, 32, 128));
  }
  auto dec = dense_layout(1, 65536, 64, 128);
  bench_case("decode", 65536, 1, dec, false, -1, -1, kept_flops(dec, 1, 65536, false, -1, -1, 32, 128));
  return finish();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return bench(false);
  if (argc > 1 && std::strcmp(argv[1], "--bench-dense") == 0) return bench(true);  // dense + causal, N = 16384
  g_cpu_only = argc > 1 && std::strcmp(argv[1], "--cpu-only") == 0;
  run_seed();
  std::vector<Case> cases;
  auto add = [&](Case c) { cases.push_back(std::move(c)); };
  {  // tiny, float32, odd sizes -> generic path
    Case c; c.name = "f32 tiny B2 Nq5 Nk7 D8 GQA2"; c.dt = DType::F32; c.B = 2; c.Nq = 5; c.Nk = 7; c.Hq = 2; c.Hkv = 1;
    c.D = 8; c.L = dense_layout(5, 7, 64, 64); add(c);
  }
  {
    Case c; c.name = "f32 causal tails Nq200 Nk300 D64 GQA4"; c.dt = DType::F32; c.Nq = 200; c.Nk = 300; c.Hq = 8;
    c.Hkv = 2; c.D = 64; c.causal = true; c.L = causal_layout(200, 300, 64, 128); add(c);
  }
  for (DType dt : {DType::F16, DType::BF16}) {
    const char* dn = dt == DType::F16 ? "f16" : "bf16";
    for (int64_t D : {64LL, 128LL}) {
      Case c; c.dt = dt; c.D = D; c.B = 2; c.Nq = 257; c.Nk = 333; c.Hq = 6; c.Hkv = 2;
      c.L = dense_layout(257, 333, 64, 64);
      c.name = std::string(dn) + " dense tails D" + std::to_string(D) + " (tensor core)"; add(c);
      c.force = 0; c.name = std::string(dn) + " dense tails D" + std::to_string(D) + " (generic forced)"; add(c);
      c.force = -1; c.causal = true; c.L = causal_layout(257, 333, 128, 64);
      c.name = std::string(dn) + " causal bq128 bk64 D" + std::to_string(D); add(c);
      c.causal = false; c.L = random_layout(6, 257, 333, 64, 128, 0.4);
      c.name = std::string(dn) + " per-head random layout bk128 D" + std::to_string(D); add(c);
      c.L = random_layout(1, 257, 333, 64, 64, 0.5); c.wl = 70; c.wr = 10;
      c.name = std::string(dn) + " window(70,10) random layout D" + std::to_string(D); add(c);
      c.wl = c.wr = -1; c.softcap = 5.f; c.input_scale = 4.f; c.L = dense_layout(257, 333, 64, 64);
      c.name = std::string(dn) + " softcap 5 large logits D" + std::to_string(D); add(c);
    }
  }
  {
    Case c; c.name = "bf16 D96 generic causal"; c.dt = DType::BF16; c.Nq = 190; c.Nk = 190; c.D = 96; c.Hq = 4;
    c.Hkv = 4; c.causal = true; c.L = causal_layout(190, 190, 64, 64); add(c);
    c.name = "f16 D256 generic"; c.dt = DType::F16; c.D = 256; c.causal = false; c.L = dense_layout(190, 190, 64, 64);
    add(c);
    c.name = "f16 D72 window"; c.D = 72; c.wl = 33; c.wr = 5; add(c);
  }
  {  // fully masked rows: Nq > Nk with causal -> the first Nq - Nk rows see nothing; plus an empty layout row
    Case c; c.name = "bf16 fully masked rows (Nq>Nk causal) + empty layout rows"; c.dt = DType::BF16; c.Nq = 300;
    c.Nk = 200; c.D = 128; c.causal = true;
    c.L = make_layout(1, 300, 200, 64, 64, [](int64_t, int64_t r, int64_t c2) { return r != 3 && c2 <= r; });
    add(c);
    c.name = "f32 fully masked rows generic"; c.dt = DType::F32; add(c);
  }
  {  // decode: Nq = 1 and 16, long Nk, split-K; shared layout (GQA group mode) and per-head layout
    Case c; c.name = "bf16 decode Nq1 Nk8192 GQA4 split-K"; c.dt = DType::BF16; c.Nq = 1; c.Nk = 8192; c.Hq = 16;
    c.Hkv = 4; c.D = 128; c.L = dense_layout(1, 8192, 64, 128); add(c);
    c.name = "f16 decode Nq16 Nk5000 causal per-head layout"; c.dt = DType::F16; c.Nq = 16; c.Nk = 5000; c.D = 64;
    c.causal = true; c.L = random_layout(16, 16, 5000, 64, 64, 0.6); add(c);
    c.name = "f32 decode Nq3 Nk3000 window"; c.dt = DType::F32; c.Nq = 3; c.Nk = 3000; c.D = 128; c.causal = false;
    c.wl = 1000; c.wr = 0; c.L = dense_layout(3, 3000, 64, 64); add(c);
    c.name = "bf16 split-K decode kernel forced on prefill Nq300"; c.dt = DType::BF16; c.Nq = 300; c.Nk = 4000;
    c.D = 128; c.wl = -1; c.wr = -1; c.force = 2; c.L = random_layout(1, 300, 4000, 64, 64, 0.5); add(c);
    c.name = "bf16 generic split-K (path 3) forced on prefill Nq300"; c.force = 3; add(c);
    c.name = "bf16 generic split-K (path 3) decode GQA4"; c.Nq = 1; c.Nk = 8192; c.Hq = 16; c.Hkv = 4;
    c.L = dense_layout(1, 8192, 64, 128); add(c);
    c.name = "f16 decode Nq16 GQA8 causal shared layout (64 rows/KV head)"; c.dt = DType::F16; c.force = -1;
    c.Nq = 16; c.Nk = 3000; c.Hq = 16; c.Hkv = 2; c.causal = true; c.L = causal_layout(16, 3000, 64, 64); add(c);
    c.name = "bf16 decode D96 unaligned-size window"; c.dt = DType::BF16; c.D = 96; c.Nq = 2; c.Nk = 1111;
    c.causal = false; c.wl = 300; c.wr = 0; c.L = dense_layout(2, 1111, 64, 128); add(c);
    c.name = "f16 decode D256 per-head random"; c.dt = DType::F16; c.D = 256; c.Nq = 5; c.Nk = 2000; c.wl = c.wr = -1;
    c.L = random_layout(16, 5, 2000, 64, 64, 0.5); add(c);
  }
  {  // unaligned views (e.g. a narrow of a flat buffer): 16-byte loads / cp.async must not be used on them
    Case c; c.name = "f16 D64 q,k,v off 16-byte alignment (tensor core -> generic, scalar K/V loads)"; c.dt = DType::F16;
    c.B = 2; c.Nq = 130; c.Nk = 190; c.Hq = 4; c.Hkv = 2; c.D = 64; c.causal = true; c.misalign_q = 1; c.misalign_kv = 1;
    c.expect_path = 0; c.L = causal_layout(130, 190, 64, 64); add(c);
    c.name = "bf16 D128 q off alignment only (tensor core -> generic, vector K/V loads)"; c.dt = DType::BF16; c.D = 128;
    c.misalign_kv = 0; c.L = causal_layout(130, 190, 128, 64); add(c);
    c.name = "f32 D40 k,v off alignment (generic, scalar loads)"; c.dt = DType::F32; c.D = 40; c.misalign_q = 0;
    c.misalign_kv = 1; c.causal = false; c.wl = 50; c.wr = 20; c.L = dense_layout(130, 190, 64, 64); add(c);
    c.name = "bf16 decode B3 Nq1 Nk3000 GQA4 k,v off alignment (scalar decode, split-K)"; c.dt = DType::BF16; c.D = 128;
    c.B = 3; c.Nq = 1; c.Nk = 3000; c.Hq = 8; c.Hkv = 2; c.wl = c.wr = -1; c.misalign_q = 1; c.misalign_kv = 1;
    c.expect_path = 2; c.L = dense_layout(1, 3000, 64, 128); add(c);
    c.name = "f16 decode B3 Nq7 Nk2500 D256 per-head causal k,v off alignment"; c.dt = DType::F16; c.D = 256; c.Nq = 7;
    c.Nk = 2500; c.causal = true; c.L = random_layout(8, 7, 2500, 64, 64, 0.7); add(c);
  }
  {  // batch > 1 through the split-K merge, and launches without an lse buffer
    Case c; c.name = "bf16 decode B3 Nq4 Nk4100 GQA4 split-K (aligned)"; c.dt = DType::BF16; c.B = 3; c.Nq = 4;
    c.Nk = 4100; c.Hq = 8; c.Hkv = 2; c.D = 128; c.expect_path = 2; c.L = dense_layout(4, 4100, 64, 64); add(c);
    c.name = "bf16 decode without lse (split-K)"; c.no_lse = true; add(c);
    c.name = "f16 D128 causal bq128 without lse (tensor core)"; c.dt = DType::F16; c.B = 2; c.Nq = 200; c.Nk = 200;
    c.causal = true; c.expect_path = 1; c.L = causal_layout(200, 200, 128, 128); add(c);
    c.name = "f32 D24 without lse (generic)"; c.dt = DType::F32; c.D = 24; c.expect_path = 0; add(c);
    c.name = "bf16 D64 causal bq128 bk128 (tensor core, 128-row CTA, 2 K tiles per block)"; c.dt = DType::BF16;
    c.D = 64; c.no_lse = false; c.Nq = 300; c.Nk = 333; c.expect_path = 1; c.L = causal_layout(300, 333, 128, 128); add(c);
  }
  {  // hostile layouts straight to the launchers: out-of-range column index -> device flag (ERR_LLMK_INDEX)
    Case c; c.hostile = true; c.Hq = 2; c.Hkv = 1;
    c.name = "hostile colIdx = nKB at a row end (tensor core)"; c.dt = DType::BF16; c.D = 128; c.Nq = 130; c.Nk = 200;
    c.L = with_bad_index(dense_layout(130, 200, 64, 64), 1, 4); add(c);
    c.name = "hostile colIdx = nKB at a row end, causal skips it (generic f32)"; c.dt = DType::F32; c.D = 64;
    c.causal = true; c.Nk = 130; c.L = with_bad_index(causal_layout(130, 130, 64, 64), 0, 3); add(c);
    c.name = "hostile colIdx = -1 at a row start (generic f32)"; c.causal = false;
    c.L = with_bad_index(dense_layout(130, 130, 64, 64), 1, -1, true); add(c);
    c.name = "hostile colIdx = nKB at a row end (split-K decode)"; c.dt = DType::BF16; c.Nq = 1; c.Nk = 3000;
    c.L = with_bad_index(dense_layout(1, 3000, 64, 64), 0, 47); add(c);
    c.name = "hostile colIdx = nKB at a row end (generic split-K, path 3)"; c.force = 3; add(c);
  }
  {  // large
    Case c; c.name = "bf16 large causal N2048 H8/2 D128"; c.dt = DType::BF16; c.Nq = 2048; c.Nk = 2048; c.Hq = 8;
    c.Hkv = 2; c.D = 128; c.causal = true; c.L = causal_layout(2048, 2048, 128, 128); add(c);
    c.name = "f16 large sparse N2048 D64 extreme scale"; c.dt = DType::F16; c.D = 64; c.causal = false;
    c.scale = 3.f; c.L = random_layout(8, 2048, 2048, 64, 64, 0.3); add(c);
  }
  // LLMK_TEST_SMALL=1 (compute-sanitizer runs): small cases only, no float64 reference checks.
  const bool small = std::getenv("LLMK_TEST_SMALL") != nullptr;
  if (small) g_skip_naive = true;
  for (const auto& c : cases) {
    if (small && double(c.B) * double(c.Nq) * double(c.Nk) * double(c.Hq) > 4e6) continue;
    run_case(c);
  }
  if (g_cpu_only) {
    std::printf("%s: %d failure(s)\n", failures() ? "FAILED" : "OK", failures());
    return failures() ? 1 : 0;
  }
  return finish();
}
