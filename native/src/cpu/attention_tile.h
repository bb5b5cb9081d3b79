// Attention task body, included once per instruction set by attention_core.cpp inside a `#pragma GCC target`
// region and its own namespace, so the GEMM micro-kernels and the softmax loops are compiled for that ISA.
// No include guard on purpose; it includes nothing. The including namespace defines:
//   V (a vector of L floats), L; R (rows of a micro-kernel call), NVM (most vectors per row of one call);
//   vzero, vload, vstore, vbcast, vfma, vset, vmax, vfloor, vpow2 (2^n of integral lanes), vzero_where_ninf, vhsum,
//   vhsum_n (the sums of NACC vectors)
//   (always inline); cvt_f16 / cvt_to_f16 (a row of float16 to / from float32).
// It uses from attention_core.cpp: AttnCoreArgs, AttnSeq, Task, Work, key_range, kv_row, FEW_ROWS, ROW_PAD.
// A task may cover only a key chunk [klo, khi] of its rows (split-K decode): it then leaves its unnormalised
// O, running max and sum in t.part and merge_task combines the chunks (log-sum-exp), as flash-decoding does.

// C[0:RR, 0:NV*L] (acc ? += : =) A·B over kc steps. Row i of A is read as arow[i][k * ak] (ak = 1: rows in
// place, e.g. K; ak = stride: A stored transposed, e.g. Pᵀ); row k of B from brow[k] + bcol (rows in place, e.g.
// V in the cache, or packed). RR×NV accumulators.
template <int RR, int NV>
LLMK_ALWAYS_INLINE void micro(int64_t kc, const float* const* arow, int64_t ak, const float* const* brow, int64_t bcol,
                              float* c, int64_t ldc, bool acc) {
  V r[RR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < RR; i++)
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) r[i][v] = acc ? vload(c + i * ldc + v * L) : vzero();
  const float* ap[RR];
#pragma GCC unroll 16
  for (int i = 0; i < RR; i++) ap[i] = arow[i];
  for (int64_t k = 0; k < kc; k++) {
    const float* b = brow[k] + bcol;
    V bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) bv[v] = vload(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < RR; i++) {
      const V ai = vbcast(ap[i] + k * ak);
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) r[i][v] = vfma(ai, bv[v], r[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < RR; i++)
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) vstore(c + i * ldc + v * L, r[i][v]);
}

// micro<rows, nv> for run-time 1 <= rows <= RR and 1 <= nv <= NVX.
template <int RR = R, int NVX = NVM>
LLMK_ALWAYS_INLINE void micro_rows(int64_t rows, int nv, int64_t kc, const float* const* arow, int64_t ak,
                                   const float* const* brow, int64_t bcol, float* c, int64_t ldc, bool acc) {
  if constexpr (RR > 1) {
    if (rows < RR) return micro_rows<RR - 1, NVX>(rows, nv, kc, arow, ak, brow, bcol, c, ldc, acc);
  }
  if (nv == NVX) return micro<RR, NVX>(kc, arow, ak, brow, bcol, c, ldc, acc);
  if constexpr (NVX > 1) {
    if (nv == 1) return micro<RR, 1>(kc, arow, ak, brow, bcol, c, ldc, acc);
  }
  if constexpr (NVX > 2) {
    if (nv == 2) return micro<RR, 2>(kc, arow, ak, brow, bcol, c, ldc, acc);
  }
  if constexpr (NVX > 3) {
    if (nv == 3) return micro<RR, 3>(kc, arow, ak, brow, bcol, c, ldc, acc);
  }
}

struct NoHook {
  void operator()() const {}
};

// Vectors per micro-kernel call of gemm<RM>: NVM, or one where RM exceeds R (RM·NVM accumulators would spill).
constexpr int gemm_nv(int rm) { return rm > R ? 1 : NVM; }
// Micro-kernel calls gemm<RM> makes for an m × n product.
constexpr int64_t gemm_calls(int64_t m, int64_t n, int rm) {
  return (n / L + gemm_nv(rm) - 1) / gemm_nv(rm) * ((m + rm - 1) / rm);
}

// C[m, n] (acc ? += : =) A[m, kc]·B[kc, n], n a multiple of L, A rows as in micro (arow[i] for row i), B rows
// at brow[k]; RM rows of A per micro-kernel call; before() runs before each call.
template <int RM = R, class F = NoHook>
void gemm(int64_t m, int64_t n, int64_t kc, const float* const* arow, int64_t ak, const float* const* brow, float* c,
          int64_t ldc, bool acc, F&& before = F()) {
  constexpr int NVX = gemm_nv(RM);
  const int64_t nvec = n / L;
  for (int64_t v0 = 0; v0 < nvec; v0 += NVX) {
    const int nv = int(std::min<int64_t>(NVX, nvec - v0));
    for (int64_t i0 = 0; i0 < m; i0 += RM) {
      before();
      micro_rows<RM, NVX>(std::min<int64_t>(RM, m - i0), nv, kc, arow + i0, ak, brow, v0 * L, c + i0 * ldc + v0 * L,
                          ldc, acc);
    }
  }
}

// Prefetches the cache lines of [p, p + bytes): LOC 3 into every cache level, 2 into L2 and beyond.
template <int LOC = 3>
LLMK_ALWAYS_INLINE void prefetch_span(const char* p, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, LOC);
}

// Software prefetch for the wide decode tasks that read K/V from memory: the lines of the next unit of work (the
// K or V rows of one group over a tile's keys, `lpr` lines from each row offset) spread evenly over the
// micro-kernel calls of the current one, so that reading overlaps the arithmetic. The hardware prefetchers do
// not help: each token's rows lie in a 4 KiB page of their own.
struct UnitPrefetch {
  const char* base = nullptr;     // K or V
  const int64_t* rows = nullptr;  // element offsets of the unit's rows
  int64_t esz = 4, lpr = 0;       // bytes per element, lines per row
  int64_t n = 0, done = 0, ticks = 0, total = 1, row = 0, line = 0;
  // The nrows rows at r into base (none if base is null), over `calls` ticks.
  void start(const void* b, const int64_t* r, int64_t nrows, int64_t calls) {
    base = static_cast<const char*>(b);
    rows = r;
    n = b ? nrows * lpr : 0;
    done = ticks = row = line = 0;
    total = std::max<int64_t>(calls, 1);
  }
  void tick() {
    const int64_t upto = n * ++ticks / total;
    while (done < upto) {
      const int64_t k = std::min(upto - done, lpr - line);
      const char* p = base + rows[row] * esz + line * 64;
      for (int64_t x = 0; x < k; x++) __builtin_prefetch(p + x * 64, 0, 3);
      done += k;
      line += k;
      if (line == lpr) {
        line = 0;
        row++;
      }
    }
  }
};

// Sᵀ[j][c·gm + i] = K_j,c · Q_c·gm+i for few query rows (decode), token-major over the groups c (a token's K
// rows of all KV heads are adjacent in memory, so they are read in address order): two keys at a time against
// up to 4 rows of Q (row-major, scaled), so each Q vector loaded serves two keys; one horizontal sum per (key,
// row). K row of (c, j) at krow[c * bk + j]; before_keys(j, n, c) runs before keys j .. j+n-1 of group c are
// read (the caller's prefetch, so spread over the work). D a multiple of L. Used for group sizes that
// scores_block does not take.
template <class F>
void scores_few_rows(int64_t nk, int64_t groups, int64_t gm, const float* const* krow, int64_t bk, const float* qr,
                     int64_t D, float* s, int64_t mp, F&& before_keys) {
  for (int64_t j = 0; j < nk; j += 2) {
    const int64_t j1 = std::min(j + 1, nk - 1);  // an odd last key is computed twice
    for (int64_t c = 0; c < groups; c++) {
      before_keys(j, j1 - j + 1, c);
      const float* k0 = krow[c * bk + j];
      const float* k1 = krow[c * bk + j1];
      const float* qc = qr + c * gm * D;
      float* s0 = s + j * mp + c * gm;
      float* s1 = s + j1 * mp + c * gm;
      for (int64_t i0 = 0; i0 < gm; i0 += 4) {
        const int64_t rows = std::min<int64_t>(4, gm - i0);
        V a0[4] = {vzero(), vzero(), vzero(), vzero()}, a1[4] = {vzero(), vzero(), vzero(), vzero()};
        for (int64_t d = 0; d < D; d += L) {
          const V kv0 = vload(k0 + d), kv1 = vload(k1 + d);
#pragma GCC unroll 4
          for (int ii = 0; ii < 4; ii++)
            if (ii < rows) {
              const V qv = vload(qc + (i0 + ii) * D + d);
              a0[ii] = vfma(qv, kv0, a0[ii]);
              a1[ii] = vfma(qv, kv1, a1[ii]);
            }
        }
        for (int64_t ii = 0; ii < rows; ii++) {
          s0[i0 + ii] = vhsum(a0[ii]);
          s1[i0 + ii] = vhsum(a1[ii]);
        }
      }
    }
  }
}

// scores_few_rows for ROWS query rows per group (ROWS divides NACC): NACC/ROWS keys at a time against the ROWS
// rows, NACC partial-sum vectors kept in registers and reduced together by vhsum_n (a transpose-add tree) —
// one tree per NACC scores instead of a horizontal sum per score.
template <int ROWS, class F>
void scores_block(int64_t nk, int64_t groups, const float* const* krow, int64_t bk, const float* qr, int64_t D,
                  float* s, int64_t mp, F&& before_keys) {
  constexpr int KEYS = NACC / ROWS;
  alignas(64) float sums[NACC];
  for (int64_t j = 0; j < nk; j += KEYS) {
    const int64_t nkb = std::min<int64_t>(KEYS, nk - j);
    for (int64_t c = 0; c < groups; c++) {
      before_keys(j, nkb, c);
      const float* kp[KEYS];
#pragma GCC unroll 16
      for (int k = 0; k < KEYS; k++) kp[k] = krow[c * bk + j + std::min<int64_t>(k, nkb - 1)];  // a short last block repeats its last key
      const float* qc = qr + c * ROWS * D;
      V acc[NACC];
#pragma GCC unroll 16
      for (int i = 0; i < NACC; i++) acc[i] = vzero();
      for (int64_t d = 0; d < D; d += L) {
        V kv[KEYS];
#pragma GCC unroll 16
        for (int k = 0; k < KEYS; k++) kv[k] = vload(kp[k] + d);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
          const V qv = vload(qc + r * D + d);
#pragma GCC unroll 16
          for (int k = 0; k < KEYS; k++) acc[k * ROWS + r] = vfma(qv, kv[k], acc[k * ROWS + r]);
        }
      }
      vhsum_n(acc, sums);
      for (int64_t k = 0; k < nkb; k++) std::memcpy(s + (j + k) * mp + c * ROWS, sums + k * ROWS, ROWS * sizeof(float));
    }
  }
}

// Sᵀ of few rows (decode): scores_block where gm divides NACC, else scores_few_rows.
template <class F>
void scores_few(int64_t nk, int64_t groups, int64_t gm, const float* const* krow, int64_t bk, const float* qr,
                int64_t D, float* s, int64_t mp, F&& before_keys) {
  if (gm == 1) return scores_block<1>(nk, groups, krow, bk, qr, D, s, mp, before_keys);
  if (gm == 2) return scores_block<2>(nk, groups, krow, bk, qr, D, s, mp, before_keys);
  if (gm == 4) return scores_block<4>(nk, groups, krow, bk, qr, D, s, mp, before_keys);
  if (gm == 8) return scores_block<8>(nk, groups, krow, bk, qr, D, s, mp, before_keys);
  scores_few_rows(nk, groups, gm, krow, bk, qr, D, s, mp, before_keys);
}

// exp(x) for x <= 0 per lane (x = -inf gives exactly 0); relative error about 2e-7 (exp2 of the fraction
// by a degree-5 polynomial, the integer part into the exponent bits).
LLMK_ALWAYS_INLINE V vexp_nonpos(V x) {
  const V y = vmax(x, vset(-87.0f)) * vset(1.44269504088896341f);
  const V n = vfloor(y), f = y - n;
  V p = vset(1.8775767e-3f);
  p = vfma(p, f, vset(8.9893397e-3f));
  p = vfma(p, f, vset(5.5826318e-2f));
  p = vfma(p, f, vset(2.4015361e-1f));
  p = vfma(p, f, vset(6.9315308e-1f));
  p = vfma(p, f, vset(9.9999994e-1f));
  return vzero_where_ninf(x, p * vpow2(n));
}

LLMK_ALWAYS_INLINE float exp_nonpos(float x) {
  float t[L] = {x};
  vstore(t, vexp_nonpos(vload(t)));
  return t[0];
}

// mx[i] = max(mx[i], x[i]), n a multiple of L
LLMK_ALWAYS_INLINE void row_max(float* mx, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += L) vstore(mx + i, vmax(vload(mx + i), vload(x + i)));
}

// x[i] = exp(x[i] - base[i]) (x <= base), sum[i] += x[i]; n a multiple of L
LLMK_ALWAYS_INLINE void exp_row(float* x, const float* base, float* sum, int64_t n) {
  for (int64_t i = 0; i < n; i += L) {
    const V p = vexp_nonpos(vload(x + i) - vload(base + i));
    vstore(x + i, p);
    vstore(sum + i, vload(sum + i) + p);
  }
}

#include "load_row.inc"

// Online-softmax update of the rows' state by one tile of logits Sᵀ [nk][mp] (rows i < m, in place → P),
// then O = O·alpha + P·V. lo/hi: visible key interval of each row (per query row: i / g), `full`: no row
// masks any key of the tile. The caller then adds P·V.
void fold_tile(const AttnCoreArgs& a, Work& w, int64_t m, int64_t nr, int64_t j0, int64_t nk, bool full) {
  const int64_t mp = w.mp, dp = w.dp, ms = w.ms;
  float* s = w.s;
  const float ninf = -std::numeric_limits<float>::infinity();
  if (a.softcap > 0.f) {
    const float c = a.softcap, ic = 1.f / a.softcap;
    for (int64_t j = 0; j < nk; j++)
      for (int64_t i = 0; i < m; i++) s[j * ms + i] = c * std::tanh(s[j * ms + i] * ic);
  }
  if (!full) {  // per key and query row r (rows r, r + nr, ... are its heads): no division per logit
    for (int64_t j = 0; j < nk; j++)
      for (int64_t r = 0; r < nr; r++)
        if (j0 + j < w.lo[r] || j0 + j > w.hi[r])
          for (int64_t i = r; i < m; i += nr) s[j * ms + i] = ninf;
  }
  // Row loops over the padded width mp (padding rows hold logits 0 and are never stored): restrict
  // pointers so they vectorise.
  float* mx = w.tmp;
  for (int64_t i = 0; i < mp; i++) mx[i] = ninf;
  for (int64_t j = 0; j < nk; j++) row_max(mx, s + j * ms, mp);
  float* rs = w.rowsum;  // first the rows' old maxima
  for (int64_t i = 0; i < mp; i += L) {
    const V mo = vload(w.m + i), mn = vmax(mo, vload(mx + i));
    const V base = vzero_where_ninf(mn, mn);  // a row that has seen only -inf keeps P = 0
    vstore(rs + i, mo);
    vstore(w.alpha + i, vexp_nonpos(mo - base));
    vstore(w.m + i, mn);
    vstore(mx + i, base);
  }
  bool rescale = false;
  for (int64_t i = 0; i < mp; i++) {
    if (rs[i] == w.m[i]) w.alpha[i] = 1.f;  // max unchanged: exactly 1 (the polynomial gives 1 - 2^-24 at 0), no rescale
    rescale |= w.alpha[i] != 1.f;
  }
  for (int64_t i = 0; i < mp; i++) rs[i] = 0.f;
  for (int64_t j = 0; j < nk; j++) exp_row(s + j * ms, mx, rs, mp);
  for (int64_t i = 0; i < mp; i++) w.l[i] = w.l[i] * w.alpha[i] + rs[i];
  if (rescale)
    for (int64_t i = 0; i < m; i++) {
      const float al = w.alpha[i];
      if (al != 1.f)
        for (int64_t d = 0; d < dp; d++) w.o[i * dp + d] *= al;
    }
}

// Normalised rows of a task (O / l) into out, and their LSE: row i = head-major (head t.h0 + i / t.nr,
// query row t.r0 + i % t.nr) of o [m][dp] with running max mx and sum l.
void store_rows(const AttnCoreArgs& a, const Task& t, const float* o, int64_t dp, const float* mx, const float* l, Work& w) {
  const AttnSeq& sq = a.seqs[t.seq];
  const int64_t D = a.D, m = t.g * t.nr, nr = t.nr;
  const int dt = a.dtype;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < m; i++) {
    const int64_t r = i % nr, h = t.h0 + i / nr;
    const float li = l[i], inv = li > 0.f ? 1.f / li : 0.f;
    const int64_t at = ((sq.q0 + t.r0 + r) * a.Hq + h) * D;
    for (int64_t d = 0; d < D; d++) w.tmp[d] = o[i * dp + d] * inv;
    if (dt == 0) std::memcpy(static_cast<float*>(a.out) + at, w.tmp, size_t(D) * sizeof(float));
    else if (dt == 1) cvt_to_f16(w.tmp, static_cast<uint16_t*>(a.out) + at, D);
    else
      for (int64_t d = 0; d < D; d++) static_cast<uint16_t*>(a.out)[at + d] = f32_to_bf16(w.tmp[d]);
    if (a.lse) a.lse[sq.lse0 + h * a.lse_hstride + t.r0 + r] = li > 0.f ? mx[i] + std::log(li) : ninf;
  }
}

// One task: query rows [r0, r0 + nr) of sequence t.seq for the g heads h0 .. h0+g-1. Rows are head-major
// (i = head · nr + r); the heads form groups of gk sharing one KV head (one group, or every KV head of the
// sequence in decode, where reading all heads of a token at once keeps the K/V reads contiguous).
void run_task(const AttnCoreArgs& a, const Task& t, Work& w) {
  const AttnSeq& sq = a.seqs[t.seq];
  const int64_t D = a.D, g = t.g, nr = t.nr, m = g * nr;
  const int64_t G = a.Hq / a.Hkv, gk = std::min(g, G), groups = g / gk, gm = gk * nr;  // rows of one group
  const bool few = gm <= FEW_ROWS && D % L == 0;
  // Key tile: the layout's block; without a layout, with several KV heads per task and few rows (decode), 8
  // keys, so the K/V of a tile (all heads; 64 KB at 8 heads, D 128, float32) and the next one, prefetched, stay
  // in L1/L2 until used (16-key tiles decoded 0–7% slower, median per case, 1 thread AVX-512, noisy shared
  // machine). Several KV heads with more rows (GEMM scores): the layout's block (16 or 32 keys: 0.85-0.96x with
  // K/V in cache, from DRAM within the noise of 64).
  const int64_t bk = (a.row_ptr || groups == 1 || !few) ? a.block_k : std::min<int64_t>(a.block_k, 8);
  const int dt = a.dtype;
  const float ninf = -std::numeric_limits<float>::infinity();
  w.mp = (m + L - 1) / L * L;
  w.dp = (D + L - 1) / L * L;
  w.ms = w.mp + ROW_PAD;
  const int64_t mp = w.mp, dp = w.dp, ms = w.ms;
  // Qᵀ scaled: [D][ms], zero beyond row m.
  for (int64_t i = 0; i < m; i++) {
    const int64_t r = i % nr, h = t.h0 + i / nr;
    load_row(a.q, dt, ((sq.q0 + t.r0 + r) * a.Hq + h) * D, D, w.tmp);
    for (int64_t d = 0; d < D; d++) w.qt[d * ms + i] = w.qr[i * D + d] = w.tmp[d] * a.scale;
  }
  // V rows read in place (float32): in a decode tile, and in a GEMM tile that walks V in at most two column
  // panels (AVX-512 at D <= 128). With more panels (AVX2: 16 columns each) every panel re-reads the tile's rows,
  // which in place are Hkv·D floats apart (often a multiple of 1 KB: a few L1 sets evicting each other), so they
  // are copied (as other dtypes are converted) to rows vs apart: AVX2 causal S=2048, D=128 ran 9% faster so,
  // AVX-512 4% slower.
  const bool v_in_place = dt == 0 && D % L == 0 && (few || dp <= 2 * NVM * L);
  const int64_t vs = dp + ROW_PAD;
  for (int64_t d = 0; d < D; d++) w.qtrow[d] = w.qt + d * ms;
  for (int64_t d = 0; d < D; d++)
    for (int64_t i = m; i < mp; i++) w.qt[d * ms + i] = 0.f;
  for (int64_t r = 0; r < nr; r++) {
    const KeyRange kr = key_range(t.r0 + r, sq.nq, sq.nk, a.causal, a.win_left, a.win_right);
    w.lo[r] = kr.lo;
    w.hi[r] = kr.hi;
  }
  for (int64_t i = 0; i < mp; i++) {
    w.m[i] = ninf;
    w.l[i] = 0.f;
  }
  std::fill(w.o, w.o + m * dp, 0.f);
  for (int64_t j = 0; j < groups * bk; j++)
    for (int64_t d = D; d < dp; d++) w.vt[j * vs + d] = 0.f;
  // lo and hi are non-decreasing in r; a split task sees only its key chunk [klo, khi]
  const int64_t lo_all = std::max(w.lo[0], t.klo), hi_all = std::min(w.hi[nr - 1], t.khi);

  // Key tiles: the layout row's kept blocks, or tiles of bk keys from lo_all; each clamped to [lo_all, hi_all]
  // so no key (and no page) that no row of the task sees is read.
  int64_t pb = 0, pe = 0;
  if (a.row_ptr) {
    const int32_t* rp = a.row_ptr + (a.layout_heads == 1 ? 0 : t.h0) * (a.nqb + 1);
    const int64_t qb = t.r0 / a.block_q;
    pb = rp[qb];
    pe = rp[qb + 1];
  } else if (hi_all >= lo_all) {
    pe = (hi_all - lo_all) / bk + 1;
  }
  const float** krow = w.krow;
  // Tiles in order; a tile's row offsets are computed one tile ahead and its K/V lines prefetched while the
  // tile before it computes, group by group, so loads stream (rows are Hkv·D elements apart, which the hardware
  // prefetchers do not follow, and a whole tile prefetched at once stalls on the miss buffers).
  const int64_t esz = dt == 0 ? 4 : 2;
  auto tile_keys = [&](int64_t pi, int64_t& j0, int64_t& nk) {
    for (; pi < pe; pi++) {
      const int64_t first = a.row_ptr ? int64_t(a.col_idx[pi]) * bk : lo_all + pi * bk;
      j0 = std::max(first, lo_all);
      nk = std::min(first + bk - 1, hi_all) - j0 + 1;
      if (nk > 0) return pi;  // else no row sees this block
    }
    return pe;
  };
  // Row offsets of a tile's keys: head hkv's row is hkv·D past the token's; one page look-up (and check) per
  // page the tile touches, the next token of a page Hkv·D further (a look-up, two divisions and G divisions
  // per key took 5% of a decode call).
  int64_t head_off[MAX_WIDE_KV];
  for (int64_t c = 0; c < groups; c++) head_off[c] = (t.h0 + c * gk) / G * D;
  auto offsets = [&](int64_t* at, int64_t j0, int64_t nk) {
    int64_t row = 0, page_end = j0;  // keys before page_end share row's page
    for (int64_t j = 0; j < nk; j++) {
      if (j0 + j == page_end) {
        row = kv_row(a, sq, j0 + j, 0);
        page_end = a.page_size ? ((j0 + j) / a.page_size + 1) * a.page_size : INT64_MAX;
      } else {
        row += a.Hkv * D;
      }
      for (int64_t c = 0; c < groups; c++) at[c * bk + j] = row + head_off[c];
    }
  };
  // The K and V rows at element offset `row` into the cache.
  auto prefetch_row = [&](int64_t row) {
    const char* kp = static_cast<const char*>(a.k) + row * esz;
    const char* vp = static_cast<const char*>(a.v) + row * esz;
    prefetch_span(kp, D * esz);
    prefetch_span(vp, D * esz);
  };
  auto prefetch_group = [&](const int64_t* at, int64_t nk, int64_t c) {
    for (int64_t j = 0; j < nk; j++) prefetch_row(at[c * bk + j]);
  };
  int64_t* at = w.at;
  int64_t* at_next = w.at + MAX_WIDE_KV * MAXBK;
  int64_t j0 = 0, nk = 0, nj0 = 0, nnk = 0;
  int64_t pi = tile_keys(pb, j0, nk);
  if (pi < pe) {
    offsets(at, j0, nk);
    for (int64_t c = 0; c < groups; c++) prefetch_group(at, nk, c);
  }
  // Few rows with float32 rows read in place (decode): the tile runs token-major over all groups; the next
  // tile's K and V are prefetched (into L2) evenly over this tile's work, half during the scores and half
  // during P·V, so that memory stays busy while P·V computes (prefetching only during the scores left it idle
  // then, and P·V stalled on V).
  const bool stream = few && v_in_place;
  // Wide tasks (GEMM scores over several groups) of a call whose K/V come from memory: UnitPrefetch, in use
  // order (each group's K, then each group's V, then the next tile's), one unit ahead; else the next tile's
  // rows are prefetched a group at a time before its scores.
  const bool unit_pf = WIDE_UNIT_PREFETCH && t.from_memory && groups > 1 && !few && v_in_place;
  UnitPrefetch up;
  up.esz = esz;
  up.lpr = (D * esz + 63) / 64;
  auto tick = [&] {
    if (unit_pf) up.tick();
  };
  // Rows per micro-kernel call of the wide scores: 8 where a group's rows are one vector (AVX-512, 16 rows):
  // 8 accumulators cover the FMA latency where R's 6 do not (1.03-1.07x in cache and from DRAM).
  constexpr int RS = 8;
  // A token's K (and V) rows of the task's groups are one span: consecutive KV heads (a decode task takes every
  // KV head of its sequence, or it has one group). The next tile's lines (K then V of each token) are prefetched
  // a few dozen at a time, before each group of each key block of the scores and each group of P·V: issued a
  // token at a time for all groups (128 lines at 8 heads), they filled the miss buffers and stalled the work
  // between them (interleaved old/new, 1 thread, medians of three runs at B = 1, 4, 16: 1.07-1.13x AVX-512,
  // 1.08-1.18x AVX2). No faster: a few lines per K vector inside the scores (0.86-0.92x with AVX2), or per
  // column panel of P·V; prefetcht0 or prefetcht2 instead of prefetcht1; 4- or 16-key tiles.
  const int64_t span = groups * D * esz, lps = (span + 63) / 64;  // lines per span
  int64_t pf_done = 0, pf_n = 0;  // lines of the next tile prefetched so far, of pf_n
  auto prefetch_until = [&](int64_t upto) {
    while (pf_done < upto) {
      const int64_t sp = pf_done / lps, ln = pf_done % lps, n = std::min(upto - pf_done, lps - ln);
      const char* p = static_cast<const char*>(sp & 1 ? a.v : a.k) + at_next[sp >> 1] * esz + ln * 64;
      for (int64_t x = 0; x < n; x++) __builtin_prefetch(p + x * 64, 0, 2);
      pf_done += n;
    }
  };
  while (pi < pe) {
    const int64_t pn = tile_keys(pi + 1, nj0, nnk);
    if (pn < pe) offsets(at_next, nj0, nnk);
    if (stream) {
      for (int64_t c = 0; c < groups; c++)
        for (int64_t j = 0; j < nk; j++) {
          krow[c * bk + j] = static_cast<const float*>(a.k) + at[c * bk + j];
          w.vrow[c * bk + j] = static_cast<const float*>(a.v) + at[c * bk + j];
        }
      pf_done = 0;
      pf_n = pn < pe ? 2 * nnk * lps : 0;
      const int64_t units = nk * groups;  // (key, group) pairs of the scores: half the lines over them
      scores_few(nk, groups, gm, krow, bk, w.qr, D, w.s, ms,
                 [&](int64_t j, int64_t n, int64_t c) { prefetch_until(pf_n / 2 * (j * groups + (c + 1) * n) / units); });
    } else {
      for (int64_t c = 0; c < groups; c++) {
        if (pn < pe && !unit_pf) prefetch_group(at_next, nnk, c);
        for (int64_t j = 0; j < nk; j++) {
          const int64_t o = at[c * bk + j];
          if (dt == 0) {
            krow[j] = static_cast<const float*>(a.k) + o;
          } else {
            load_row(a.k, dt, o, D, w.kt + j * D);
            krow[j] = w.kt + j * D;
          }
          // V rows: in place (v_in_place), else copied or converted (and zero-padded) into vt.
          if (v_in_place) {
            w.vrow[c * bk + j] = static_cast<const float*>(a.v) + o;
          } else {
            load_row(a.v, dt, o, D, w.vt + (c * bk + j) * vs);
            w.vrow[c * bk + j] = w.vt + (c * bk + j) * vs;
          }
        }
        // Sᵀ[:, group rows] = K·(scale·Qᵀ)
        if (few) {
          scores_few(nk, 1, gm, krow, bk, w.qr + c * gm * D, D, w.s + c * gm, ms, [](int64_t, int64_t, int64_t) {});
        } else if (groups == 1) {
          gemm(nk, mp, D, krow, 1, w.qtrow, w.s, ms, false);  // every row
        } else {  // the group's columns of Qᵀ (gm a multiple of L: attention_core's wide tasks)
          const float* qc[MAXD];
          for (int64_t d = 0; d < D; d++) qc[d] = w.qtrow[d] + c * gm;
          const bool one_vec = gm == L;
          if (unit_pf) {  // next: group c + 1's K, after the last group this tile's V of group 0
            const int64_t calls = gemm_calls(nk, gm, one_vec ? RS : R);
            if (c + 1 < groups) up.start(a.k, at + (c + 1) * bk, nk, calls);
            else up.start(a.v, at, nk, calls);
          }
          if (one_vec) gemm<RS>(nk, gm, D, krow, 1, qc, w.s + c * gm, ms, false, tick);
          else gemm(nk, gm, D, krow, 1, qc, w.s + c * gm, ms, false, tick);
        }
      }
    }
    const bool full = j0 >= w.lo[nr - 1] && j0 + nk - 1 <= w.hi[0];
    fold_tile(a, w, m, nr, j0, nk, full);
    // O[group rows] += P·V: A = Pᵀ stored [key][row] (row i at s + i, stride mp per key), B = the group's V tile
    // (register-blocked: the rows' O stays in registers across the tile's keys).
    const float* prow[MAXM];
    for (int64_t i = 0; i < m; i++) prow[i] = w.s + i;
    for (int64_t c = 0; c < groups; c++) {
      if (stream) prefetch_until(pf_n / 2 + (pf_n - pf_n / 2) * (c + 1) / groups);
      if (unit_pf) {  // next: group c + 1's V, after the last group the next tile's K of group 0
        const int64_t calls = gemm_calls(gm, dp, R);
        if (c + 1 < groups) up.start(a.v, at + (c + 1) * bk, nk, calls);
        else up.start(pn < pe ? a.k : nullptr, at_next, nnk, calls);
      }
      gemm(gm, dp, nk, prow + c * gm, ms, w.vrow + c * bk, w.o + c * gm * dp, dp, true, tick);
    }
    pi = pn;
    j0 = nj0;
    nk = nnk;
    std::swap(at, at_next);
  }
  if (t.part) {  // one key chunk of a split task: leave O (unnormalised), max and sum for merge_task
    float* po = t.part;
    std::memcpy(po, w.o, size_t(m * dp) * sizeof(float));
    std::memcpy(po + m * dp, w.m, size_t(m) * sizeof(float));
    std::memcpy(po + m * dp + m, w.l, size_t(m) * sizeof(float));
    return;
  }
  store_rows(a, t, w.o, dp, w.m, w.l, w);
}

// Combines the key chunks of a split task (parts[c]: O [m][dp], max [m], sum [m], as run_task leaves them)
// by log-sum-exp and stores the rows: M = max m_c, L = Σ l_c·e^(m_c−M), O = Σ O_c·e^(m_c−M).
void merge_task(const AttnCoreArgs& a, const Task& t, const float* const* parts, int64_t nparts, Work& w) {
  const int64_t m = t.g * t.nr, dp = (a.D + L - 1) / L * L;
  const float ninf = -std::numeric_limits<float>::infinity();
  std::fill(w.o, w.o + m * dp, 0.f);
  for (int64_t i = 0; i < m; i++) {
    float mx = ninf;
    for (int64_t c = 0; c < nparts; c++) mx = std::max(mx, parts[c][m * dp + i]);
    float l = 0.f;
    if (mx != ninf) {
      float* oi = w.o + i * dp;
      for (int64_t c = 0; c < nparts; c++) {
        const float* pc = parts[c];
        const float lc = pc[m * dp + m + i];
        if (!(lc > 0.f)) continue;  // this chunk saw no key of the row
        const float e = exp_nonpos(pc[m * dp + i] - mx);
        l += lc * e;
        const V ev = vset(e);
        for (int64_t d = 0; d < dp; d += L) vstore(oi + d, vfma(ev, vload(pc + i * dp + d), vload(oi + d)));
      }
    }
    w.m[i] = mx;
    w.l[i] = l;
  }
  store_rows(a, t, w.o, dp, w.m, w.l, w);
}

