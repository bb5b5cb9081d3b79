// MoE expert layer on the CPU. See moe_experts.h for the contract.
//
// 1. Ids (and the expert map) are checked, then the kept slots are grouped by local expert with
//    moe_align's counting sort (block size 1: expert e owns rows [off[e], off[e+1]) of the buffers).
// 2. The tokens are gathered once as float32 rows in that order (xg [R, H]).
// 3. GEMM 1 over (expert, block of intermediate neurons) items: the gate and up rows of the block, the
//    bias, the activation and the rounding to x's dtype in the epilogue -> h [R, I].
// 4. GEMM 2 over (expert, block of outputs) items: bias and routing weight in the epilogue -> o [R, H].
// 5. y[t] = Σ_j o[row(t, j)] in j order (deterministic; skipped slots add nothing), stored in x's dtype.
// GEMM items are claimed dynamically, the experts with most tokens first; epilogues write h and o along
// their rows. Dense weights go through expert_gemm_tile: dot-product tiles up to 32 tokens per expert; more, the
// expert's tokens are packed once per GEMM and every item runs the register-blocked micro-kernel on them. INT4 weights: up to 16 tokens, int4_matmul on the item's rows
// (its small-M AVX-512/AVX2 kernels); more, the item's rows dequantised into a per-thread float32 tile
// (never the whole weight) and then expert_gemm_tile.
#include "moe_experts.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "int4.h"
#include "moe.h"
#include "moe_experts_act.h"

namespace llmk::cpu {

namespace {

constexpr int64_t kRowsPerItem = 128;  // weight rows per work item (a GEMM 1 item has 2× that when gated)

// Rows [r0, r0 + rows) of expert e's projection times the gathered rows xs [cnt, K]: the result in
// c with element (row r, token m) at c[r * rs + m * ms].
struct Tile {
  std::vector<float> buf;
  int64_t rs = 0, ms = 0;
  float at(int64_t r, int64_t m) const { return buf[size_t(r * rs + m * ms)]; }
};

constexpr int64_t kInt4SmallM = 16;  // int4_matmul's small-M kernels up to this many tokens

const void* scale_ptr(const ExpertWeight& w, int64_t at) {
  return static_cast<const char*>(w.scales) + size_t(at) * (w.sdt == 0 ? 4 : 2);
}

// The INT4 codes as the CPU kernels address them (canonical, or the quads of a prepared weight).
QWeight codes(const ExpertWeight& w, int64_t K) { return QWeight{w.q, K / 2, {w.tuned, 0}}; }

// Rows [row, row + rows) of an INT4 projection as float32, scale · (code − zero) as int4_dequantize
// computes it, in a loop the compiler vectorises (one work item's rows, never the whole weight).
void dequant_rows(const ExpertWeight& w, int64_t row, int64_t rows, int64_t K, float* out) {
  const int64_t G = K / w.group, gp = w.group / 2;
  const QWeight qw = codes(w, K);
  for (int64_t r = row; r < row + rows; r++) {
    const QRow q = qw.row(r);
    float* o = out + (r - row) * K;
    for (int64_t g = 0; g < G; g++) {
      const float s = load_as_f32(w.scales, r * G + g, w.sdt);
      const float z = w.zeros ? float(w.zeros[r * G + g]) : 8.f;
      float* og = o + g * w.group;
      for (int64_t j0 = 0; j0 < gp;) {  // the group's bytes a chunk at a time (contiguous there: QRow)
        const int64_t at = g * gp + j0, len = std::min(gp - j0, kQuadChunk - at % kQuadChunk);
        const uint8_t* qb = q.at(at);
        float* oc = og + 2 * j0;
        for (int64_t j = 0; j < len; j++) {
          oc[2 * j] = s * (float(qb[j] & 15u) - z);
          oc[2 * j + 1] = s * (float(qb[j] >> 4) - z);
        }
        j0 += len;
      }
    }
  }
}

// Each expert's rows of xs [R, K] packed once for the micro-kernel when it has enough tokens: of(e), or
// null (then its items use the dot-product tiles).
struct PackedTokens {
  std::vector<float> buf;
  std::vector<int64_t> at;
  const float* of(int64_t e) const { return at[size_t(e)] < 0 ? nullptr : buf.data() + at[size_t(e)]; }
};

PackedTokens pack_tokens(const float* xs, int64_t K, const std::vector<int32_t>& off, int E) {
  PackedTokens pk;
  pk.at.assign(size_t(E), -1);
  int64_t total = 0;
  for (int e = 0; e < E; e++) {
    const int64_t n = expert_packed_size(off[size_t(e) + 1] - off[size_t(e)], K);
    if (n > 0) { pk.at[size_t(e)] = total; total += n; }
  }
  if (total == 0) return pk;  // decode: nothing to pack, no pool wake-up
  pk.buf.resize(size_t(total));
  parallel_for(E, 1, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; e++)
      if (pk.at[size_t(e)] >= 0)
        expert_pack_tokens(xs + off[size_t(e)] * K, off[size_t(e) + 1] - off[size_t(e)], K, pk.buf.data() + pk.at[size_t(e)]);
  });
  return pk;
}

void project(const ExpertWeight& w, int64_t e, int64_t N, int64_t K, int64_t r0, int64_t rows, const float* xs,
             int64_t cnt, const float* packed, Tile& t) {
  t.buf.resize(size_t(rows * cnt));
  if (w.dense) {
    // row-major [rows][cnt]
    t.rs = cnt; t.ms = 1;
    const size_t esz = w.dt == 0 ? 4 : 2;
    const char* base = static_cast<const char*>(w.dense) + size_t(e * N * K) * esz;
    expert_gemm_tile(base, w.dt, K, r0, rows, xs, cnt, t.buf.data(), cnt, packed);
  } else if (cnt <= kInt4SmallM) {
    // int4_matmul's small-M kernels write [cnt][rows]
    t.rs = 1; t.ms = rows;
    // rows from `row`: the canonical rows there, or the quad holding it with the rows counted from its place in it
    const int64_t G = K / w.group, row = e * N + r0, first = w.tuned ? row / kQuadRows * kQuadRows : row;
    int4_matmul(xs, 0, w.q + first * (K / 2), scale_ptr(w, row * G), w.sdt, w.zeros ? w.zeros + row * G : nullptr,
                nullptr, 0, nullptr, t.buf.data(), 0, cnt, rows, K, w.group, QLayout{w.tuned, row - first});
  } else {
    // Enough tokens to reuse each weight many times: the item's rows dequantised into a per-thread
    // float32 tile (never the whole weight), then the register-blocked GEMM.
    t.rs = cnt; t.ms = 1;
    thread_local std::vector<float> deq;
    deq.resize(size_t(rows * K));
    dequant_rows(w, e * N + r0, rows, K, deq.data());
    expert_gemm_tile(deq.data(), 0, K, 0, rows, xs, cnt, t.buf.data(), cnt, packed);
  }
}

// Work items (expert, first row) of a projection with `rows` rows per expert, `per` rows per item,
// ordered by the expert's token count, largest first, so the dynamic schedule of run_items ends with
// the cheapest items and both cores finish together.
std::vector<std::pair<int32_t, int64_t>> work_items(const std::vector<int32_t>& off, int E, int64_t rows, int64_t per) {
  std::vector<int32_t> order;
  for (int e = 0; e < E; e++)
    if (off[size_t(e) + 1] > off[size_t(e)]) order.push_back(e);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return off[size_t(a) + 1] - off[size_t(a)] > off[size_t(b) + 1] - off[size_t(b)];
  });
  std::vector<std::pair<int32_t, int64_t>> it;
  for (const int32_t e : order)
    for (int64_t b = 0; b < rows; b += per) it.push_back({e, b});
  return it;
}

// fn(i) for every item i < n, claimed one at a time by each pool thread (a static split into whole
// experts leaves a core idle when the token counts are skewed).
template <class Fn>
void run_items(int64_t n, Fn&& fn) {
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(n, num_threads()), 1, [&](int64_t, int64_t) {
    for (int64_t i = next++; i < n; i = next++) fn(i);
  });
}

// The layer's float32 buffers (gathered x, h, o), per calling thread and kept between calls so that
// a decode loop neither zeroes nor faults in fresh pages each call; trim_buffers drops the big ones.
constexpr size_t kKeepFloats = size_t(16) << 20;
std::vector<float>& layer_buffer(int slot) {
  thread_local std::vector<float> bufs[3];
  return bufs[slot];
}
float* reusable(int slot, int64_t n) {
  std::vector<float>& b = layer_buffer(slot);
  if (b.size() < size_t(n)) { std::vector<float>().swap(b); b.resize(size_t(n)); }
  return b.data();
}
void trim_buffers() {
  for (int s = 0; s < 3; s++)
    if (layer_buffer(s).size() > kKeepFloats) std::vector<float>().swap(layer_buffer(s));
}

float bias_at(const ExpertWeight& w, int64_t i) { return w.bias ? load_as_f32(w.bias, i, w.bdt) : 0.f; }

[[noreturn]] void bad(const char* what, int64_t at, int32_t v, int lo, int hi) {
  throw Error(ErrCode::Index, fmt("moe.experts: %s %d at flat position %lld is outside [%d, %d)", what, int(v),
                                  (long long)at, lo, hi));
}

}  // namespace

void moe_experts(const void* x, int xdt, const float* weights, const int32_t* ids, const ExpertWeight& gate_up,
                 const ExpertWeight& down, const MoeExpertsParams& p, void* y) {
  const int64_t T = p.tokens, H = p.hidden, I = p.inter, n = T * p.k;
  const int E = p.experts;
  const bool gated = moe_act::gated(p.activation);
  const int64_t N1 = gated ? 2 * I : I;
  // 1. checks and grouping (nothing is written to y before they pass)
  std::vector<int32_t> local, slot_of;  // kept slots: local expert, flat slot index
  local.reserve(size_t(n)); slot_of.reserve(size_t(n));
  for (int64_t s = 0; s < n; s++) {
    const int32_t g = ids[s];
    if (g < 0 || g >= p.global_experts) bad("expert id", s, g, 0, p.global_experts);
    const int32_t e = p.expert_map ? p.expert_map[g] : g;
    if (e < -1 || e >= E) bad("expertMap entry", g, e, -1, E);
    if (e >= 0) { local.push_back(e); slot_of.push_back(int32_t(s)); }
  }
  const int64_t R = int64_t(local.size());
  std::vector<int32_t> sorted(size_t(std::max<int64_t>(R, 1))), blocks(size_t(std::max<int64_t>(R, 1)));
  std::vector<int32_t> off(size_t(E) + 1, 0), row_of_slot(size_t(n), -1);
  int32_t padded = 0;
  if (R > 0)
    moe_align({local.data(), R, E, 1, sorted.data(), R, blocks.data(), R, &padded, off.data()});
  for (int64_t r = 0; r < R; r++) row_of_slot[size_t(slot_of[size_t(sorted[size_t(r)])])] = int32_t(r);

  // 2. gathered tokens, float32
  float* const xg = reusable(0, R * H);
  float* const h = reusable(1, R * I);
  float* const o = reusable(2, R * H);
  parallel_for(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = slot_of[size_t(sorted[size_t(r)])] / p.k;
      for (int64_t c = 0; c < H; c++) xg[r * H + c] = load_as_f32(x, t * H + c, xdt);
    }
  });

  // 3. GEMM 1 + bias + activation, rounded to x's dtype
  const int64_t per1 = gated ? kRowsPerItem / 2 : kRowsPerItem;
  const auto it1 = work_items(off, E, I, per1);
  const PackedTokens px = pack_tokens(xg, H, off, E);
  run_items(int64_t(it1.size()), [&](int64_t i) {
    thread_local Tile ga, up;
    thread_local std::vector<float> bias;
    const int64_t e = it1[size_t(i)].first, n0 = it1[size_t(i)].second, nb = std::min(per1, I - n0);
    const int64_t rbeg = off[size_t(e)], cnt = off[size_t(e) + 1] - rbeg;
    const float* xs = xg + rbeg * H;
    const float* pk = px.of(e);
    // row of the gate / up of neuron j (relative to the tile)
    int64_t gr = 0, gs = 1, ur = 0, us = 1;
    if (!gated) {
      project(gate_up, e, N1, H, n0, nb, xs, cnt, pk, ga);
    } else if (p.interleaved) {
      project(gate_up, e, N1, H, 2 * n0, 2 * nb, xs, cnt, pk, ga);
      gs = 2; ur = 1; us = 2;
    } else {
      project(gate_up, e, N1, H, n0, nb, xs, cnt, pk, ga);
      project(gate_up, e, N1, H, I + n0, nb, xs, cnt, pk, up);
    }
    const Tile& ut = (gated && !p.interleaved) ? up : ga;
    bias.resize(size_t(2 * nb));  // gate and up bias of each neuron
    for (int64_t j = 0; j < nb; j++) {
      const int64_t n = n0 + j;
      const int64_t grow = gated && p.interleaved ? 2 * n : n, urow = p.interleaved ? 2 * n + 1 : I + n;
      bias[size_t(2 * j)] = bias_at(gate_up, e * N1 + grow);
      bias[size_t(2 * j + 1)] = gated ? bias_at(gate_up, e * N1 + urow) : 0.f;
    }
    // token-major, so h is written along its rows (the tile is small and cache-resident)
    for (int64_t m = 0; m < cnt; m++) {
      float* hm = h + (rbeg + m) * I + n0;
      for (int64_t j = 0; j < nb; j++) {
        const float g = ga.at(gr + j * gs, m) + bias[size_t(2 * j)];
        const float u = gated ? ut.at(ur + j * us, m) + bias[size_t(2 * j + 1)] : 0.f;
        hm[j] = moe_act::round_to(xdt, moe_act::apply(p.activation, g, u));
      }
    }
  });

  // 4. GEMM 2 + bias, times the routing weight
  const auto it2 = work_items(off, E, H, kRowsPerItem);
  const PackedTokens ph = pack_tokens(h, I, off, E);
  run_items(int64_t(it2.size()), [&](int64_t i) {
    thread_local Tile d;
    thread_local std::vector<float> bias;
    const int64_t e = it2[size_t(i)].first, h0 = it2[size_t(i)].second, hb = std::min(kRowsPerItem, H - h0);
    const int64_t rbeg = off[size_t(e)], cnt = off[size_t(e) + 1] - rbeg;
    project(down, e, H, I, h0, hb, h + rbeg * I, cnt, ph.of(e), d);
    bias.resize(size_t(hb));
    for (int64_t j = 0; j < hb; j++) bias[size_t(j)] = bias_at(down, e * H + h0 + j);
    for (int64_t m = 0; m < cnt; m++) {  // token-major: o written along its rows
      const int64_t r = rbeg + m;
      const float wt = weights[slot_of[size_t(sorted[size_t(r)])]];
      float* orow = o + r * H + h0;
      for (int64_t j = 0; j < hb; j++) orow[j] = wt * (d.at(j, m) + bias[size_t(j)]);
    }
  });

  // 5. sum over k
  parallel_for(T, std::max<int64_t>(1, 8192 / std::max<int64_t>(H, 1)), [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(static_cast<size_t>(H));
    for (int64_t t = t0; t < t1; t++) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int j = 0; j < p.k; j++) {
        const int32_t r = row_of_slot[size_t(t * p.k + j)];
        if (r < 0) continue;
        const float* orow = o + int64_t(r) * H;
        for (int64_t c = 0; c < H; c++) acc[size_t(c)] += orow[c];
      }
      for (int64_t c = 0; c < H; c++) store_from_f32(y, t * H + c, xdt, acc[size_t(c)]);
    }
  });
  trim_buffers();
}

}  // namespace llmk::cpu
