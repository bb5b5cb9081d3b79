// Block-sparse attention forward on the CPU. One task = (batch, query head, query block row).
// For each kept key block of the row: convert its K and V rows to float32 once, then for every
// query row of the block compute the scores of the visible keys (the token mask is a per-row key
// interval, so blocks fully inside it need no per-element test), and fold them into the row's
// running max / sum / accumulator (online softmax). Memory per task: O(blockQ·D + blockK·D).
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

// Row of `n` elements of `dtype` starting at element `off` into float32.
void load_row(const void* base, int64_t off, int64_t n, int dtype, float* dst) {
  if (dtype == int(DType::F32)) {
    const float* s = static_cast<const float*>(base) + off;
    for (int64_t d = 0; d < n; d++) dst[d] = s[d];
  } else if (dtype == int(DType::F16)) {
    const uint16_t* s = static_cast<const uint16_t*>(base) + off;
    for (int64_t d = 0; d < n; d++) dst[d] = f16_to_f32(s[d]);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(base) + off;
    for (int64_t d = 0; d < n; d++) dst[d] = bf16_to_f32(s[d]);
  }
}

// Dot product with 8 independent partial sums so the compiler can vectorise without reassociation.
__attribute__((always_inline)) inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; u++) acc[u] += a[d + u] * b[d + u];
  for (; d < n; d++) acc[0] += a[d] * b[d];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// exp(x) for x <= 0 (x = -inf gives exactly 0), branch-free so loops over it vectorise; relative error
// about 2e-7 (exp2 of the fraction by a degree-5 polynomial, the integer part into the exponent bits).
__attribute__((always_inline)) inline float exp_nonpos(float x) {
  const float y = std::max(x, -87.0f) * 1.44269504088896341f;
  const float n = std::floor(y), f = y - n;
  float p = 1.8775767e-3f;
  p = p * f + 8.9893397e-3f;
  p = p * f + 5.5826318e-2f;
  p = p * f + 2.4015361e-1f;
  p = p * f + 6.9315308e-1f;
  p = p * f + 9.9999994e-1f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, 4);
  return x == -std::numeric_limits<float>::infinity() ? 0.f : p * scale;
}


// Folds the visible keys [ja, jb] of one converted K/V block into one query row's online-softmax state
// (running max m, sum l, accumulator ar). Cloned for AVX2 with run-time dispatch (no -march flags).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("default", "avx2")))
#endif
void fold_block(const float* qr, const float* kbuf, const float* vbuf, int64_t ja, int64_t jb, int64_t D, float scale,
                float softcap, float* s, float* ar, float* m, float* l) {
  const float ninf = -std::numeric_limits<float>::infinity();
  float mx = ninf;
  for (int64_t j = ja; j <= jb; j++) {
    float x = dot(qr, kbuf + j * D, D) * scale;
    if (softcap > 0.f) x = softcap * std::tanh(x / softcap);
    s[j] = x;
    mx = std::max(mx, x);
  }
  if (mx == ninf) return;  // every visible logit is -inf: contributes nothing
  const float mnew = std::max(*m, mx);
  const float alpha = std::exp(*m - mnew);  // exp(-inf) = 0 on the first block
  float sum = 0.f;
  if (alpha != 1.f)
    for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
  for (int64_t j = ja; j <= jb; j++) s[j] = exp_nonpos(s[j] - mnew);
  for (int64_t j = ja; j <= jb; j++) sum += s[j];
  for (int64_t j = ja; j <= jb; j++) {
    const float pj = s[j];
    const float* vr = vbuf + j * D;
    for (int64_t d = 0; d < D; d++) ar[d] += pj * vr[d];
  }
  *l = *l * alpha + sum;
  *m = mnew;
}

}  // namespace

void attention_block_sparse(const AttnParams& p) {
  const int64_t B = p.B, Nq = p.Nq, Nk = p.Nk, Hq = p.Hq, Hkv = p.Hkv, D = p.D;
  const int64_t bq = p.block_q, bk = p.block_k, nqb = p.nqb;
  const int64_t group = Hq / Hkv;
  const int dt = p.dtype;
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t tasks = B * Hq * nqb;
  if (tasks == 0) return;

  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    const size_t nq_buf = static_cast<size_t>(bq), nk_buf = static_cast<size_t>(bk), d_buf = static_cast<size_t>(D);
    std::vector<float> qbuf(nq_buf * d_buf), acc(nq_buf * d_buf), kbuf(nk_buf * d_buf), vbuf(nk_buf * d_buf);
    std::vector<float> m(nq_buf), l(nq_buf), s(nk_buf);
    std::vector<KeyRange> range(nq_buf);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t b = t / (Hq * nqb), hq = (t / nqb) % Hq, qb = t % nqb;
      const int64_t hkv = hq / group;
      const int64_t i0 = qb * bq, nr = std::min(bq, Nq - i0);
      for (int64_t r = 0; r < nr; r++) {
        load_row(p.q, ((b * Nq + i0 + r) * Hq + hq) * D, D, dt, &qbuf[size_t(r * D)]);
        range[size_t(r)] = key_range(i0 + r, Nq, Nk, p.causal, p.win_left, p.win_right);
        m[size_t(r)] = ninf;
        l[size_t(r)] = 0.f;
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      // Keys any row of this block row can see (lo and hi are non-decreasing in i).
      const int64_t lo_all = range[0].lo, hi_all = range[size_t(nr - 1)].hi;

      const int32_t* rp = p.row_ptr + (p.layout_heads == 1 ? 0 : hq) * (nqb + 1);
      const int64_t pb = rp[qb], pe = rp[qb + 1];
      if (pb < 0 || pe < pb || pe > p.nnz)
        throw Error(ErrCode::Index, fmt("attention: block layout rowPtr out of range at block row %lld", (long long)qb));
      for (int64_t pi = pb; pi < pe; pi++) {
        const int64_t kb = p.col_idx[pi];
        if (kb < 0 || kb >= p.nkb)
          throw Error(ErrCode::Index, fmt("attention: block layout column index %lld out of range [0, %lld)",
                                          (long long)kb, (long long)p.nkb));
        const int64_t j0 = kb * bk, nk = std::min(bk, Nk - j0);
        if (j0 > hi_all || j0 + nk - 1 < lo_all) continue;  // no row sees this block
        for (int64_t j = 0; j < nk; j++) {
          const int64_t off = ((b * Nk + j0 + j) * Hkv + hkv) * D;
          load_row(p.k, off, D, dt, &kbuf[size_t(j * D)]);
          load_row(p.v, off, D, dt, &vbuf[size_t(j * D)]);
        }
        for (int64_t r = 0; r < nr; r++) {
          const KeyRange kr = range[size_t(r)];
          const int64_t ja = std::max<int64_t>(0, kr.lo - j0), jb = std::min(nk - 1, kr.hi - j0);
          if (ja > jb) continue;
          fold_block(&qbuf[size_t(r * D)], kbuf.data(), vbuf.data(), ja, jb, D, p.scale, p.softcap, s.data(),
                     &acc[size_t(r * D)], &m[size_t(r)], &l[size_t(r)]);
        }
      }
      for (int64_t r = 0; r < nr; r++) {
        const float lr = l[size_t(r)];
        const float inv = lr > 0.f ? 1.f / lr : 0.f;
        const int64_t off = ((b * Nq + i0 + r) * Hq + hq) * D;
        for (int64_t d = 0; d < D; d++) store_from_f32(p.out, off + d, dt, acc[size_t(r * D + d)] * inv);
        if (p.lse) p.lse[(b * Hq + hq) * Nq + i0 + r] = lr > 0.f ? m[size_t(r)] + std::log(lr) : ninf;
      }
    }
  });
}

}  // namespace llmk::cpu
