// Decode task body (a few query rows per KV head, float32 K/V read in place), included once per x86 instruction
// set by attention_core.cpp after attention_tile.h, inside the same `#pragma GCC target` region and namespace.
// No include guard on purpose; it includes nothing. Besides what attention_tile.h uses, the including namespace
// defines: vhsum_v (the NACC sums of vhsum_n as one vector), vfold_max / vfold_add<ROWS> (lane l of the result:
// max / sum of the lanes ≡ l mod ROWS), vany_gt, PV_ACC (accumulator vectors of the P·V block).
//
// Why a path of its own: the tile body (run_task) stores the scores, runs the softmax over the task's rows in
// separate passes through memory and adds P·V through the GEMM kernel, bookkeeping that made a 1-query decode
// compute bound with K/V in cache (about 25 GB/s). Here a tile's scores of all rows are a few vectors (each
// lane one key against one row of one KV head), the online softmax runs on them lane by lane (O is rescaled only
// where a row's running max grows), and P·V keeps a block of O in registers over DEC_TOKS keys; K and V are
// read key by key in address order. Measured against the tile path (1 thread, GQA 32/8, D 128, interleaved in one
// process, medians of 8): 1.40x / 1.47x (AVX-512 / AVX2) with K/V in L2, 1.56x / 1.53x in L3; from DRAM the same
// speed (0.95-1.01x): one core then waits on the cache misses it can keep in flight. Of the prefetch schemes
// tried, lines into L1 about one key ahead in reading order was the only one faster from DRAM (decode_rows).

constexpr int64_t DEC_TILE = 16;  // keys per tile: a page of 16 tokens when pages are 16 keys
// Keys per pass of P·V over a block of O (O read and written once per DEC_TOKS keys): with K/V in L2/L3, 4 and
// 16 were up to 10% slower than 8 (1 thread, AVX-512).
constexpr int DEC_TOKS = 8;

// True when decode_rows takes task t: float32 K/V without a block layout, D a multiple of the vector, a decode
// call (at most SPLIT_MAX_NQ queries), and 1, 2, 4 or 8 rows per KV head (so a score vector holds whole keys).
inline bool decode_fits(const AttnCoreArgs& a, const Task& t) {
  const int64_t G = a.Hq / a.Hkv, gk = std::min(t.g, G), gm = gk * t.nr;
  return a.dtype == 0 && !a.row_ptr && a.D % L == 0 && a.D <= MAXD && a.seqs[t.seq].nq <= SPLIT_MAX_NQ &&
         (gm == 1 || gm == 2 || gm == 4 || gm == 8) && gm <= NACC && t.g / gk <= MAX_WIDE_KV;
}

// Scores of a tile of n keys (K row of key j, KV head 0 of the task, at kp[j]; head c at + c·D) for all the task's
// rows (Q scaled, packed per head block as [D / L][P][L]: the P rows' vectors of a column block together), as
// vectors s[cb·NKB + kb] (cb a block of NGB KV heads, kb a block of KEYS keys): lane (x·NGB + g)·ROWS + r holds key kb·KEYS + x against row r of head cb·NGB + g; one block of NACC
// register accumulators reduced by one transpose-add tree per vector. Keys come first and heads second, so the
// rows are read in address order when KEYS = 1 (a key's rows of all KV heads are one span). Blocks past n: -inf.
template <int ROWS, int NGB, class F>
LLMK_ALWAYS_INLINE void decode_scores(const float* const* kp, int64_t n, int64_t cbs, const float* qp, int64_t D, V* s, F&& before) {
  constexpr int KEYS = NACC / (ROWS * NGB), NKB = DEC_TILE / KEYS, P = NGB * ROWS;
  for (int kb = 0; kb < NKB; kb++) {
    before(kb, NKB);
    if (kb * KEYS >= n) {
      for (int64_t cb = 0; cb < cbs; cb++) s[cb * NKB + kb] = vset(-__builtin_inff());
      continue;
    }
    for (int64_t cb = 0; cb < cbs; cb++) {
      const float* k[KEYS * NGB];
#pragma GCC unroll 16
      for (int x = 0; x < KEYS; x++)  // a short block repeats its last key
#pragma GCC unroll 16
        for (int g = 0; g < NGB; g++) k[x * NGB + g] = kp[std::min<int64_t>(kb * KEYS + x, n - 1)] + (cb * NGB + g) * D;
      const float* qc = qp + cb * P * D;
      V acc[NACC];
#pragma GCC unroll 16
      for (int i = 0; i < NACC; i++) acc[i] = vzero();
      for (int64_t d = 0; d < D; d += L, qc += P * L) {
#pragma GCC unroll 16
        for (int g = 0; g < NGB; g++) {
#pragma GCC unroll 8
          for (int r = 0; r < ROWS; r++) {
            const V qv = vload(qc + (g * ROWS + r) * L);
#pragma GCC unroll 16
            for (int x = 0; x < KEYS; x++) acc[(x * NGB + g) * ROWS + r] = vfma(qv, vload(k[x * NGB + g] + d), acc[(x * NGB + g) * ROWS + r]);
          }
        }
      }
      s[cb * NKB + kb] = vhsum_v(acc);
    }
  }
}

// O rows of one KV head (ROWS of them, row-major in memory) += p·V over keys [j0, j0 + TOKS): p of key j, row r at
// p[j·pk + r]; V row of key j at vp[j] + col. A block of NV column vectors of every row is read, updated and
// written once per TOKS keys.
template <int ROWS, int NV, int TOKS>
LLMK_ALWAYS_INLINE void decode_pv_block(const float* const* vp, const float* p, int64_t pk, int64_t col, float* o, int64_t D) {
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

// O += P·V over a tile's n keys, TOKS keys at a time and key-major within them (each key's V rows of all KV heads in
// address order): P as decode_scores lays out the scores (pv: the tile's P vectors; p of key j, row r of head
// block cb's head g at pv + cb·NKB·L + j·P + g·ROWS + r), O rows head-major (head c's at o + c·ROWS·D).
// before(j, tk, c) runs before KV head c of the block of tk keys from key j.
template <int ROWS, int NGB, int TOKS, class F>
void decode_pv(const float* const* vp, int64_t n, int64_t groups, const float* pv, float* o, int64_t D, F&& before) {
  constexpr int P = NGB * ROWS, NKB = DEC_TILE * P / NACC;
  constexpr int NV = PV_ACC / ROWS > 0 ? PV_ACC / ROWS : 1;
  int64_t j = 0;
  auto keys = [&](auto toks) {
    constexpr int TK = decltype(toks)::value;
    for (int64_t c = 0; c < groups; c++) {
      before(j, TK, c);
      const float* vj[TK];
      for (int x = 0; x < TK; x++) vj[x] = vp[j + x] + c * D;
      const float* p = pv + (c / NGB) * NKB * L + j * P + (c % NGB) * ROWS;
      float* oc = o + c * ROWS * D;
      int64_t col = 0;
      for (; col + NV * L <= D; col += NV * L) decode_pv_block<ROWS, NV, TK>(vj, p, P, col, oc, D);
      for (; col < D; col += L) decode_pv_block<ROWS, 1, TK>(vj, p, P, col, oc, D);
    }
  };
  for (; j + TOKS <= n; j += TOKS) keys(std::integral_constant<int, TOKS>());
  for (; j < n; j++) keys(std::integral_constant<int, 1>());
}

// Prefetches `lines` cache lines from p into L1. As inline asm because GCC 12 -O1 and above dropped these loops
// when written with __builtin_prefetch (no prefetcht0 left in the object code; cause not found).
LLMK_ALWAYS_INLINE void prefetch_l1(const float* p, int64_t lines) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t x = 0; x < lines; x++) asm volatile("prefetcht0 %0" : : "m"(c[x * 64]));
}

// One decode task (see run_task for the task and row layout; ROWS rows per KV head, KV heads in blocks of NGB):
// key tiles of DEC_TILE keys aligned to multiples of it; per tile the scores of all rows, the online softmax
// and P·V, each key's K and V rows read in address order, each line prefetched into L1 shortly before.
template <int ROWS, int NGB>
void decode_rows(const AttnCoreArgs& a, const Task& t, Work& w) {
  constexpr int P = NGB * ROWS, KEYS = NACC / P, NKB = DEC_TILE / KEYS;  // P: lanes of distinct rows
  const AttnSeq& sq = a.seqs[t.seq];
  const int64_t D = a.D, nr = t.nr, m = t.g * nr;
  const int64_t G = a.Hq / a.Hkv, gk = std::min(t.g, G), groups = t.g / gk, cbs = groups / NGB;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < m; i++) {  // Q scaled, rows head-major (i = head · nr + r), packed for decode_scores
    const int64_t r = i % nr, h = t.h0 + i / nr;
    load_row(a.q, a.dtype, ((sq.q0 + t.r0 + r) * a.Hq + h) * D, D, w.tmp);
    float* qb = w.qr + i / P * P * D + i % P * L;
    for (int64_t d = 0; d < D; d += L) vstore(qb + d * P, vload(w.tmp + d) * vset(a.scale));
  }
  for (int64_t r = 0; r < nr; r++) {
    const KeyRange kr = key_range(t.r0 + r, sq.nq, sq.nk, a.causal, a.win_left, a.win_right);
    w.lo[r] = kr.lo;
    w.hi[r] = kr.hi;
  }
  // O rows in w.o (row c·ROWS + r of KV head c); running max and sum of head block cb as patterns (lane l:
  // row cb·P + l % P) at w.m / w.l + cb·L.
  std::fill(w.o, w.o + m * D, 0.f);
  for (int64_t cb = 0; cb < cbs; cb++) {
    vstore(w.m + cb * L, vset(ninf));
    vstore(w.l + cb * L, vzero());
  }
  const int64_t head0 = t.h0 / G * D;  // the task's KV heads are consecutive from this one
  const float* K = static_cast<const float*>(a.k);
  const float* Vc = static_cast<const float*>(a.v);
  const int64_t lo_all = std::max(w.lo[0], t.klo), hi_all = std::min(w.hi[nr - 1], t.khi);
  // Tile [ja, jb]: keys from lo_all, then from multiples of DEC_TILE. tok: element offset of each key's row of
  // the task's first KV head (one page look-up per page).
  auto tile_at = [&](int64_t ja, int64_t* tok) {
    const int64_t jb = std::min(ja / DEC_TILE * DEC_TILE + DEC_TILE - 1, hi_all);
    int64_t row = 0, page_end = ja;
    for (int64_t j = ja; j <= jb; j++) {
      if (j == page_end) {
        row = kv_row(a, sq, j, 0) + head0;
        page_end = a.page_size ? (j / a.page_size + 1) * a.page_size : INT64_MAX;
      } else {
        row += a.Hkv * D;
      }
      tok[j - ja] = row;
    }
    return jb - ja + 1;
  };
  // Each line is prefetched into L1 shortly before it is read, in the order it is read: the next key block's K
  // spans (a key's rows of the task's KV heads are one span) before each block of scores (the next tile's first
  // keys after the last), head c's V rows of the next P·V block before head c's P·V, and head c's K rows of the
  // next tile's first keys during the last block; only the first tile goes to L2 ahead, at once. From DRAM,
  // 1.11-1.14x the former scheme (the next tile's lines into L2, spread over this tile), 0.90-0.98x with K/V in
  // L2/L3 (1 thread, AVX-512, GQA 32/8, D 128, both in one process).
  const int64_t lps = (groups * D * 4 + 63) / 64;  // lines per span
  const int64_t lph = (D * 4 + 63) / 64;  // lines per row of one KV head
  int64_t* tok = w.at;
  int64_t* tok_next = w.at + DEC_TILE;
  V* s = reinterpret_cast<V*>(w.s);  // the tile's scores, then P: cbs · NKB vectors
  const float* kp[DEC_TILE];
  const float* vp[DEC_TILE];
  int64_t ja = lo_all, n = hi_all >= lo_all ? tile_at(ja, tok) : 0;
  for (int64_t j = 0; j < n; j++)
    for (const float* span : {K + tok[j], Vc + tok[j]}) prefetch_span<2>(reinterpret_cast<const char*>(span), lps * 64);
  while (n > 0) {
    const int64_t jn = ja + n, nn = jn <= hi_all ? tile_at(jn, tok_next) : 0;
    for (int64_t j = 0; j < n; j++) {
      kp[j] = K + tok[j];
      vp[j] = Vc + tok[j];
    }
    decode_scores<ROWS, NGB>(kp, n, cbs, w.qr, D, s, [&](int64_t kb, int64_t) {
      for (int64_t x = (kb + 1) * KEYS; x < (kb + 2) * KEYS; x++)
        if (x < n) prefetch_l1(kp[x], lps);
        else if (x - n < nn) prefetch_l1(K + tok_next[x - n], lps);
    });
    // A whole tile that no row masks (lo and hi are non-decreasing in r), and no softcap: scores as computed.
    // Else softcap and masks per score (lane l of a vector: key x = l / P of its block, row l % P of the head
    // block, whose query row is l % ROWS % nr); no key past n.
    if (!(n == DEC_TILE && ja >= w.lo[nr - 1] && ja + n - 1 <= w.hi[0] && a.softcap == 0.f)) {
      float* sf = w.s;
      for (int64_t cb = 0; cb < cbs; cb++)
        for (int kb = 0; kb < NKB; kb++)
          for (int l = 0; l < L; l++) {
            float& x = sf[(cb * NKB + kb) * L + l];
            const int64_t j = kb * KEYS + l / P, r = l % ROWS % nr;
            if (a.softcap > 0.f) x = a.softcap * std::tanh(x * (1.f / a.softcap));
            if (j >= n || ja + j < w.lo[r] || ja + j > w.hi[r]) x = ninf;
          }
    }
    // Online softmax per head block: the tile's max per row, e^(old - new) on O and the sum where it grew, then
    // P = exp(S - max) in place and the rows' sums.
    for (int64_t cb = 0; cb < cbs; cb++) {
      V* sc = s + cb * NKB;
      V mx = sc[0];
#pragma GCC unroll 16
      for (int kb = 1; kb < NKB; kb++) mx = vmax(mx, sc[kb]);
      mx = vfold_max<P>(mx);
      const V mo = vload(w.m + cb * L), mn = vmax(mo, mx);
      const V base = vzero_where_ninf(mn, mn);  // a row that has seen only -inf keeps P = 0
      if (vany_gt(mn, mo)) {
        alignas(64) float al[L], mo_s[L], mn_s[L];
        vstore(al, vexp_nonpos(mo - base));
        vstore(mo_s, mo);
        vstore(mn_s, mn);
        for (int i = 0; i < L; i++)
          if (mo_s[i] == mn_s[i]) al[i] = 1.f;  // unchanged: exactly 1 (the polynomial gives 1 - 2^-24 at 0)
        float* ob = w.o + cb * P * D;
        for (int i = 0; i < P; i++)
          if (al[i] != 1.f)
            for (int64_t d = 0; d < D; d += L) vstore(ob + i * D + d, vload(ob + i * D + d) * vset(al[i]));
        vstore(w.l + cb * L, vload(w.l + cb * L) * vload(al));
        vstore(w.m + cb * L, mn);
      }
      V sum = vzero();
#pragma GCC unroll 16
      for (int kb = 0; kb < NKB; kb++) {
        sc[kb] = vexp_nonpos(sc[kb] - base);
        sum = sum + sc[kb];
      }
      vstore(w.l + cb * L, vload(w.l + cb * L) + vfold_add<P>(sum));
    }
    decode_pv<ROWS, NGB, DEC_TOKS>(vp, n, groups, w.s, w.o, D, [&](int64_t j, int64_t tk, int64_t c) {
      if (j + tk < n)
        for (int64_t x = j + tk; x < std::min(j + 2 * tk, n); x++) prefetch_l1(vp[x] + c * D, lph);
      else
        for (int64_t x = 0; x < std::min<int64_t>(KEYS, nn); x++) prefetch_l1(K + tok_next[x] + c * D, lph);
    });
    ja = jn;
    n = nn;
    std::swap(tok, tok_next);
  }
  // Rows' max and sum from the patterns (row cb·P + i: lane i of block cb's)
  for (int64_t cb = 0; cb < cbs; cb++)
    for (int i = 0; i < P; i++) {
      w.alpha[cb * P + i] = w.m[cb * L + i];
      w.rowsum[cb * P + i] = w.l[cb * L + i];
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
  const int64_t gk = std::min(t.g, a.Hq / a.Hkv), gm = gk * t.nr, groups = t.g / gk;
  // KV heads in blocks of NACC / gm (a key's scores of all rows in one vector) when they divide the task's, else
  // one at a time (NACC / gm keys per vector)
  const bool blocks = groups % (NACC / gm) == 0;
  if (gm == 1) return blocks ? decode_rows<1, NACC>(a, t, w) : decode_rows<1, 1>(a, t, w);
  if (gm == 2) return blocks ? decode_rows<2, NACC / 2>(a, t, w) : decode_rows<2, 1>(a, t, w);
  if (gm == 4) return blocks ? decode_rows<4, NACC / 4>(a, t, w) : decode_rows<4, 1>(a, t, w);
  blocks ? decode_rows<8, NACC / 8>(a, t, w) : decode_rows<8, 1>(a, t, w);
}
