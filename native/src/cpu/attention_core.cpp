// The CPU attention core (attention_core.h): task enumeration, K/V row addressing (contiguous or paged)
// and the tile body (attention_tile.h) compiled for AVX-512, AVX2+FMA and portable code, picked at run
// time (shipped binaries carry no -march flags); LLMK_CPU_ATTN_ISA=avx2|generic forces a lesser one. Float32
// decode tasks take the decode body (attention_decode.h) on AVX-512 and AVX2.
#include "attention_core.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>
#include "simd_x86.h"

#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "attention.h"

namespace llmk::cpu {
namespace {

constexpr int64_t MAXM = 256;   // rows (query rows × heads of a group) of one task
constexpr int64_t MAXBK = 128;  // key tile (layout blockK)
constexpr int64_t MAXD = 256;
constexpr int64_t ROW_PAD = 16;  // floats added to the row stride of Qᵀ and the logits (Work::ms)
constexpr int64_t FEW_ROWS = 8;  // up to this many rows per KV head (decode): scores as row dot products
constexpr int64_t MAX_WIDE_KV = 16;  // decode tasks take every KV head of a sequence, up to this many
// Split-K (flash-decoding): calls with at most SPLIT_MAX_NQ queries per sequence cut each task's visible keys
// into chunks of at least MIN_CHUNK keys, about SPLIT_PER_THREAD chunks per thread in all, merged by LSE.
constexpr int64_t SPLIT_MAX_NQ = 16;
constexpr int64_t MIN_CHUNK = 256;
constexpr int64_t SPLIT_PER_THREAD = 8;
// Key chunk of per-KV-head decode tasks run chunk by chunk across the heads (attention_core). Against Hkv passes
// over the whole context (1 thread, page 16, scattered pages, 16384 keys from DRAM, AVX-512 and AVX2): Nq 3-8 at
// GQA 32/8 D 128 1.34-1.58x, Nq 16 1.19-1.27x, Nq 16 at 32/32 1.64-1.67x; with K/V in cache 0.93-1.0x. 256 keys:
// about the same from DRAM, 0.86-0.95x in cache; 1024: 1.34-1.59x from DRAM.
constexpr int64_t INTERLEAVED_CHUNK = 512;
// Calls reading more K/V bytes than this mark their tasks from_memory: the wide decode tasks then prefetch a
// unit ahead (attention_tile.h, WIDE_UNIT_PREFETCH). Below it K/V mostly come from the caches, where the
// prefetches only cost. GQA 32/8, D 128, 4 queries per sequence, AVX-512, against the per-group prefetch (both
// with 8-row scores): 16384 keys (128 MiB) 1.14-1.18x with 1 and 2 threads; 8 MiB 0.86-0.88x; 16 MiB 1.02-1.07x
// with 1 thread, 0.92x with 2; 24 MiB 1.10x / 1.0x; 32 MiB 1.12x / 1.08x.
constexpr int64_t PREFETCH_MIN_BYTES = int64_t(24) << 20;

// One task: query rows [r0, r0 + nr) of sequence `seq`, query heads h0 .. h0 + g - 1 (g/G KV heads, or one),
// keys [klo, khi] of the rows' visible ones; part: null, or where a split task's partial state goes.
struct Task {
  int64_t seq, h0, g, r0, nr;
  int64_t klo = 0, khi = INT64_MAX;
  float* part = nullptr;
  bool from_memory = false;  // the call reads more K/V than the caches hold (PREFETCH_MIN_BYTES)
};

// Per-thread buffers of one task, allocated once at their largest (64-byte aligned).
struct Work {
  float *qt, *qr, *s, *o, *kt, *vt, *m, *l, *alpha, *rowsum, *tmp;
  int64_t lo[MAXM], hi[MAXM];
  int64_t at[2 * MAX_WIDE_KV * MAXBK];  // element offsets of the current and the next key tile's rows, per group
  const float* vrow[MAX_WIDE_KV * MAXBK];  // the tile's V rows (in place or converted), per group
  const float* krow[MAX_WIDE_KV * MAXBK];  // the tile's K rows (in place or converted), per group
  const float* qtrow[MAXD];                // rows of qt
  int64_t mp = 0, dp = 0;  // rows and head size rounded up to the vector width
  // Row stride of Qᵀ and of the logits: mp and one cache line, so that the rows of a GEMM panel (mp a multiple
  // of 256 floats would put them 1 KB apart, in 4 of L1's 64 sets) do not evict each other.
  int64_t ms = 0;
  float* base = nullptr;
  Work() {
    const size_t nqt = MAXD * (MAXM + ROW_PAD), ns = MAXBK * (MAXM + ROW_PAD), no = MAXM * MAXD, nkv = MAXBK * MAXD, row = MAXM + MAXD;
    const size_t nvt = MAX_WIDE_KV * MAXBK * (MAXD + ROW_PAD);
    base = static_cast<float*>(std::aligned_alloc(64, (2 * nqt + ns + no + nkv + nvt + 5 * row) * sizeof(float)));
    if (!base) throw Error(ErrCode::OOM, "attention: cannot allocate the CPU work buffers");
    float* p = base;
    auto take = [&](size_t n) { float* r = p; p += n; return r; };
    qt = take(nqt); qr = take(nqt); s = take(ns); o = take(no); kt = take(nkv); vt = take(nvt);
    m = take(row); l = take(row); alpha = take(row); rowsum = take(row); tmp = take(row);
  }
  ~Work() { std::free(base); }
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
};

// Element offset of key j's row (KV head hkv) of a sequence in K and V. A page id outside the cache is an
// index error (reported at the next synchronisation), checked before anything is read from the page.
LLMK_ALWAYS_INLINE int64_t kv_row(const AttnCoreArgs& a, const AttnSeq& s, int64_t j, int64_t hkv) {
  if (a.page_size == 0) return ((s.k0 + j) * a.Hkv + hkv) * a.D;
  const int64_t page = s.pages[j / a.page_size];
  if (page < 0 || page >= a.num_pages)
    throw Error(ErrCode::Index, fmt("attention.paged: block table entry %lld is outside the cache's %lld pages",
                                    (long long)page, (long long)a.num_pages));
  return ((page * a.page_size + j % a.page_size) * a.Hkv + hkv) * a.D;
}

#if defined(LLMK_CPU_X86)
namespace avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#include "simd_avx512.inc"
constexpr int R = 6, NVM = 4;  // 6×64 tile: 24 zmm accumulators
LLMK_ALWAYS_INLINE V vset(float x) { return _mm512_set1_ps(x); }
LLMK_ALWAYS_INLINE V vmax(V a, V b) { return _mm512_max_ps(a, b); }
LLMK_ALWAYS_INLINE V vfloor(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
LLMK_ALWAYS_INLINE V vpow2(V n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
LLMK_ALWAYS_INLINE float vhsum(V a) { return _mm512_reduce_add_ps(a); }
// The NACC score accumulators of the decode tiles summed together (hsum_avx512.h: a transpose-add tree, lane i
// of the result is the sum of x[i]).
constexpr int NACC = 16;
#include "hsum_avx512.h"
LLMK_ALWAYS_INLINE V vhsum_v(const V* x) { return vhsum16_v(x); }
LLMK_ALWAYS_INLINE void vhsum_n(const V* x, float* sums) { _mm512_storeu_ps(sums, vhsum_v(x)); }
// Lane l of the result: the max / sum of x's lanes ≡ l mod ROWS (ROWS a power of two up to 16): halves, quads,
// pairs and neighbours folded in turn.
template <bool MAX>
LLMK_ALWAYS_INLINE V vop(V a, V b) { return MAX ? _mm512_max_ps(a, b) : _mm512_add_ps(a, b); }
template <int ROWS, bool MAX>
LLMK_ALWAYS_INLINE V vfold(V x) {
  if constexpr (ROWS < 16) x = vop<MAX>(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
  if constexpr (ROWS < 8) x = vop<MAX>(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
  if constexpr (ROWS < 4) x = vop<MAX>(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
  if constexpr (ROWS < 2) x = vop<MAX>(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return x;
}
template <int ROWS> LLMK_ALWAYS_INLINE V vfold_max(V x) { return vfold<ROWS, true>(x); }
template <int ROWS> LLMK_ALWAYS_INLINE V vfold_add(V x) { return vfold<ROWS, false>(x); }
LLMK_ALWAYS_INLINE bool vany_gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }
// Column vectors per row of the decode P·V block: 16 O accumulators (of 32 zmm); 20 or 24 with 4 rows were
// 0.92-1.01x.
constexpr int pv_cols(int rows) { return rows < 16 ? 16 / rows : 1; }
// Decode's prefetch distance in bytes of K/V reading order (attention_decode.h): 10 KiB was 0.96-0.97x, 4 KiB
// 0.93-0.95x (from DRAM, 1 thread, GQA 32/8, D 128, B = 1 and 4).
constexpr int64_t DEC_PF_BYTES = 8192;
// Wide decode tasks from memory prefetch a unit ahead (attention_tile.h, UnitPrefetch).
constexpr bool WIDE_UNIT_PREFETCH = true;
LLMK_ALWAYS_INLINE V vzero_where_ninf(V x, V r) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, vset(-__builtin_inff()), _CMP_EQ_OQ), r, vzero());
}
#include "matmul_f16c.h"
#include "attention_tile.h"
#include "attention_decode.h"
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "simd_avx2.inc"
constexpr int R = 6, NVM = 2;  // 6×16 tile: 12 ymm accumulators
LLMK_ALWAYS_INLINE V vset(float x) { return _mm256_set1_ps(x); }
LLMK_ALWAYS_INLINE V vmax(V a, V b) { return _mm256_max_ps(a, b); }
LLMK_ALWAYS_INLINE V vfloor(V a) { return _mm256_floor_ps(a); }
LLMK_ALWAYS_INLINE V vpow2(V n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
LLMK_ALWAYS_INLINE float vhsum(V a) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}
// sums[i] = Σ lanes of x[i] for the NACC (of 16 ymm) score accumulators of the decode tile: a transpose-add tree
// (21 shuffles and adds for 8 sums). Slot 2r+h of the tree takes x[4h+r]: lane 4h+r of the result is its sum.
constexpr int NACC = 8;
LLMK_ALWAYS_INLINE V vhsum_v(const V* x) {
  V y[4], z[2];
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {  // 128-bit half h: slot 2k+h folded to 4 lanes
    const V a = x[(2 * k) % 2 * 4 + (2 * k) / 2], b = x[(2 * k + 1) % 2 * 4 + (2 * k + 1) / 2];
    y[k] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  }
#pragma GCC unroll 2
  for (int k = 0; k < 2; k++)  // half h: slots 4k+h and 4k+2+h, 2 lanes each
    z[k] = _mm256_add_ps(_mm256_unpacklo_ps(y[2 * k], y[2 * k + 1]), _mm256_unpackhi_ps(y[2 * k], y[2 * k + 1]));
  return _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(z[0]), _mm256_castps_pd(z[1]))),
                       _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(z[0]), _mm256_castps_pd(z[1]))));
  // lane 4h+r: slot 2r+h = x[4h+r]
}
LLMK_ALWAYS_INLINE void vhsum_n(const V* x, float* sums) { _mm256_storeu_ps(sums, vhsum_v(x)); }
// Lane l of the result: the max / sum of x's lanes ≡ l mod ROWS (ROWS a power of two up to 8).
template <bool MAX>
LLMK_ALWAYS_INLINE V vop(V a, V b) { return MAX ? _mm256_max_ps(a, b) : _mm256_add_ps(a, b); }
template <int ROWS, bool MAX>
LLMK_ALWAYS_INLINE V vfold(V x) {
  if constexpr (ROWS < 8) x = vop<MAX>(x, _mm256_permute2f128_ps(x, x, 1));
  if constexpr (ROWS < 4) x = vop<MAX>(x, _mm256_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
  if constexpr (ROWS < 2) x = vop<MAX>(x, _mm256_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return x;
}
template <int ROWS> LLMK_ALWAYS_INLINE V vfold_max(V x) { return vfold<ROWS, true>(x); }
template <int ROWS> LLMK_ALWAYS_INLINE V vfold_add(V x) { return vfold<ROWS, false>(x); }
LLMK_ALWAYS_INLINE bool vany_gt(V a, V b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0; }
// Column vectors per row of the decode P·V block: 8 O accumulators (of 16 ymm), 12 with 4 rows (1.04x with
// K/V in L1 and from DRAM, 1 thread, GQA 32/8, D 128; 12 with 1 or 2 rows: 0.8-0.9x).
constexpr int pv_cols(int rows) { return rows == 4 ? 3 : rows < 8 ? 8 / rows : 1; }
// Decode's prefetch distance (attention_decode.h): further ahead than AVX-512's 8 KiB. Against 8 KiB, from DRAM
// (1 thread, GQA 32/8, D 128, page 16, B = 1, 4, 16 in one process, medians of 11-15, five pairs per B):
// 1.04-1.09x; 12 KiB 1.01-1.07x, 14 KiB 1.03-1.10x; with K/V in L2 1.01x. MHA 32/32 1.06x, 64/8 0.99x, D 256
// 0.96-1.00x.
constexpr int64_t DEC_PF_BYTES = 10240;
// Wide decode tasks keep the per-group prefetch: AVX2's arithmetic, not memory, bounds them (a unit prefetch with
// V copied, as AVX2 does at D 128, was 0.96x from DRAM, 0.89-0.92x in cache, 4 queries at GQA 32/8, 2 threads).
constexpr bool WIDE_UNIT_PREFETCH = false;
LLMK_ALWAYS_INLINE V vzero_where_ninf(V x, V r) {
  return _mm256_blendv_ps(r, vzero(), _mm256_cmp_ps(x, vset(-__builtin_inff()), _CMP_EQ_OQ));
}
#include "matmul_f16c.h"
#include "attention_tile.h"
#include "attention_decode.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

namespace generic {
#include "simd_generic.inc"
constexpr int R = 4, NVM = 2;  // 4×8 tile (SSE2 / NEON registers)
constexpr bool WIDE_UNIT_PREFETCH = false;
LLMK_ALWAYS_INLINE V vset(float x) { return V{x, x, x, x}; }
// Lane-wise helpers of the portable body, written per lane (the compiler vectorises what it can).
template <class F>
LLMK_ALWAYS_INLINE V lanes(F f) { return V{f(0), f(1), f(2), f(3)}; }
LLMK_ALWAYS_INLINE V vmax(V a, V b) { return lanes([&](int i) { return std::max(a[i], b[i]); }); }
LLMK_ALWAYS_INLINE V vfloor(V a) { return lanes([&](int i) { return std::floor(a[i]); }); }
LLMK_ALWAYS_INLINE float vhsum(V a) { return (a[0] + a[1]) + (a[2] + a[3]); }
constexpr int NACC = 8;  // score accumulators of the decode tile
LLMK_ALWAYS_INLINE void vhsum_n(const V* x, float* sums) {
  for (int i = 0; i < NACC; i++) sums[i] = vhsum(x[i]);
}
LLMK_ALWAYS_INLINE V vpow2(V n) { return lanes([&](int i) { return std::ldexp(1.f, int(n[i])); }); }
LLMK_ALWAYS_INLINE V vzero_where_ninf(V x, V r) {
  return lanes([&](int i) { return x[i] == -std::numeric_limits<float>::infinity() ? 0.f : r[i]; });
}
#include "attention_tile.h"
}  // namespace generic

using TaskFn = void (*)(const AttnCoreArgs&, const Task&, Work&);
using MergeFn = void (*)(const AttnCoreArgs&, const Task&, const float* const*, int64_t, Work&);
struct Kernel {
  TaskFn fn;
  MergeFn merge;
  const char* name;
};

Kernel pick_kernel() {
  const char* want = std::getenv("LLMK_CPU_ATTN_ISA");
  const std::string w = want ? want : "";
#if defined(LLMK_CPU_X86)
  __builtin_cpu_init();
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  if (has2 && __builtin_cpu_supports("avx512f") && (w.empty() || w == "avx512")) return {avx512::decode_or_tile_task, avx512::merge_task, "avx512"};
  if (has2 && w != "generic") return {avx2::decode_or_tile_task, avx2::merge_task, "avx2"};
#endif
  (void)w;
  return {generic::run_task, generic::merge_task, "generic"};
}

}  // namespace

const char* attention_core_isa() { return pick_kernel().name; }

// This thread's work buffers (allocated on first use, kept for the thread's life).
Work& thread_work() {
  thread_local Work w;
  return w;
}

// A split task: its chunks are items [first, first + n) of the item list.
struct Split {
  Task task;
  int64_t first, n;
};

void attention_core(const AttnCoreArgs& a) {
  const bool shared = a.layout_heads == 1 || a.row_ptr == nullptr;
  const int64_t G = a.Hq / a.Hkv;
  const int64_t threads = num_threads();
  int64_t max_nq = 0, max_nk = 0;
  for (int64_t s = 0; s < a.nseq; s++) {
    max_nq = std::max(max_nq, a.seqs[s].nq);
    max_nk = std::max(max_nk, a.seqs[s].nk);
  }
  const bool split = max_nq <= SPLIT_MAX_NQ;
  // LLMK_CPU_ATTN_SPLIT_KEYS=n: chunks of n keys whatever the size (so tests reach many chunks on short contexts)
  const char* forced = std::getenv("LLMK_CPU_ATTN_SPLIT_KEYS");
  const int64_t forced_chunk = forced ? std::clamp<int64_t>(std::atoll(forced), 0, int64_t(1) << 40) : 0;
  const int64_t min_chunk = forced_chunk > 0 ? forced_chunk : MIN_CHUNK;
  // Decode (a few queries per sequence, enough sequences for the threads or keys enough to split): one task per
  // sequence over every KV head, or over the largest divisor of Hkv up to MAX_WIDE_KV of them (and MAXM rows),
  // so each token's K/V rows of those heads are read together (contiguous) instead of Hkv strided passes (with
  // 32 KV heads, 32 passes of 512 bytes per 16 KiB token read 13-14 GB/s from DRAM where two passes of 8 KiB
  // read 1.9x that). The rows per KV head (G · queries) take the decode body (up to FEW_ROWS) or, in split-K
  // calls, the GEMM scores (a multiple of 16, so a head's columns of Qᵀ are whole vectors of every ISA: 4, 8
  // queries at GQA 4:1 or 16 with MHA, speculative decoding). Against one task per KV head with its key chunks
  // interleaved (paged, page 16, D 64-128): from DRAM 1.05-1.16x AVX-512 with 1 thread, 1.10-1.22x with 2, AVX2
  // 1.0-1.07x; with K/V in cache 0.93-1.11x (AVX2 0.97x).
  const int64_t gq = G * max_nq;  // rows per KV head
  int64_t wide_kv = std::min(a.Hkv, MAX_WIDE_KV);
  while (wide_kv > 1 && (a.Hkv % wide_kv || wide_kv * gq > MAXM)) wide_kv--;
  const bool wide = shared && wide_kv > 1 && a.D % 16 == 0 && (gq <= FEW_ROWS || (split && gq % 16 == 0)) &&
                    (a.nseq >= threads || (split && max_nk >= 2 * min_chunk));
  const int64_t g = wide ? wide_kv * G : shared ? G : 1, units = wide ? a.Hkv / wide_kv : shared ? a.Hkv : a.Hq;
  // Query rows per task: a power of two (so a tile never straddles two layout rows) with g·rows <= MAXM.
  int64_t rq = 1;
  while (rq * 2 <= a.block_q && rq * 2 * g <= MAXM) rq *= 2;
  std::vector<Task> tasks;
  for (int64_t s = 0; s < a.nseq; s++) {
    const AttnSeq& sq = a.seqs[s];
    const int64_t tiles = (sq.nq + rq - 1) / rq;
    for (int64_t local = 0; local < units * tiles; local++) {
      const int64_t unit = local % units, tile = tiles - 1 - local / units;  // longest (causal) rows first
      Task t;
      t.seq = s;
      t.g = g;
      t.h0 = shared ? unit * g : unit;
      t.r0 = tile * rq;
      t.nr = std::min(rq, sq.nq - t.r0);
      tasks.push_back(t);
    }
  }
  if (tasks.empty()) return;
  int64_t kv_bytes = 0;
  for (int64_t s = 0; s < a.nseq; s++) kv_bytes += 2 * a.seqs[s].nk * a.Hkv * a.D * (a.dtype == 0 ? 4 : 2);
  for (Task& t : tasks) t.from_memory = kv_bytes > PREFETCH_MIN_BYTES;
  const Kernel k = pick_kernel();
  // Split-K: chunks of the visible key range (aligned to key blocks), sized so that all tasks give about
  // SPLIT_PER_THREAD chunks per thread (at least two threads' worth, so the split path runs everywhere).
  std::vector<Task> items;
  std::vector<Split> splits;
  std::vector<KeyRange> vis(tasks.size());
  int64_t keys = 0;
  for (size_t i = 0; i < tasks.size(); i++) {
    const Task& t = tasks[i];
    const AttnSeq& sq = a.seqs[t.seq];
    const KeyRange first = key_range(t.r0, sq.nq, sq.nk, a.causal, a.win_left, a.win_right);
    const KeyRange last = key_range(t.r0 + t.nr - 1, sq.nq, sq.nk, a.causal, a.win_left, a.win_right);
    vis[i] = {std::max<int64_t>(first.lo, 0), last.hi};
    keys += std::max<int64_t>(0, vis[i].hi - vis[i].lo + 1);
  }
  const int64_t target = SPLIT_PER_THREAD * std::max<int64_t>(threads, 2);
  int64_t chunk = forced_chunk > 0 ? forced_chunk : std::max(MIN_CHUNK, (keys + target - 1) / target);
  // Tasks of one KV head each (decode row counts the wide tasks do not take): the heads' tasks of a sequence run
  // chunk by chunk (below), each chunk INTERLEAVED_CHUNK keys, so that the token rows a chunk reads from memory
  // (all heads', Hkv·D apart) are read once and stay in cache for the other heads, instead of Hkv strided passes
  // over the whole context.
  const bool interleave = split && !wide && units > 1;
  if (interleave && forced_chunk == 0) chunk = INTERLEAVED_CHUNK;
  chunk = (chunk + a.block_k - 1) / a.block_k * a.block_k;
  // A chunk's partial state: O [m][dp], max [m], sum [m] of its task's m rows (dp: D padded for the widest vector)
  auto part_floats = [&](const Task& t) { return (t.g * t.nr * ((a.D + 15) / 16 * 16 + 2) + 15) / 16 * 16; };
  std::vector<int64_t> nchunks(tasks.size(), 1);
  int64_t nparts = 0;
  for (size_t i = 0; i < tasks.size(); i++) {
    if (split && vis[i].hi >= vis[i].lo) nchunks[i] = (vis[i].hi - vis[i].lo / a.block_k * a.block_k) / chunk + 1;
    if (nchunks[i] > 1) nparts += nchunks[i] * part_floats(tasks[i]);
  }
  std::vector<float> parts(static_cast<size_t>(nparts));
  float* next_part = parts.data();
  std::vector<int64_t> first(tasks.size());  // each task's first item
  for (size_t i = 0; i < tasks.size(); i++) {
    first[i] = int64_t(items.size());
    if (nchunks[i] == 1) {
      items.push_back(tasks[i]);
      continue;
    }
    splits.push_back({tasks[i], int64_t(items.size()), nchunks[i]});
    const int64_t start = vis[i].lo / a.block_k * a.block_k;
    for (int64_t c = 0; c < nchunks[i]; c++) {
      Task t = tasks[i];
      t.klo = start + c * chunk;
      t.khi = t.klo + chunk - 1;
      t.part = next_part;
      next_part += part_floats(t);
      items.push_back(t);
    }
  }
  // Run order: item by item, or with `interleave` chunk c of every KV head's task of a query tile (consecutive
  // tasks, with the same rows and so the same chunks) before chunk c + 1.
  const size_t per = interleave ? size_t(units) : 1;
  std::vector<int64_t> order;
  order.reserve(items.size());
  for (size_t i0 = 0; i0 < tasks.size(); i0 += per)
    for (int64_t c = 0; c < nchunks[i0]; c++)
      for (size_t u = 0; u < per; u++) order.push_back(first[i0 + u] + c);
  parallel_for(int64_t(order.size()), 1, [&](int64_t t0, int64_t t1) {
    Work& w = thread_work();
    for (int64_t t = t0; t < t1; t++) k.fn(a, items[size_t(order[size_t(t)])], w);
  });
  if (splits.empty()) return;
  parallel_for(int64_t(splits.size()), 1, [&](int64_t s0, int64_t s1) {
    Work& w = thread_work();
    std::vector<const float*> ptrs;
    for (int64_t s = s0; s < s1; s++) {
      const Split& sp = splits[size_t(s)];
      ptrs.clear();
      for (int64_t c = 0; c < sp.n; c++) ptrs.push_back(items[size_t(sp.first + c)].part);
      k.merge(a, sp.task, ptrs.data(), sp.n, w);
    }
  });
}

}  // namespace llmk::cpu
