// Native GPU test of the serving attention kernels (cuda/attention_paged.cu) against the CPU core: varlen
// and paged (page sizes 16 and 64, pages in shuffled order) on a ragged batch with empty sequences, every
// mask, GQA, float32; the cache scatter; a page id outside the cache raises the device flag. Float32 only
// (the half paths share the kernel template). Written and compiled without a GPU: not yet run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "../src/core/dtype.h"
#include "../src/cpu/attention_core.h"
#include "../src/cuda/attention_paged.h"
#include "test_util.h"

using namespace llmk_test;

namespace {

struct Mask { const char* name; bool causal; int64_t wl, wr; float softcap; };

const int64_t Hq = 8, Hkv = 2, D = 64;
const std::vector<int64_t> LQ = {1, 9, 70, 0, 0}, LK = {300, 300, 70, 0, 21};

std::vector<int32_t> offsets(const std::vector<int64_t>& l) {
  std::vector<int32_t> cu(1, 0);
  for (int64_t x : l) cu.push_back(cu.back() + int32_t(x));
  return cu;
}

// CPU core on the contiguous layout: out [totalQ, Hq, D], lse [Hq, totalQ].
void cpu_ref(const Mask& m, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
             std::vector<float>& out, std::vector<float>& lse) {
  const std::vector<int32_t> cq = offsets(LQ), ck = offsets(LK);
  std::vector<llmk::cpu::AttnSeq> seqs(LQ.size());
  for (size_t b = 0; b < LQ.size(); b++) {
    seqs[b].q0 = cq[b]; seqs[b].nq = LQ[b]; seqs[b].k0 = ck[b]; seqs[b].nk = LK[b]; seqs[b].lse0 = cq[b];
  }
  llmk::cpu::AttnCoreArgs a;
  a.dtype = int(llmk::DType::F32); a.Hq = Hq; a.Hkv = Hkv; a.D = D;
  a.q = q.data(); a.out = out.data(); a.lse = lse.data(); a.lse_hstride = cq.back();
  a.k = k.data(); a.v = v.data(); a.seqs = seqs.data(); a.nseq = int64_t(seqs.size());
  a.causal = m.causal; a.win_left = m.wl; a.win_right = m.wr; a.softcap = m.softcap; a.scale = 1.f / std::sqrt(float(D));
  llmk::cpu::attention_core(a);
}

bool close(const std::vector<float>& a, const std::vector<float>& b, double tol, std::string* detail) {
  const double e = rel_l2(a.data(), b.data(), a.size());
  *detail = "rel L2 " + std::to_string(e);
  return e < tol;
}

int flag_value(int* flag) {
  int h = 0;
  TCUDA(cudaMemcpy(&h, flag, sizeof(int), cudaMemcpyDeviceToHost));
  TCUDA(cudaMemset(flag, 0, sizeof(int)));
  return h;
}

}  // namespace

int main() {
  run_seed();
  const std::vector<int32_t> cq = offsets(LQ), ck = offsets(LK);
  const int64_t TQ = cq.back(), TK = ck.back();
  const std::vector<float> q = randn(size_t(TQ * Hq * D)), k = randn(size_t(TK * Hkv * D)), v = randn(size_t(TK * Hkv * D));
  DevBuf<float> dq(q), dk(k), dv(v), dout(size_t(TQ * Hq * D)), dlse(size_t(Hq * TQ));
  DevBuf<int32_t> dcq(cq), dck(ck);
  DevBuf<int> flag(1);
  TCUDA(cudaMemset(flag.p, 0, sizeof(int)));
  const Mask masks[] = {{"none", false, -1, -1, 0.f}, {"causal", true, -1, -1, 0.f}, {"causal window 37", true, 37, 0, 0.f},
                        {"window 20/9 softcap 5", false, 20, 9, 5.f}};
  for (const Mask& m : masks) {
    std::vector<float> ro(size_t(TQ * Hq * D)), rl(size_t(Hq * TQ));
    cpu_ref(m, q, k, v, ro, rl);
    llmk::cuda::ServingParams p;
    p.dtype = int(llmk::DType::F32); p.B = int64_t(LQ.size()); p.Hq = Hq; p.Hkv = Hkv; p.D = D; p.total_q = TQ; p.total_k = TK;
    p.q = dq.p; p.out = dout.p; p.lse = dlse.p; p.k = dk.p; p.v = dv.p; p.cu_q = dcq.p; p.cu_k = dck.p;
    p.causal = m.causal; p.win_left = m.wl; p.win_right = m.wr; p.softcap = m.softcap; p.scale = 1.f / std::sqrt(float(D));
    p.err_flag = flag.p;
    dout.poison();
    llmk::cuda::attention_serving(p, nullptr);
    std::string det;
    report(std::string("varlen ") + m.name + " out", close(dout.download(), ro, 1e-5, &det), det);
    report(std::string("varlen ") + m.name + " lse", close(dlse.download(), rl, 1e-5, &det), det);
    report(std::string("varlen ") + m.name + " no flag", flag_value(flag.p) == 0);

    for (int64_t ps : {16, 64}) {
      // Pages in reverse order; the cache filled through the scatter kernel.
      const int64_t maxp = (300 + ps - 1) / ps, npages = maxp * int64_t(LK.size());
      std::vector<int32_t> table(size_t(LK.size() * maxp), 0), slots;
      int32_t next = int32_t(npages) - 1;
      for (size_t b = 0; b < LK.size(); b++)
        for (int64_t j = 0; j < LK[b]; j++) {
          if (j % ps == 0) table[b * maxp + j / ps] = next--;
          slots.push_back(int32_t(table[b * maxp + j / ps] * ps + j % ps));
        }
      DevBuf<float> kc(size_t(npages * ps * Hkv * D)), vc(size_t(npages * ps * Hkv * D));
      DevBuf<int32_t> dslots(slots), dtable(table), dlens(std::vector<int32_t>(LK.begin(), LK.end()));
      llmk::cuda::attention_cache_append(kc.p, vc.p, dk.p, dv.p, dslots.p, TK, Hkv * D, npages * ps, int(llmk::DType::F32),
                                         flag.p, nullptr);
      llmk::cuda::ServingParams pp = p;
      pp.cu_k = nullptr; pp.k = kc.p; pp.v = vc.p; pp.block_tables = dtable.p; pp.seq_lens = dlens.p;
      pp.max_pages = maxp; pp.page_size = ps; pp.num_pages = npages;
      dout.poison();
      llmk::cuda::attention_serving(pp, nullptr);
      const std::string tag = std::string("paged ") + std::to_string(ps) + " " + m.name;
      report(tag + " out", close(dout.download(), ro, 1e-5, &det), det);
      report(tag + " lse", close(dlse.download(), rl, 1e-5, &det), det);
      report(tag + " no flag", flag_value(flag.p) == 0);
      if (m.causal && m.wl < 0 && ps == 16) {  // a page id outside the cache in a page that is read: flag, no crash
        std::vector<int32_t> bad = table;
        bad[0] = int32_t(npages + 5);
        dtable.upload(bad);
        llmk::cuda::attention_serving(pp, nullptr);
        TCUDA(cudaDeviceSynchronize());
        report(tag + " bad page id raises the flag", flag_value(flag.p) == 1);
      }
    }
  }
  return finish();
}
