// Decode task body (a few query rows per KV head, float32 K/V read in place), included once per x86 instruction
// set by attention_core.cpp after attention_tile.h, inside the same `#pragma GCC target` region and namespace.
// No include guard on purpose; it includes nothing. Besides what attention_tile.h uses, the including namespace
// defines: vhsum_v (the NACC sums of vhsum_n as one vector), vfold_max / vfold_add<ROWS> (lane l of the result:
// max / sum of the lanes ≡ l mod ROWS), vany_gt, pv_cols (column vectors per row of the P·V block) and
// DEC_PF_BYTES (the prefetch distance, below).
//
// Why a path of its own: the tile body (run_task) stores the scores, runs the softmax over the task's rows in
// separate passes through memory and adds P·V through the GEMM kernel, bookkeeping that made a 1-query decode
// compute bound with K/V in cache (about 25 GB/s). Here a tile's scores of all rows are a few vectors (each
// lane one key against one row of one KV head), the online softmax runs on them lane by lane (O is rescaled only
// where a row's running max grows), and P·V keeps a block of O in registers over DEC_TOKS keys. Measured against
// the tile path (1 thread, GQA 32/8, D 128, interleaved in one process, medians of 8): 1.40x / 1.47x (AVX-512 /
// AVX2) with K/V in L2, 1.56x / 1.53x in L3; from DRAM the same speed (0.95-1.01x): one core then waits on the
// cache misses it can keep in flight, unless the prefetch keeps them coming (DEC_PF_BYTES).

// Keys per tile, and blocks of DEC_TILE keys a tile takes its keys from (decode_rows' key order), so that it
// streams from DEC_PAGES places in memory (pages) at once: one core keeps more misses in flight over several
// streams than over one (a plain read of scattered 64 KiB pages, AVX-512 loads: 22-26 GB/s one page at a time,
// 29-34 with 4-8 pages interleaved in 256-byte steps). Against 16-key tiles of one block (AVX-512, 1 thread, GQA 32/8, D 128,
// page 16, pages scattered, medians of 11 in one process): from DRAM 1.09x (B 1), 1.12x (B 4), 1.16x (B 16); with
// K/V in L2/L3 0.92-0.97x. 16-key tiles, 2 or 8 blocks were slower (README, tenth session).
constexpr int64_t DEC_TILE = 32;
constexpr int64_t DEC_PAGES = 4;
// Keys per pass of P·V over a block of O (O read and written once per DEC_TOKS keys): with K/V in L2/L3, 4 and
// 16 were up to 10% slower than 8 (1 thread, AVX-512).
constexpr int DEC_TOKS = 8;
// How far ahead in reading order decode prefetches (DEC_PF_BYTES, per instruction set where this file is
// included): each K or V line read prefetches the same line of the row about this many bytes later into L1, so
// that one prefetch goes out per line read, evenly. Against a burst of whole rows one block ahead (the former
// scheme), from DRAM (1 thread, AVX-512, GQA 32/8, D 128): 1.34-1.45x at 4 KiB, half of it slower than the
// bursts, 8 KiB 1.03-1.12x over 4 KiB (0.98x with K/V in L2).

// Prefetches the cache line at p into L1. Inline asm because GCC 12 at -O1 and above dropped __builtin_prefetch
// in these loops (no prefetcht0 left in the object code; cause not found).
LLMK_ALWAYS_INLINE void prefetch_line(const float* p) { asm volatile("prefetcht0 %0" : : "m"(*reinterpret_cast<const char*>(p))); }

// True when decode_rows takes task t: float32 K/V without a block layout, D a multiple of the vector, a decode
// call (at most SPLIT_MAX_NQ queries), and 1, 2, 4 or 8 rows per KV head (so a score vector holds whole keys).
inline bool decode_fits(const AttnCoreArgs& a, const Task& t) {
  const int64_t G = a.Hq / a.Hkv, gk = std::min(t.g, G), gm = gk * t.nr;
  return a.dtype == 0 && !a.row_ptr && a.D % L == 0 && a.D <= MAXD && a.seqs[t.seq].nq <= SPLIT_MAX_NQ &&
         (gm == 1 || gm == 2 || gm == 4 || gm == 8) && gm <= NACC && t.g / gk <= MAX_WIDE_KV;
}

// Scores of a tile of n keys (K row of key j, KV head 0 of the task, at kp[j]; head c at + c·D) for all the task's
// rows (Q scaled, packed per KV head as [D / L][ROWS][L]: the rows' vectors of a column block together), as
// vectors s[c·NKB + kb] (c a KV head, kb a block of KEYS = NACC / ROWS keys): lane x·ROWS + r holds key kb·KEYS + x
// against row r of head c. NACC register accumulators are reduced by one transpose-add tree per vector, and each
// Q vector loaded serves KEYS keys. Blocks past n: -inf. Step (kb, c) reads KEYS rows, and with line l of them
// prefetches line l of the rows at pf + (kb·groups + c)·KEYS (decode_rows' list).
template <int ROWS>
LLMK_ALWAYS_INLINE void decode_scores(const float* const* kp, int64_t n, int64_t groups, const float* qp, int64_t D, V* s,
                                      const float* const* pf) {
  constexpr int KEYS = NACC / ROWS, NKB = DEC_TILE / KEYS;
  for (int kb = 0; kb < NKB; kb++) {
    if (kb * KEYS >= n) {
      for (int64_t c = 0; c < groups; c++) s[c * NKB + kb] = vset(-__builtin_inff());
      continue;
    }
    for (int64_t c = 0; c < groups; c++) {
      const float* k[KEYS];
#pragma GCC unroll 16
      for (int x = 0; x < KEYS; x++) k[x] = kp[std::min<int64_t>(kb * KEYS + x, n - 1)] + c * D;  // a short block repeats its last key
      const float* qc = qp + c * ROWS * D;
      const float* const* f = pf + (kb * groups + c) * KEYS;
      V acc[NACC];
#pragma GCC unroll 16
      for (int i = 0; i < NACC; i++) acc[i] = vzero();
      for (int64_t d = 0; d < D; d += L, qc += ROWS * L) {
#pragma GCC unroll 16
        for (int x = 0; x < KEYS; x++) prefetch_line(f[x] + d);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
          V qv = vload(qc + r * L);
          // With two keys per vector GCC folds this load into both FMAs (twice the loads); one load in a register:
          // 1.14x (AVX2, 4 rows) and 1.08-1.23x (AVX-512, 8 rows), K/V in L1 / from DRAM, 1 thread.
          if constexpr (KEYS == 2) asm("" : "+v"(qv));
#pragma GCC unroll 16
          for (int x = 0; x < KEYS; x++) acc[x * ROWS + r] = vfma(qv, vload(k[x] + d), acc[x * ROWS + r]);
        }
      }
      s[c * NKB + kb] = vhsum_v(acc);
    }
  }
}

// O rows of one KV head (ROWS of them, row-major in memory) += p·V over keys [j0, j0 + TOKS): p of key j, row r at
// p[j·pk + r]; V row of key j at vp[j] + col. A block of NV column vectors of every row is read, updated and
// written once per TOKS keys. Line l of row pf[j] is prefetched as line l of V row j is read.
template <int ROWS, int NV, int TOKS>
LLMK_ALWAYS_INLINE void decode_pv_block(const float* const* vp, const float* p, int64_t pk, int64_t col, float* o, int64_t D,
                                        const float* const* pf) {
  V acc[ROWS][NV];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) acc[r][v] = vload(o + r * D + col + v * L);
#pragma GCC unroll 4
  for (int j = 0; j < TOKS; j++) {
    V vv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) vv[v] = vload(vp[j] + col + v * L);
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) prefetch_line(pf[j] + col + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
      const V pr = vbcast(p + j * pk + r);
#pragma GCC unroll 16
      for (int v = 0; v < NV; v++) acc[r][v] = vfma(pr, vv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) vstore(o + r * D + col + v * L, acc[r][v]);
}

// O += P·V over a tile's n keys, TOKS keys at a time, KV head by KV head within them: P as decode_scores lays
// out the scores (pv: the tile's P vectors; p of key j, row r of head c at pv + c·NKB·L + j·ROWS + r), O rows
// head-major (head c's at o + c·ROWS·D). pf: the rows to prefetch, one per V row read (decode_rows' list).
template <int ROWS, int TOKS>
void decode_pv(const float* const* vp, int64_t n, int64_t groups, const float* pv, float* o, int64_t D, const float* const* pf) {
  constexpr int NKB = DEC_TILE * ROWS / NACC;
  constexpr int NV = pv_cols(ROWS);
  int64_t j = 0;
  auto keys = [&](auto toks) {
    constexpr int TK = decltype(toks)::value;
    for (int64_t c = 0; c < groups; c++, pf += TK) {
      const float* vj[TK];
      for (int x = 0; x < TK; x++) vj[x] = vp[j + x] + c * D;
      const float* p = pv + c * NKB * L + j * ROWS;
      float* oc = o + c * ROWS * D;
      int64_t col = 0;
      for (; col + NV * L <= D; col += NV * L) decode_pv_block<ROWS, NV, TK>(vj, p, ROWS, col, oc, D, pf);
      for (; col < D; col += L) decode_pv_block<ROWS, 1, TK>(vj, p, ROWS, col, oc, D, pf);
    }
  };
  for (; j + TOKS <= n; j += TOKS) keys(std::integral_constant<int, TOKS>());
  for (; j < n; j++) keys(std::integral_constant<int, 1>());
}

// One decode task (see run_task for the task and row layout; ROWS rows per KV head): tiles of DEC_TILE keys
// drawn from up to DEC_PAGES blocks of keys (the key order below); per tile the scores of all rows, the online
// softmax and P·V, each line of K and V prefetched into L1 DEC_PF_BYTES ahead in reading order.
template <int ROWS>
void decode_rows(const AttnCoreArgs& a, const Task& t, Work& w) {
  constexpr int KEYS = NACC / ROWS, NKB = DEC_TILE / KEYS;  // keys per score vector, score vectors per KV head
  const AttnSeq& sq = a.seqs[t.seq];
  const int64_t D = a.D, nr = t.nr, m = t.g * nr;
  const int64_t G = a.Hq / a.Hkv, gk = std::min(t.g, G), groups = t.g / gk;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < m; i++) {  // Q scaled, rows head-major (i = head · nr + r), packed for decode_scores
    const int64_t r = i % nr, h = t.h0 + i / nr;
    load_row(a.q, a.dtype, ((sq.q0 + t.r0 + r) * a.Hq + h) * D, D, w.tmp);
    float* qb = w.qr + i / ROWS * ROWS * D + i % ROWS * L;
    for (int64_t d = 0; d < D; d += L) vstore(qb + d * ROWS, vload(w.tmp + d) * vset(a.scale));
  }
  for (int64_t r = 0; r < nr; r++) {
    const KeyRange kr = key_range(t.r0 + r, sq.nq, sq.nk, a.causal, a.win_left, a.win_right);
    w.lo[r] = kr.lo;
    w.hi[r] = kr.hi;
  }
  // O rows in w.o (row c·ROWS + r of KV head c); running max and sum of KV head c as patterns (lane l: row
  // c·ROWS + l % ROWS) at w.m / w.l + c·L.
  std::fill(w.o, w.o + m * D, 0.f);
  for (int64_t c = 0; c < groups; c++) {
    vstore(w.m + c * L, vset(ninf));
    vstore(w.l + c * L, vzero());
  }
  const int64_t head0 = t.h0 / G * D;  // the task's KV heads are consecutive from this one
  const float* K = static_cast<const float*>(a.k);
  const float* Vc = static_cast<const float*>(a.v);
  const int64_t lo_all = std::max(w.lo[0], t.klo), hi_all = std::min(w.hi[nr - 1], t.khi);
  // Key order: spans of pages·DEC_TILE keys (aligned), each read as `pages` tiles; tile i of a span takes keys
  // i·slice .. i·slice + slice - 1 of each of the span's `pages` blocks of DEC_TILE keys, key x of block b at
  // tile position x·pages + b, so a score vector's keys lie in different blocks (pages, when pages hold DEC_TILE
  // keys or fewer) and the tile streams from `pages` places at once. Keys outside [lo_all, hi_all] are left out
  // (a tile may be short); fewer blocks per span when the key range is shorter than a span, so that short ranges
  // do not leave tiles half empty. tok: element offset of each key's row of the task's first KV head; kid: the
  // key's index.
  int64_t pages = DEC_PAGES;
  while (pages > 1 && pages * DEC_TILE > hi_all - lo_all + 1) pages /= 2;
  const int64_t span = pages * DEC_TILE, slice = DEC_TILE / pages;
  int64_t span0 = lo_all / span * span, part = 0;
  auto next_tile = [&](int64_t* tok, int64_t* kid) {
    while (span0 <= hi_all) {
      int64_t n = 0;
      for (int64_t x = 0; x < slice; x++)
        for (int64_t b = 0; b < pages; b++) {
          const int64_t j = span0 + b * DEC_TILE + part * slice + x;
          if (j < lo_all || j > hi_all) continue;
          kid[n] = j;
          tok[n++] = kv_row(a, sq, j, 0) + head0;
        }
      if (++part == pages) {
        part = 0;
        span0 += span;
      }
      if (n) return n;
    }
    return int64_t(0);
  };
  // Prefetch: every row the tile reads, in reading order (the scores' K rows, P·V's V rows, then the next tile's
  // first K rows), in w.krow; the line read at row i prefetches the same line of row i + ahead (DEC_PF_BYTES).
  // Only the first tile goes to L2 ahead, at once.
  const int64_t ahead = std::max<int64_t>({(DEC_PF_BYTES + D * 4 - 1) / (D * 4), KEYS, DEC_TOKS});
  const float** rows = w.krow;
  static_assert(2 * DEC_TILE * MAX_WIDE_KV + 2 * (DEC_PF_BYTES / (4 * L) + NACC) <= MAX_WIDE_KV * MAXBK,
                "decode's prefetch list (K and V rows of a tile, the next tile's first rows, the padding) fits in krow");
  auto k_rows = [&](const int64_t* tk, int64_t nt, int64_t at, int64_t limit) {
    for (int64_t kb = 0; kb * KEYS < nt; kb++)
      for (int64_t c = 0; c < groups; c++)
        for (int x = 0; x < KEYS && at < limit; x++) rows[at++] = K + tk[std::min<int64_t>(kb * KEYS + x, nt - 1)] + c * D;
    return at;
  };
  auto v_rows = [&](const int64_t* tk, int64_t nt, int64_t at) {  // decode_pv's order
    int64_t j = 0;
    for (; j + DEC_TOKS <= nt; j += DEC_TOKS)
      for (int64_t c = 0; c < groups; c++)
        for (int x = 0; x < DEC_TOKS; x++) rows[at++] = Vc + tk[j + x] + c * D;
    for (; j < nt; j++)
      for (int64_t c = 0; c < groups; c++) rows[at++] = Vc + tk[j] + c * D;
    return at;
  };
  const int64_t lps = (groups * D * 4 + 63) / 64;  // lines per span
  int64_t* tok = w.at;
  int64_t* tok_next = w.at + DEC_TILE;
  int64_t kid_a[DEC_TILE], kid_b[DEC_TILE];
  int64_t *kid = kid_a, *kid_next = kid_b;
  V* s = reinterpret_cast<V*>(w.s);  // the tile's scores, then P: groups · NKB vectors
  const float* kp[DEC_TILE];
  const float* vp[DEC_TILE];
  int64_t n = hi_all >= lo_all ? next_tile(tok, kid) : 0;
  for (int64_t j = 0; j < n; j++)
    for (const float* span : {K + tok[j], Vc + tok[j]}) prefetch_span<2>(reinterpret_cast<const char*>(span), lps * 64);
  while (n > 0) {
    const int64_t nn = next_tile(tok_next, kid_next);
    for (int64_t j = 0; j < n; j++) {
      kp[j] = K + tok[j];
      vp[j] = Vc + tok[j];
    }
    const int64_t nk_rows = k_rows(tok, n, 0, INT64_MAX);
    const int64_t nv_end = v_rows(tok, n, nk_rows);
    const int64_t nrows = k_rows(tok_next, nn, nv_end, nv_end + ahead);
    std::fill(rows + nrows, rows + nrows + ahead, w.qr);  // past the last row: a line in L1
    decode_scores<ROWS>(kp, n, groups, w.qr, D, s, rows + ahead);
    // A whole tile that no row masks (lo and hi are non-decreasing in r), and no softcap: scores as computed.
    // Else softcap and masks per score (lane l of a vector: key x = l / ROWS of its block, row l % ROWS of the KV
    // head, whose query row is l % ROWS % nr); no key past n.
    const int64_t kmin = *std::min_element(kid, kid + n), kmax = *std::max_element(kid, kid + n);
    if (!(n == DEC_TILE && kmin >= w.lo[nr - 1] && kmax <= w.hi[0] && a.softcap == 0.f)) {
      float* sf = w.s;
      for (int64_t c = 0; c < groups; c++)
        for (int kb = 0; kb < NKB; kb++)
          for (int l = 0; l < L; l++) {
            float& x = sf[(c * NKB + kb) * L + l];
            const int64_t j = kb * KEYS + l / ROWS, r = l % ROWS % nr;
            if (a.softcap > 0.f) x = a.softcap * std::tanh(x * (1.f / a.softcap));
            if (j >= n || kid[j] < w.lo[r] || kid[j] > w.hi[r]) x = ninf;
          }
    }
    // Online softmax per KV head: the tile's max per row, e^(old - new) on O and the sum where it grew, then
    // P = exp(S - max) in place and the rows' sums.
    for (int64_t c = 0; c < groups; c++) {
      V* sc = s + c * NKB;
      V mx = sc[0];
#pragma GCC unroll 16
      for (int kb = 1; kb < NKB; kb++) mx = vmax(mx, sc[kb]);
      mx = vfold_max<ROWS>(mx);
      const V mo = vload(w.m + c * L), mn = vmax(mo, mx);
      const V base = vzero_where_ninf(mn, mn);  // a row that has seen only -inf keeps P = 0
      if (vany_gt(mn, mo)) {
        alignas(64) float al[L], mo_s[L], mn_s[L];
        vstore(al, vexp_nonpos(mo - base));
        vstore(mo_s, mo);
        vstore(mn_s, mn);
        for (int i = 0; i < L; i++)
          if (mo_s[i] == mn_s[i]) al[i] = 1.f;  // unchanged: exactly 1 (the polynomial gives 1 - 2^-24 at 0)
        float* ob = w.o + c * ROWS * D;
        for (int i = 0; i < ROWS; i++)
          if (al[i] != 1.f)
            for (int64_t d = 0; d < D; d += L) vstore(ob + i * D + d, vload(ob + i * D + d) * vset(al[i]));
        vstore(w.l + c * L, vload(w.l + c * L) * vload(al));
        vstore(w.m + c * L, mn);
      }
      V sum = vzero();
#pragma GCC unroll 16
      for (int kb = 0; kb < NKB; kb++) {
        sc[kb] = vexp_nonpos(sc[kb] - base);
        sum = sum + sc[kb];
      }
      vstore(w.l + c * L, vload(w.l + c * L) + vfold_add<ROWS>(sum));
    }
    decode_pv<ROWS, DEC_TOKS>(vp, n, groups, w.s, w.o, D, rows + nk_rows + ahead);
    n = nn;
    std::swap(tok, tok_next);
    std::swap(kid, kid_next);
  }
  // Rows' max and sum from the patterns (row c·ROWS + i: lane i of head c's)
  for (int64_t c = 0; c < groups; c++)
    for (int i = 0; i < ROWS; i++) {
      w.alpha[c * ROWS + i] = w.m[c * L + i];
      w.rowsum[c * ROWS + i] = w.l[c * L + i];
    }
  if (t.part) {  // one key chunk of a split task: O (unnormalised), max and sum for merge_task
    std::memcpy(t.part, w.o, size_t(m * D) * sizeof(float));
    std::memcpy(t.part + m * D, w.alpha, size_t(m) * sizeof(float));
    std::memcpy(t.part + m * D + m, w.rowsum, size_t(m) * sizeof(float));
    return;
  }
  store_rows(a, t, w.o, D, w.alpha, w.rowsum, w);
}

// A task through decode_rows when decode_fits, else through run_task.
void decode_or_tile_task(const AttnCoreArgs& a, const Task& t, Work& w) {
  if (!decode_fits(a, t)) return run_task(a, t, w);
  const int64_t gm = std::min(t.g, a.Hq / a.Hkv) * t.nr;
  if (gm == 1) return decode_rows<1>(a, t, w);
  if (gm == 2) return decode_rows<2>(a, t, w);
  if (gm == 4) return decode_rows<4>(a, t, w);
  decode_rows<8>(a, t, w);
}
