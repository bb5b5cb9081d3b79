// MoE routing on the CPU. See moe.h for the contracts and moe_math.h for the routing rules.
#include "moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "../core/parallel.h"
#include "moe_math.h"

namespace llmk::cpu {

using namespace llmk::moe_math;

namespace {

// ord_key without branches (same result), so the loop over experts vectorises.
inline uint32_t ord_key_branchless(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t a = u & 0x7fffffffu;
  u = a == 0 ? 0u : u;                                   // -0 -> +0
  const uint32_t neg = uint32_t(int32_t(u) >> 31);       // all ones when negative
  const uint32_t c = u ^ (neg | 0x80000000u);
  return a > 0x7f800000u ? 1u : c;                        // NaN -> 1
}

// Keeps the k largest packed candidates in buf[0..k) (descending); for small k.
inline void insert_top(uint64_t* buf, int& n, int k, uint64_t c) {
  if (n == k) {
    if (c <= buf[k - 1]) return;
    n--;
  }
  int i = n++;
  while (i > 0 && buf[i - 1] < c) { buf[i] = buf[i - 1]; i--; }
  buf[i] = c;
}

template <typename Load>
void topk_rows(Load load, const MoeTopkParams& p, float* weights, int32_t* ids) {
  const int E = p.experts, k = p.k;
  // Scores of every expert are needed for biased keys and for softmax without renormalisation
  // (the divisor is the sum over all E). Otherwise only the k chosen experts need a score: with
  // softmax + renormalize, weight_j = u_j / sum_chosen(u), which equals (u_j/S) / sum_chosen(u/S).
  const bool all_scores = p.bias != nullptr || (!p.sigmoid && !p.renormalize);
  const bool small_k = k <= 32;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max(E, 1));
  parallel_for(p.tokens, grain, [&](int64_t t0, int64_t t1) {
    std::vector<float> x(static_cast<size_t>(E)), score(static_cast<size_t>(E));
    std::vector<uint64_t> cand(static_cast<size_t>(E));
    std::vector<uint64_t> gcand(size_t(std::max(p.groups, 1)));
    std::vector<char> keep(size_t(std::max(p.groups, 1)));
    uint64_t top[32];
    const float inf = std::numeric_limits<float>::infinity();
    for (int64_t t = t0; t < t1; t++) {
      if (!all_scores && p.groups == 0 && small_k) {
        // Fast path (no bias, no groups, small k): keys are the logits themselves. Codes straight from
        // the input, threshold-filtered selection, then only the k chosen experts are scored. The row
        // max (softmax) is the best key itself whenever it is not NaN.
        uint32_t* code = reinterpret_cast<uint32_t*>(cand.data());
        for (int e = 0; e < E; e++) code[e] = ord_key_branchless(load(t * E + e));
        int n = 0;
        uint32_t thr = 0;
        for (int e = 0; e < E; e++) {
          if (code[e] < thr) continue;
          insert_top(top, n, k, pack(code[e], uint32_t(e)));
          if (n == k) thr = packed_code(top[k - 1]);
        }
        const float v0 = load(t * E + packed_index(top[0]));
        const float m = is_nan(v0) ? -inf : v0;
        float* w = weights + t * k;
        int32_t* id = ids + t * k;
        float sum = 0.f;
        for (int j = 0; j < k; j++) {
          const uint32_t e = packed_index(top[j]);
          const float v = load(t * E + e);
          id[j] = int32_t(e);
          w[j] = p.sigmoid ? sigmoid_score(v) : softmax_numer(v, m);
          sum += w[j];
        }
        if (p.renormalize && sum > 0.f) for (int j = 0; j < k; j++) w[j] /= sum;
        for (int j = 0; j < k; j++) w[j] *= p.scale;
        continue;
      }
      for (int e = 0; e < E; e++) x[size_t(e)] = load(t * E + e);
      float m = -inf;
      if (!p.sigmoid)
        for (int e = 0; e < E; e++) if (!is_nan(x[size_t(e)])) m = std::max(m, x[size_t(e)]);
      if (all_scores) {
        if (p.sigmoid) {
          for (int e = 0; e < E; e++) score[size_t(e)] = sigmoid_score(x[size_t(e)]);
        } else {
          float s = 0.f;
          for (int e = 0; e < E; e++) { score[size_t(e)] = softmax_numer(x[size_t(e)], m); s += score[size_t(e)]; }
          if (s > 0.f) { for (int e = 0; e < E; e++) score[size_t(e)] /= s; }
          else { for (int e = 0; e < E; e++) score[size_t(e)] = 0.f; }
        }
        for (int e = 0; e < E; e++) x[size_t(e)] = select_key(x[size_t(e)], score[size_t(e)], p.bias, e);
      } else {
        for (int e = 0; e < E; e++) score[size_t(e)] = x[size_t(e)];  // logits, scored after selection
      }
      // x now holds the selection keys
      const uint64_t* best = nullptr;
      if (p.groups > 0) {
        const int G = p.groups, gs = E / G;
        for (int g = 0; g < G; g++) {
          Top2 t2;
          for (int e = g * gs; e < (g + 1) * gs; e++) t2.push(x[size_t(e)]);
          gcand[size_t(g)] = pack(ord_key(group_score(t2, gs, p.bias != nullptr)), uint32_t(g));
        }
        for (int g = 0; g < G; g++) {
          int rank = 0;
          for (int h = 0; h < G; h++) rank += gcand[size_t(h)] > gcand[size_t(g)];
          keep[size_t(g)] = rank < p.group_topk;
        }
      }
      if (small_k) {
        int n = 0;
        if (p.groups > 0) {
          const int gs = E / p.groups;
          for (int e = 0; e < E; e++)
            if (keep[size_t(e / gs)]) insert_top(top, n, k, pack(ord_key(x[size_t(e)]), uint32_t(e)));
        } else {
          // Branch-free codes first (vectorisable), then a 32-bit threshold test that rejects most experts.
          uint32_t* code = reinterpret_cast<uint32_t*>(cand.data());
          for (int e = 0; e < E; e++) code[e] = ord_key_branchless(x[size_t(e)]);
          uint32_t thr = 0;
          for (int e = 0; e < E; e++) {
            if (code[e] < thr) continue;
            insert_top(top, n, k, pack(code[e], uint32_t(e)));
            if (n == k) thr = packed_code(top[k - 1]);
          }
        }
        best = top;
      } else {
        for (int e = 0; e < E; e++) cand[size_t(e)] = pack(ord_key(x[size_t(e)]), uint32_t(e));
        if (p.groups > 0) {
          const int gs = E / p.groups;
          for (int e = 0; e < E; e++) if (!keep[size_t(e / gs)]) cand[size_t(e)] = 0;
        }
        std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), std::greater<uint64_t>());
        best = cand.data();
      }
      float* w = weights + t * k;
      int32_t* id = ids + t * k;
      float sum = 0.f;
      for (int j = 0; j < k; j++) {
        const uint32_t e = packed_index(best[j]);
        id[j] = int32_t(e);
        float v = score[e];
        if (!all_scores) v = p.sigmoid ? sigmoid_score(v) : softmax_numer(v, m);
        w[j] = v;
        sum += v;
      }
      if (p.renormalize && sum > 0.f) for (int j = 0; j < k; j++) w[j] /= sum;
      for (int j = 0; j < k; j++) w[j] *= p.scale;
    }
  });
}

[[noreturn]] void bad_id(int64_t slot, int32_t v, int E) {
  throw Error(ErrCode::Index, fmt("moe: expert id %d at flat position %lld is outside [0, %d)", int(v),
                                  (long long)slot, E));
}

// Counting sort of the slots by expert, stable. Returns per-expert counts; throws on a bad id.
std::vector<int64_t> count_ids(const int32_t* ids, int64_t n, int E) {
  std::vector<int64_t> counts(size_t(E), 0);
  for (int64_t i = 0; i < n; i++) {
    int32_t v = ids[i];
    if (v < 0 || v >= E) bad_id(i, v, E);
    counts[size_t(v)]++;
  }
  return counts;
}

}  // namespace

void moe_topk(const MoeTopkParams& p) {
  if (p.tokens == 0) return;
  float* weights = p.weights;
  int32_t* ids = p.ids;
  switch (p.dtype) {
    case DType::F32: {
      const float* l = static_cast<const float*>(p.logits);
      topk_rows([l](int64_t i) { return l[i]; }, p, weights, ids);
      break;
    }
    case DType::F16: {
      const uint16_t* l = static_cast<const uint16_t*>(p.logits);
      topk_rows([l](int64_t i) { return f16_to_f32(l[i]); }, p, weights, ids);
      break;
    }
    case DType::BF16: {
      const uint16_t* l = static_cast<const uint16_t*>(p.logits);
      topk_rows([l](int64_t i) { return bf16_to_f32(l[i]); }, p, weights, ids);
      break;
    }
    default:
      throw Error(ErrCode::DType, "moe.topk: logits must be float32, float16 or bfloat16");
  }
}

void moe_align(const MoeAlignParams& p) {
  const int32_t* ids = p.ids;
  const int64_t n = p.n, capacity = p.capacity, num_blocks = p.num_blocks;
  const int E = p.E, bs = p.bs;
  int32_t *sorted_ids = p.sorted, *block_experts = p.block_experts, *num_padded = p.num_padded;
  int32_t* expert_offsets = p.expert_offsets;
  std::vector<int64_t> counts = count_ids(ids, n, E);
  std::vector<int64_t> start(size_t(E) + 1, 0);
  for (int e = 0; e < E; e++) start[size_t(e) + 1] = start[size_t(e)] + (counts[size_t(e)] + bs - 1) / bs * bs;
  const int64_t total = start[size_t(E)];
  LLMK_CHECK(total <= capacity, Internal, "moe.align: padded size %lld exceeds capacity %lld",
             (long long)total, (long long)capacity);
  const int32_t pad = int32_t(n);
  std::fill(sorted_ids, sorted_ids + capacity, pad);
  std::fill(block_experts, block_experts + num_blocks, -1);
  std::vector<int64_t> cursor(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; i++) sorted_ids[cursor[size_t(ids[i])]++] = int32_t(i);
  for (int e = 0; e < E; e++)
    for (int64_t b = start[size_t(e)] / bs; b < start[size_t(e) + 1] / bs; b++) block_experts[b] = e;
  num_padded[0] = int32_t(total);
  if (expert_offsets)
    for (int e = 0; e <= E; e++) expert_offsets[e] = int32_t(start[size_t(e)]);
}

void moe_permute(const MoePermuteParams& p) {
  const void* x = p.x;
  const DType dtype = p.dtype;
  const int64_t T = p.tokens, H = p.hidden;
  const int32_t* ids = p.ids;
  const int k = p.k, E = p.experts;
  void* out = p.out;
  int32_t *row_map = p.row_map, *expert_offsets = p.expert_offsets;
  const int64_t n = T * k;
  std::vector<int64_t> counts = count_ids(ids, n, E);
  std::vector<int64_t> cursor(size_t(E), 0);
  int64_t run = 0;
  for (int e = 0; e < E; e++) {
    cursor[size_t(e)] = run;
    expert_offsets[e] = int32_t(run);
    run += counts[size_t(e)];
  }
  expert_offsets[E] = int32_t(run);
  std::vector<int64_t> src(static_cast<size_t>(n));  // src slot of each output row
  for (int64_t i = 0; i < n; i++) {
    int64_t r = cursor[size_t(ids[i])]++;
    row_map[i] = int32_t(r);
    src[size_t(r)] = i;
  }
  const size_t row_bytes = size_t(H) * dtype_size(dtype);
  const char* xs = static_cast<const char*>(x);
  char* o = static_cast<char*>(out);
  parallel_for(n, std::max<int64_t>(1, 65536 / std::max<int64_t>(int64_t(row_bytes), 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      std::memcpy(o + size_t(r) * row_bytes, xs + size_t(src[size_t(r)] / k) * row_bytes, row_bytes);
  });
}

void moe_combine(const MoeCombineParams& p) {
  const void* y = p.y;
  const DType dtype = p.dtype;
  const int64_t rows = p.rows, H = p.hidden, T = p.tokens;
  const float* weights = p.weights;
  const int32_t* row_map = p.row_map;
  const int k = p.k;
  void* out = p.out;
  for (int64_t i = 0; i < T * k; i++)
    if (row_map[i] < 0 || row_map[i] >= rows)
      throw Error(ErrCode::Index, fmt("moe.combine: rowMap[%lld] = %d is outside [0, %lld)", (long long)i,
                                      int(row_map[i]), (long long)rows));
  const int dt = int(dtype);
  parallel_for(T, std::max<int64_t>(1, 8192 / std::max<int64_t>(H * k, 1)), [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(static_cast<size_t>(H));
    for (int64_t t = t0; t < t1; t++) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int j = 0; j < k; j++) {
        const float w = weights[t * k + j];
        const int64_t r = row_map[t * k + j];
        if (dtype == DType::F32) {
          const float* yr = static_cast<const float*>(y) + r * H;
          for (int64_t h = 0; h < H; h++) acc[size_t(h)] += w * yr[h];
        } else {
          for (int64_t h = 0; h < H; h++) acc[size_t(h)] += w * load_as_f32(y, r * H + h, dt);
        }
      }
      for (int64_t h = 0; h < H; h++) store_from_f32(out, t * H + h, dt, acc[size_t(h)]);
    }
  });
}

void moe_expert_counts(const int32_t* ids, int64_t n, int E, int32_t* counts) {
  std::vector<int64_t> c = count_ids(ids, n, E);
  for (int e = 0; e < E; e++) counts[e] = int32_t(c[size_t(e)]);
}

void moe_load_balancing_loss(const MoeLbLossParams& p) {
  const void* probs = p.probs;
  const DType dtype = p.dtype;
  const int64_t T = p.tokens;
  const int E = p.experts, k = p.k;
  const int32_t* ids = p.ids;
  float* out = p.out;
  std::vector<int64_t> c = count_ids(ids, T * k, E);
  if (T == 0) { out[0] = 0.f; return; }
  const int dt = int(dtype);
  std::vector<double> colsum(size_t(E), 0.0);
  // threads own column ranges (deterministic: each column is summed in row order by one thread)
  parallel_for(E, 32, [&](int64_t e0, int64_t e1) {
    for (int64_t t = 0; t < T; t++)
      for (int64_t e = e0; e < e1; e++) colsum[size_t(e)] += load_as_f32(probs, t * E + e, dt);
  });
  double loss = 0;
  for (int e = 0; e < E; e++)
    loss += (double(c[size_t(e)]) / double(T * k)) * (colsum[size_t(e)] / double(T));
  out[0] = float(double(E) * loss);
}

}  // namespace llmk::cpu
