// Block-sparse attention forward on CUDA.
//
// Four kernels:
//  * attn_fa2_kernel   FlashAttention-2 style prefill for float16/bfloat16 and D = 64 or 128: one CTA
//                      (4 warps, 64 query rows) per (query block half, head, batch); K/V tiles of 64 keys
//                      through a cp.async multi-stage pipeline into XOR-swizzled shared memory; S = Q·Kᵀ
//                      and O += P·V with mma.sync m16n8k16 fed by ldmatrix; online softmax in float32
//                      registers; only the block row's kept column blocks are visited, and tiles fully
//                      inside the token mask skip the per-element masking.
//  * attn_generic_kernel  any dtype (float32 too) and any D <= 256 that is a multiple of 8: K/V tiles of
//                      32 keys in float32 shared memory, one lane per key for Q·Kᵀ, one lane per output
//                      column for P·V. With splits > 1 it is the flash-decoding path: the kept tiles of a
//                      row are split over CTAs, each writes a normalised partial output and its LSE, and
//                      attn_merge_kernel merges them through the LSEs. For decode with a shared layout,
//                      one CTA serves all query heads of a KV head (GQA), so K/V are read once.
//  * attn_decode_kernel  flash decoding for Nq <= 16 (any dtype, D <= 256): a few (head, query) rows per
//                      CTA sharing a KV head, key tiles dealt to the warps and split over CTAs.
//  * attn_merge_kernel combines split partials: lse = log Σ exp(lse_s), out = Σ exp(lse_s − lse)·o_s.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/key_range.h"
#include "common.cuh"
#include "ptx.cuh"

namespace llmk::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ __forceinline__ void raise_flag(const AttnParams& p) {
  if (p.err_flag) atomicExch(p.err_flag, 1);
}

// First index in [lo, hi) with a[idx] >= x (a sorted ascending).
__device__ __forceinline__ int64_t lower_bound(const int32_t* a, int64_t lo, int64_t hi, int64_t x) {
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// The slice [pa, pz) of col_idx holding the blocks of layout row (head lh, row qb) that intersect the
// key interval [lo, hi]. Flags and returns an empty slice when row_ptr is out of range. The binary search
// below never reaches indices outside [0, nkb) at either end of a sorted row, so those ends are checked
// here (like the CPU kernel, which checks every index it reads): an out-of-range index is flagged even
// when the token mask would have skipped its block.
__device__ __forceinline__ void block_slice(const AttnParams& p, int64_t lh, int64_t qb, int64_t lo, int64_t hi,
                                            int64_t& pa, int64_t& pz) {
  const int32_t* rp = p.row_ptr + lh * (p.nqb + 1);
  const int64_t p0 = rp[qb], p1 = rp[qb + 1];
  pa = pz = 0;
  if (p0 < 0 || p1 < p0 || p1 > p.nnz) { raise_flag(p); return; }
  if (p1 > p0 && (p.col_idx[p0] < 0 || p.col_idx[p1 - 1] >= p.nkb)) raise_flag(p);
  if (hi < lo) { pa = pz = p0; return; }
  pa = lower_bound(p.col_idx, p0, p1, lo / p.block_k);
  pz = lower_bound(p.col_idx, pa, p1, hi / p.block_k + 1);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// ---------------------------------------------------------------------------------------------
// Generic kernel (any dtype, D <= 256 multiple of 8), optionally split over the key range.
// ---------------------------------------------------------------------------------------------
constexpr int kGenWarps = 8, kGenRowsPerWarp = 4, kGenTK = 32, kGenMaxDC = 8;  // D <= 32 * 8
constexpr int kGenRows = kGenWarps * kGenRowsPerWarp;                            // 32 rows per CTA

template <typename T, bool VEC>
__global__ void __launch_bounds__(kGenWarps * 32)
attn_generic_kernel(AttnParams p, int group_mode, int splits, float* ws) {
  extern __shared__ float gsm[];
  const int D = int(p.D), DP = D + 1;
  float* Ks = gsm;
  float* Vs = Ks + kGenTK * DP;
  float* Qs = Vs + kGenTK * DP;  // [kGenRows][D]
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t b = blockIdx.z / splits;
  const int split = int(blockIdx.z % splits);
  const int64_t G = p.Hq / p.Hkv;

  // The CTA's rows: (head, query) pairs sharing one KV head and one layout row.
  int64_t set_size, r_begin, qb, hkv, head0;
  if (group_mode) {  // decode, shared layout, nqb == 1: rows = all G heads x Nq queries of KV head y
    hkv = blockIdx.y; head0 = hkv * G; qb = 0;
    set_size = G * p.Nq; r_begin = int64_t(blockIdx.x) * kGenRows;
  } else {
    head0 = blockIdx.y; hkv = head0 / G;
    const int64_t cpr = (p.block_q + kGenRows - 1) / kGenRows;
    qb = blockIdx.x / cpr;
    r_begin = (blockIdx.x % cpr) * kGenRows;
    set_size = min64(p.block_q, p.Nq - qb * p.block_q);
  }
  auto row_head = [&](int64_t r) { return group_mode ? head0 + r / p.Nq : head0; };
  auto row_query = [&](int64_t r) { return group_mode ? r % p.Nq : qb * p.block_q + r; };
  const int64_t r_end = min64(set_size, r_begin + kGenRows);
  if (r_begin >= r_end) return;

  // Key interval any row of the CTA may see (lo, hi non-decreasing in the query index).
  int64_t imin = INT64_MAX, imax = -1;
  for (int64_t r = r_begin; r < r_end; r++) {
    const int64_t i = row_query(r);
    imin = i < imin ? i : imin;
    imax = i > imax ? i : imax;
  }
  const int64_t lo_cta = key_range(imin, p).lo, hi_cta = key_range(imax, p).hi;
  const int64_t lh = p.layout_heads == 1 ? 0 : head0;  // group mode only with a shared layout
  int64_t pa, pz;
  block_slice(p, lh, qb, lo_cta, hi_cta, pa, pz);
  const int64_t tpb = p.block_k / kGenTK;
  const int64_t ntiles = (pz - pa) * tpb;
  const int64_t per = (ntiles + splits - 1) / splits;
  const int64_t t_beg = min64(ntiles, split * per), t_end = min64(ntiles, t_beg + per);

  // Q rows of the CTA in float32.
  const T* q = static_cast<const T*>(p.q);
  for (int e = tid; e < kGenRows * D; e += blockDim.x) {
    const int lr = e / D, d = e % D;
    const int64_t r = r_begin + lr;
    float x = 0.f;
    if (r < r_end) x = to_f32(q[((b * p.Nq + row_query(r)) * p.Hq + row_head(r)) * p.D + d]);
    Qs[e] = x;
  }

  // Per-row state: rows lr = warp * kGenRowsPerWarp + rr.
  float m[kGenRowsPerWarp], l[kGenRowsPerWarp], acc[kGenRowsPerWarp][kGenMaxDC];
  int64_t rlo[kGenRowsPerWarp], rhi[kGenRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kGenRowsPerWarp; rr++) {
    m[rr] = -INFINITY; l[rr] = 0.f;
#pragma unroll
    for (int c = 0; c < kGenMaxDC; c++) acc[rr][c] = 0.f;
    const int64_t r = r_begin + warp * kGenRowsPerWarp + rr;
    if (r < r_end) {
      const KeyRange kr = key_range(row_query(r), p);
      rlo[rr] = kr.lo; rhi[rr] = kr.hi;
    } else {
      rlo[rr] = 1; rhi[rr] = 0;  // empty
    }
  }

  const T* kp = static_cast<const T*>(p.k);
  const T* vp = static_cast<const T*>(p.v);
  const int64_t kv_row = p.Hkv * p.D;
  const int64_t kv_base = (b * p.Nk * p.Hkv + hkv) * p.D;
  for (int64_t t = t_beg; t < t_end; t++) {
    const int64_t kb = p.col_idx[pa + t / tpb];
    if (kb < 0 || kb >= p.nkb) { raise_flag(p); continue; }
    const int64_t j0 = kb * p.block_k + (t % tpb) * kGenTK;
    if (j0 >= p.Nk || j0 > hi_cta || j0 + kGenTK - 1 < lo_cta) continue;  // uniform over the CTA
    __syncthreads();  // previous tile fully consumed (and Qs written on the first pass)
    if (VEC) {
      constexpr int VW = 16 / int(sizeof(T));
      const int dv = D / VW;
      for (int e = tid; e < kGenTK * dv; e += blockDim.x) {
        const int jj = e / dv, d = (e % dv) * VW;
        const int64_t j = j0 + jj;
        float kx[VW], vx[VW];
        if (j < p.Nk) {
          const int64_t off = kv_base + j * kv_row + d;
          const uint4 kr = *reinterpret_cast<const uint4*>(kp + off);
          const uint4 vr = *reinterpret_cast<const uint4*>(vp + off);
          const T* kt = reinterpret_cast<const T*>(&kr);
          const T* vt = reinterpret_cast<const T*>(&vr);
#pragma unroll
          for (int u = 0; u < VW; u++) { kx[u] = to_f32(kt[u]); vx[u] = to_f32(vt[u]); }
        } else {
#pragma unroll
          for (int u = 0; u < VW; u++) { kx[u] = 0.f; vx[u] = 0.f; }
        }
#pragma unroll
        for (int u = 0; u < VW; u++) { Ks[jj * DP + d + u] = kx[u]; Vs[jj * DP + d + u] = vx[u]; }
      }
    } else {
      for (int e = tid; e < kGenTK * D; e += blockDim.x) {
        const int jj = e / D, d = e % D;
        const int64_t j = j0 + jj;
        float kx = 0.f, vx = 0.f;
        if (j < p.Nk) {
          const int64_t off = kv_base + j * kv_row + d;
          kx = to_f32(kp[off]);
          vx = to_f32(vp[off]);
        }
        Ks[jj * DP + d] = kx;
        Vs[jj * DP + d] = vx;
      }
    }
    __syncthreads();

    const int64_t j = j0 + lane;
#pragma unroll
    for (int rr = 0; rr < kGenRowsPerWarp; rr++) {
      if (j0 + kGenTK - 1 < rlo[rr] || j0 > rhi[rr]) continue;  // warp-uniform
      const int lr = warp * kGenRowsPerWarp + rr;
      float s = -INFINITY;
      if (j >= rlo[rr] && j <= rhi[rr]) {
        const float* qr = Qs + lr * D;
        const float* kr = Ks + lane * DP;
        float a0 = 0.f, a1 = 0.f;
        int d = 0;
        for (; d + 2 <= D; d += 2) { a0 += qr[d] * kr[d]; a1 += qr[d + 1] * kr[d + 1]; }
        s = (a0 + a1) * p.scale;
        if (p.softcap > 0.f) s = p.softcap * tanhf(s / p.softcap);
      }
      float mx = s;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      if (mx == -INFINITY) continue;  // nothing visible (or all logits -inf) in this tile
      const float mnew = fmaxf(m[rr], mx);
      const float alpha = __expf(m[rr] - mnew);
      const float pj = __expf(s - mnew);
      float sum = pj;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[rr] = l[rr] * alpha + sum;
      m[rr] = mnew;
#pragma unroll
      for (int c = 0; c < kGenMaxDC; c++) acc[rr][c] *= alpha;
      for (int jj = 0; jj < kGenTK; jj++) {
        const float pb = __shfl_sync(0xffffffffu, pj, jj);
        if (pb == 0.f) continue;  // warp-uniform
        const float* vr = Vs + jj * DP;
#pragma unroll
        for (int c = 0; c < kGenMaxDC; c++) {
          const int d = c * 32 + lane;
          if (d < D) acc[rr][c] += pb * vr[d];
        }
      }
    }
  }

  // Results: normalised rows and LSE, to the output (splits == 1) or the split workspace.
  T* out = static_cast<T*>(p.out);
  const int64_t rows_total = p.B * p.Hq * p.Nq;
#pragma unroll
  for (int rr = 0; rr < kGenRowsPerWarp; rr++) {
    const int64_t r = r_begin + warp * kGenRowsPerWarp + rr;
    if (r >= r_end) continue;
    const int64_t hq = row_head(r), i = row_query(r);
    const float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
    const float lse = l[rr] > 0.f ? m[rr] + __logf(l[rr]) : -INFINITY;
    if (splits == 1) {
      const int64_t off = ((b * p.Nq + i) * p.Hq + hq) * p.D;
#pragma unroll
      for (int c = 0; c < kGenMaxDC; c++) {
        const int d = c * 32 + lane;
        if (d < D) out[off + d] = from_f32<T>(acc[rr][c] * inv);
      }
      if (p.lse && lane == 0) p.lse[(b * p.Hq + hq) * p.Nq + i] = lse;
    } else {
      const int64_t row = (b * p.Hq + hq) * p.Nq + i;
      float* wo = ws + (int64_t(split) * rows_total + row) * p.D;
#pragma unroll
      for (int c = 0; c < kGenMaxDC; c++) {
        const int d = c * 32 + lane;
        if (d < D) wo[d] = acc[rr][c] * inv;
      }
      if (lane == 0) ws[int64_t(splits) * rows_total * p.D + int64_t(split) * rows_total + row] = lse;
    }
  }
}

template <typename T>
__global__ void attn_merge_kernel(AttnParams p, int splits, const float* ws) {
  const int64_t rows_total = p.B * p.Hq * p.Nq;
  const int64_t row = blockIdx.x;  // (b, hq, i)
  if (row >= rows_total) return;
  const float* wl = ws + int64_t(splits) * rows_total * p.D;
  float mx = -INFINITY;
  for (int s = 0; s < splits; s++) mx = fmaxf(mx, wl[int64_t(s) * rows_total + row]);
  float den = 0.f;
  if (mx != -INFINITY)
    for (int s = 0; s < splits; s++) den += __expf(wl[int64_t(s) * rows_total + row] - mx);
  const int64_t i = row % p.Nq, hq = (row / p.Nq) % p.Hq, b = row / (p.Nq * p.Hq);
  T* out = static_cast<T*>(p.out);
  const int64_t off = ((b * p.Nq + i) * p.Hq + hq) * p.D;
  for (int64_t d = threadIdx.x; d < p.D; d += blockDim.x) {
    float o = 0.f;
    if (den > 0.f) {
      for (int s = 0; s < splits; s++) {
        const float w = __expf(wl[int64_t(s) * rows_total + row] - mx);
        if (w > 0.f) o += w * ws[(int64_t(s) * rows_total + row) * p.D + d];
      }
      o /= den;
    }
    out[off + d] = from_f32<T>(o);
  }
  if (p.lse && threadIdx.x == 0) p.lse[row] = den > 0.f ? mx + __logf(den) : -INFINITY;
}

// ---------------------------------------------------------------------------------------------
// Flash-decoding kernel (Nq <= 16): up to kDecRows (head, query) rows per CTA that share one KV head
// and one layout row; the CTA's 32-key tiles are dealt round-robin to its 8 warps (and the key range
// to `splits` CTAs). Lane = key for Q·Kᵀ (each lane streams its key's K row from global memory with
// 16-byte loads), lane = output column for P·V. Warps merge their partial states through shared
// memory by their running max; split partials go to the workspace for attn_merge_kernel.
// ---------------------------------------------------------------------------------------------
constexpr int kDecWarps = 8, kDecRows = 4, kDecTK = 32;

template <typename T, bool VEC, int DC>  // DC = ceil(D / 32) output columns per lane (4: D <= 128, 8: D <= 256)
__global__ void __launch_bounds__(kDecWarps * 32)
attn_decode_kernel(AttnParams p, int group_mode, int splits, float* ws) {
  extern __shared__ float dsm[];
  const int D = int(p.D);
  float* Qs = dsm;                                   // [kDecRows][D]
  float* Wm = Qs + kDecRows * D;                     // [warps][rows] running max
  float* Wl = Wm + kDecWarps * kDecRows;             // [warps][rows] running sum
  float* Wo = Wl + kDecWarps * kDecRows;             // [warps][rows][D] unnormalised output
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t b = blockIdx.z / splits;
  const int split = int(blockIdx.z % splits);
  const int64_t G = p.Hq / p.Hkv;

  int64_t set_size, r_begin, qb, hkv, head0;
  if (group_mode) {
    hkv = blockIdx.y; head0 = hkv * G; qb = 0;
    set_size = G * p.Nq; r_begin = int64_t(blockIdx.x) * kDecRows;
  } else {
    head0 = blockIdx.y; hkv = head0 / G;
    const int64_t cpr = (p.block_q + kDecRows - 1) / kDecRows;
    qb = blockIdx.x / cpr;
    r_begin = (blockIdx.x % cpr) * kDecRows;
    set_size = min64(p.block_q, p.Nq - qb * p.block_q);
  }
  auto row_head = [&](int64_t r) { return group_mode ? head0 + r / p.Nq : head0; };
  auto row_query = [&](int64_t r) { return group_mode ? r % p.Nq : qb * p.block_q + r; };
  const int64_t r_end = min64(set_size, r_begin + kDecRows);
  if (r_begin >= r_end) return;
  const int nrows = int(r_end - r_begin);

  int64_t imin = INT64_MAX, imax = -1;
  for (int64_t r = r_begin; r < r_end; r++) {
    const int64_t i = row_query(r);
    imin = i < imin ? i : imin;
    imax = i > imax ? i : imax;
  }
  const int64_t lo_cta = key_range(imin, p).lo, hi_cta = key_range(imax, p).hi;
  int64_t pa, pz;
  block_slice(p, p.layout_heads == 1 ? 0 : head0, qb, lo_cta, hi_cta, pa, pz);
  const int64_t tpb = p.block_k / kDecTK;
  const int64_t ntiles = (pz - pa) * tpb;
  const int64_t per = (ntiles + splits - 1) / splits;
  const int64_t t_beg = min64(ntiles, split * per), t_end = min64(ntiles, t_beg + per);

  const T* q = static_cast<const T*>(p.q);
  for (int e = tid; e < kDecRows * D; e += blockDim.x) {
    const int lr = e / D, d = e % D;
    float x = 0.f;
    if (lr < nrows) x = to_f32(q[((b * p.Nq + row_query(r_begin + lr)) * p.Hq + row_head(r_begin + lr)) * p.D + d]);
    Qs[e] = x;
  }
  int64_t rlo[kDecRows], rhi[kDecRows];
#pragma unroll
  for (int r = 0; r < kDecRows; r++) {
    if (r < nrows) {
      const KeyRange kr = key_range(row_query(r_begin + r), p);
      rlo[r] = kr.lo; rhi[r] = kr.hi;
    } else {
      rlo[r] = 1; rhi[r] = 0;
    }
  }
  __syncthreads();

  float m[kDecRows], l[kDecRows], acc[kDecRows][DC];
#pragma unroll
  for (int r = 0; r < kDecRows; r++) {
    m[r] = -INFINITY; l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < DC; c++) acc[r][c] = 0.f;
  }
  const T* kp = static_cast<const T*>(p.k);
  const T* vp = static_cast<const T*>(p.v);
  const int64_t kv_row = p.Hkv * p.D;
  const int64_t kv_base = (b * p.Nk * p.Hkv + hkv) * p.D;

  for (int64_t t = t_beg + warp; t < t_end; t += kDecWarps) {
    const int64_t kb = p.col_idx[pa + t / tpb];
    if (kb < 0 || kb >= p.nkb) { raise_flag(p); continue; }
    const int64_t j0 = kb * p.block_k + (t % tpb) * kDecTK;
    if (j0 >= p.Nk || j0 > hi_cta || j0 + kDecTK - 1 < lo_cta) continue;  // warp-uniform
    const int64_t j = j0 + lane;
    const bool jin = j < p.Nk;
    // scores of this lane's key for every row
    float s[kDecRows];
#pragma unroll
    for (int r = 0; r < kDecRows; r++) s[r] = 0.f;
    if (jin) {
      const T* krow = kp + kv_base + j * kv_row;
      if (VEC) {
        // 4 independent 16-byte loads in flight per step (the chain of dependent loads is what limits decode)
        constexpr int VW = 16 / int(sizeof(T));
        for (int d0 = 0; d0 < D; d0 += 4 * VW) {
          uint4 raw[4];
#pragma unroll
          for (int g = 0; g < 4; g++)
            raw[g] = d0 + g * VW < D ? *reinterpret_cast<const uint4*>(krow + d0 + g * VW) : make_uint4(0, 0, 0, 0);
#pragma unroll
          for (int g = 0; g < 4; g++) {
            if (d0 + g * VW >= D) break;
            const T* kt = reinterpret_cast<const T*>(&raw[g]);
            float kx[VW];
#pragma unroll
            for (int u = 0; u < VW; u++) kx[u] = to_f32(kt[u]);
#pragma unroll
            for (int r = 0; r < kDecRows; r++) {
              if (r < nrows) {
                const float* qr = Qs + r * D + d0 + g * VW;
#pragma unroll
                for (int u = 0; u < VW; u++) s[r] += qr[u] * kx[u];
              }
            }
          }
        }
      } else {
        for (int d = 0; d < D; d++) {
          const float kx = to_f32(krow[d]);
#pragma unroll
          for (int r = 0; r < kDecRows; r++)
            if (r < nrows) s[r] += Qs[r * D + d] * kx;
        }
      }
    }
    float pr[kDecRows];
#pragma unroll
    for (int r = 0; r < kDecRows; r++) {
      pr[r] = 0.f;
      if (r >= nrows || j0 + kDecTK - 1 < rlo[r] || j0 > rhi[r]) continue;  // warp-uniform
      float x = -INFINITY;
      if (jin && j >= rlo[r] && j <= rhi[r]) {
        x = s[r] * p.scale;
        if (p.softcap > 0.f) x = p.softcap * tanhf(x / p.softcap);
      }
      float mx = x;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      if (mx == -INFINITY) continue;
      const float mnew = fmaxf(m[r], mx);
      const float alpha = __expf(m[r] - mnew);
      const float pj = __expf(x - mnew);
      float sum = pj;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[r] = l[r] * alpha + sum;
      m[r] = mnew;
#pragma unroll
      for (int c = 0; c < DC; c++) acc[r][c] *= alpha;
      pr[r] = pj;
    }
    // P·V: one V row per key, read once for all rows; 4 keys' loads in flight at a time.
    const int nk = int(min64(kDecTK, p.Nk - j0));
    for (int jb = 0; jb < nk; jb += 4) {
      float vx[4][DC];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        const T* vrow = vp + kv_base + (j0 + jb + u) * kv_row;
#pragma unroll
        for (int c = 0; c < DC; c++) {
          const int d = c * 32 + lane;
          vx[u][c] = jb + u < nk && d < D ? to_f32(vrow[d]) : 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < 4; u++) {
#pragma unroll
        for (int r = 0; r < kDecRows; r++) {
          const float pb = __shfl_sync(0xffffffffu, pr[r], (jb + u) & 31);
          if (pb == 0.f) continue;
#pragma unroll
          for (int c = 0; c < DC; c++) acc[r][c] += pb * vx[u][c];
        }
      }
    }
  }

  // Merge the warps' partial states.
#pragma unroll
  for (int r = 0; r < kDecRows; r++) {
    if (lane == 0) { Wm[warp * kDecRows + r] = m[r]; Wl[warp * kDecRows + r] = l[r]; }
#pragma unroll
    for (int c = 0; c < DC; c++) {
      const int d = c * 32 + lane;
      if (d < D) Wo[(warp * kDecRows + r) * D + d] = acc[r][c];
    }
  }
  __syncthreads();
  T* out = static_cast<T*>(p.out);
  const int64_t rows_total = p.B * p.Hq * p.Nq;
  for (int e = tid; e < nrows * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; w++) M = fmaxf(M, Wm[w * kDecRows + r]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kDecWarps; w++) {
        const float f = __expf(Wm[w * kDecRows + r] - M);
        L += Wl[w * kDecRows + r] * f;
        O += Wo[(w * kDecRows + r) * D + d] * f;
      }
    }
    const float o = L > 0.f ? O / L : 0.f;
    const float lse = L > 0.f ? M + __logf(L) : -INFINITY;
    const int64_t hq = row_head(r_begin + r), i = row_query(r_begin + r);
    if (splits == 1) {
      out[((b * p.Nq + i) * p.Hq + hq) * p.D + d] = from_f32<T>(o);
      if (p.lse && d == 0) p.lse[(b * p.Hq + hq) * p.Nq + i] = lse;
    } else {
      const int64_t row = (b * p.Hq + hq) * p.Nq + i;
      ws[(int64_t(split) * rows_total + row) * p.D + d] = o;
      if (d == 0) ws[int64_t(splits) * rows_total * p.D + int64_t(split) * rows_total + row] = lse;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// FlashAttention-2 style tensor-core kernel (float16 / bfloat16, D = 64 or 128).
// ---------------------------------------------------------------------------------------------
constexpr int kFaThreads = 128;  // 4 warps

// Element offset of (row, 16-byte chunk) in a [rows][D] half tile with XOR swizzle (conflict-free
// ldmatrix: the 8 rows of one 8x8 matrix land in 8 different 16-byte bank groups).
template <int D> __device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

template <typename T, int D, int STAGES, int MT, int BN>
__global__ void __launch_bounds__(kFaThreads)
attn_fa2_kernel(AttnParams p) {
  constexpr int BM = 16 * MT * (kFaThreads / 32);  // query rows per CTA (each warp: MT m-tiles of 16)
  constexpr int CH = D / 8;         // 16-byte chunks per row
  constexpr int NT = BN / 8;        // score n-tiles
  constexpr int DT = D / 8;         // output n-tiles
  constexpr int KC = D / 16;        // k-chunks of Q·Kᵀ
  constexpr int QREG = MT == 1 ? KC : 1;  // Q fragments kept in registers when one m-tile per warp
  extern __shared__ __align__(128) unsigned char fsm[];
  T* Qs = reinterpret_cast<T*>(fsm);
  T* Ks = Qs + BM * D;
  T* Vs = Ks + STAGES * BN * D;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t b = blockIdx.z, hq = blockIdx.y;
  const int64_t parts = p.block_q / BM;
  const int64_t bx = int64_t(gridDim.x) - 1 - blockIdx.x;  // heaviest (last) rows first under causal masks
  const int64_t qb = bx / parts;
  const int64_t i0 = qb * p.block_q + (bx % parts) * BM;
  if (i0 >= p.Nq) return;
  const int64_t imax = min64(i0 + BM - 1, p.Nq - 1);
  const int64_t hkv = hq / (p.Hq / p.Hkv);
  const int64_t lo_cta = key_range(imax, p).lo;  // every row's lo is <= this
  const int64_t lo_any = key_range(i0, p).lo, hi_any = key_range(imax, p).hi;
  const int64_t hi_all = key_range(i0, p).hi;    // every row's hi is >= this
  int64_t pa, pz;
  block_slice(p, p.layout_heads == 1 ? 0 : hq, qb, lo_any, hi_any, pa, pz);
  const int64_t tpb = p.block_k / BN;
  const int64_t ntiles = (pz - pa) * tpb;

  auto tile_start = [&](int64_t t) -> int64_t {
    const int64_t kb = p.col_idx[pa + t / tpb];
    if (kb < 0 || kb >= p.nkb) { raise_flag(p); return -1; }
    return kb * p.block_k + (t % tpb) * BN;
  };
  auto next_valid = [&](int64_t t) -> int64_t {
    for (; t < ntiles; t++) {
      const int64_t j0 = tile_start(t);
      if (j0 >= 0 && j0 < p.Nk && j0 <= hi_any && j0 + BN - 1 >= lo_any) break;
    }
    return t;
  };

  const T* qg = static_cast<const T*>(p.q);
  const T* kg = static_cast<const T*>(p.k);
  const T* vg = static_cast<const T*>(p.v);
  const int64_t q_row = p.Hq * D, kv_row = p.Hkv * D;
  const T* qbase = qg + ((b * p.Nq + i0) * p.Hq + hq) * D;
  const T* kbase = kg + (b * p.Nk * p.Hkv + hkv) * D;
  const T* vbase = vg + (b * p.Nk * p.Hkv + hkv) * D;

  // Q tile (group 0, together with the first K/V stage).
  for (int c = tid; c < BM * CH; c += kFaThreads) {
    const int r = c / CH, ch = c % CH;
    const bool ok = i0 + r < p.Nq;
    cp_async16(smem_u32(Qs + swz<D>(r, ch)), ok ? static_cast<const void*>(qbase + r * q_row + ch * 8) : p.q, ok);
  }
  auto load_kv = [&](int stage, int64_t j0) {
    T* ks = Ks + stage * BN * D;
    T* vs = Vs + stage * BN * D;
    for (int c = tid; c < BN * CH; c += kFaThreads) {
      const int r = c / CH, ch = c % CH;
      const bool ok = j0 + r < p.Nk;
      const int64_t off = (j0 + r) * kv_row + ch * 8;
      cp_async16(smem_u32(ks + swz<D>(r, ch)), ok ? static_cast<const void*>(kbase + off) : p.k, ok);
      cp_async16(smem_u32(vs + swz<D>(r, ch)), ok ? static_cast<const void*>(vbase + off) : p.v, ok);
    }
  };
  int64_t t_load = next_valid(0);
#pragma unroll
  for (int s = 0; s < STAGES; s++) {
    if (t_load < ntiles) {
      load_kv(s, tile_start(t_load));
      t_load = next_valid(t_load + 1);
    }
    cp_async_commit();
  }

  // Per-thread rows: m-tile mt covers rows warp*16*MT + mt*16 + {lane/4, lane/4 + 8} of the CTA tile.
  const int64_t irow0 = i0 + warp * 16 * MT + (lane >> 2);  // + mt * 16 + h * 8
  const float scale = p.scale, softcap = p.softcap;
  const float sl2 = softcap > 0.f ? kLog2e : scale * kLog2e;

  uint32_t qf[QREG][4];
  float o[MT][DT][4];
  float mrow[MT][2], lrow[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int d = 0; d < DT; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
    mrow[mt][0] = mrow[mt][1] = -INFINITY;
    lrow[mt][0] = lrow[mt][1] = 0.f;
  }
  auto q_addr = [&](int mt, int kc) {
    const int r = warp * 16 * MT + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int ch = kc * 2 + (lane >> 4);
    return smem_u32(Qs + swz<D>(r, ch));
  };

  int stage = 0;
  bool first = true;
  for (int64_t t = next_valid(0); t < ntiles; t = next_valid(t + 1)) {
    cp_async_wait<STAGES - 1>();
    __syncthreads();
    if (MT == 1 && first) {
#pragma unroll
      for (int kc = 0; kc < QREG; kc++) ldmatrix_x4(qf[kc], q_addr(0, kc));
    }
    first = false;
    const int64_t j0 = tile_start(t);
    const T* ks = Ks + stage * BN * D;
    const T* vs = Vs + stage * BN * D;

    // S = Q Kᵀ: each K fragment feeds all MT m-tiles.
    float s[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int n = 0; n < NT; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        if (MT == 1) {
#pragma unroll
          for (int u = 0; u < 4; u++) qa[mt][u] = qf[kc < QREG ? kc : 0][u];
        } else {
          ldmatrix_x4(qa[mt], q_addr(mt, kc));
        }
      }
#pragma unroll
      for (int np = 0; np < NT / 2; np++) {
        uint32_t r[4];
        const int row = np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int ch = kc * 2 + ((lane >> 3) & 1);
        ldmatrix_x4(r, smem_u32(ks + swz<D>(row, ch)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          Mma16816<T>::run(s[mt][2 * np], qa[mt], r[0], r[1]);
          Mma16816<T>::run(s[mt][2 * np + 1], qa[mt], r[2], r[3]);
        }
      }
    }

    // Scale, softcap, token mask (skipped for tiles fully inside it), in the log2 domain.
    const bool full = j0 + BN - 1 < p.Nk && j0 + BN - 1 <= hi_all && j0 >= lo_cta;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float x = s[mt][n][e];
          if (softcap > 0.f) x = softcap * tanhf(x * scale / softcap);
          s[mt][n][e] = x * sl2;
        }
    if (!full) {  // per-element token mask: the key interval of each of the thread's rows, relative to j0
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const KeyRange kr = key_range(irow0 + mt * 16 + h * 8, p);
          const int64_t lo = kr.lo - j0, hi = kr.hi - j0;
#pragma unroll
          for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
              const int jj = n * 8 + (lane & 3) * 2 + e;
              if (jj < lo || jj > hi) s[mt][n][2 * h + e] = -INFINITY;
            }
        }
    }

    // Online softmax per row.
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < NT; n++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[mt][n][0], s[mt][n][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[mt][n][2], s[mt][n][3]));
      }
#pragma unroll
      for (int h = 0; h < 2; h++) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      }
      float base[2], alpha[2], sum[2] = {0.f, 0.f};
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const float mn = fmaxf(mrow[mt][h], mx[h]);
        base[h] = mn == -INFINITY ? 0.f : mn;
        alpha[h] = fast_exp2(mrow[mt][h] - base[h]);
        mrow[mt][h] = mn;
      }
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[mt][n][e] = fast_exp2(s[mt][n][e] - base[e >> 1]);
          sum[e >> 1] += s[mt][n][e];
        }
#pragma unroll
      for (int h = 0; h < 2; h++) lrow[mt][h] = lrow[mt][h] * alpha[h] + sum[h];
#pragma unroll
      for (int d = 0; d < DT; d++) {
        o[mt][d][0] *= alpha[0]; o[mt][d][1] *= alpha[0];
        o[mt][d][2] *= alpha[1]; o[mt][d][3] *= alpha[1];
      }
    }

    // O += P V: each V fragment feeds all MT m-tiles.
#pragma unroll
    for (int kc = 0; kc < BN / 16; kc++) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        a[mt][0] = Mma16816<T>::pack2(s[mt][2 * kc][0], s[mt][2 * kc][1]);
        a[mt][1] = Mma16816<T>::pack2(s[mt][2 * kc][2], s[mt][2 * kc][3]);
        a[mt][2] = Mma16816<T>::pack2(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
        a[mt][3] = Mma16816<T>::pack2(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < DT / 2; dp++) {
        uint32_t r[4];
        const int row = kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int ch = dp * 2 + (lane >> 4);
        ldmatrix_x4_trans(r, smem_u32(vs + swz<D>(row, ch)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          Mma16816<T>::run(o[mt][2 * dp], a[mt], r[0], r[1]);
          Mma16816<T>::run(o[mt][2 * dp + 1], a[mt], r[2], r[3]);
        }
      }
    }

    __syncthreads();  // every warp is done with this stage before it is refilled
    if (t_load < ntiles) {
      load_kv(stage, tile_start(t_load));
      t_load = next_valid(t_load + 1);
    }
    cp_async_commit();
    stage = stage + 1 == STAGES ? 0 : stage + 1;
  }
  cp_async_wait<0>();

  // Finish: row sums over the quad, normalise, store (pairs of elements, 4-byte stores).
  T* out = static_cast<T*>(p.out);
  const int dc = (lane & 3) * 2;
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float l = lrow[mt][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int64_t i = i0 + warp * 16 * MT + mt * 16 + (lane >> 2) + h * 8;
      if (i >= p.Nq) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      T* orow = out + ((b * p.Nq + i) * p.Hq + hq) * D;
#pragma unroll
      for (int d = 0; d < DT; d++) {
        T pair[2] = {from_f32<T>(o[mt][d][2 * h] * inv), from_f32<T>(o[mt][d][2 * h + 1] * inv)};
        *reinterpret_cast<uint32_t*>(orow + d * 8 + dc) = *reinterpret_cast<const uint32_t*>(pair);
      }
      if (p.lse && (lane & 3) == 0)
        p.lse[(b * p.Hq + hq) * p.Nq + i] = l > 0.f ? (mrow[mt][h] + __log2f(l)) * kLn2 : -INFINITY;
    }
}

// ---------------------------------------------------------------------------------------------
// Host side.
// ---------------------------------------------------------------------------------------------
// Internal path number: the generic kernel split over the key range (the first split-K implementation).
constexpr int kGenericSplitPath = 3;

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

bool fa2_applicable(const AttnParams& p) {
  return (p.dtype == int(DType::F16) || p.dtype == int(DType::BF16)) && (p.D == 64 || p.D == 128) &&
         aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && (reinterpret_cast<uintptr_t>(p.out) & 3u) == 0 &&
         p.block_q % 64 == 0 && p.block_k % 64 == 0;
}

bool group_mode_ok(const AttnParams& p) {
  return p.layout_heads == 1 && p.nqb == 1;
}

// Number of key-range splits for the split-K paths (rows_per_cta rows per CTA, >= min_tiles tiles each).
int split_count(const AttnParams& p, int64_t rows_per_cta, int64_t tile_keys, int64_t min_tiles) {
  const bool gm = group_mode_ok(p);
  const int64_t set = gm ? (p.Hq / p.Hkv) * p.Nq : p.block_q;
  const int64_t chunks = gm ? ceil_div(set, rows_per_cta) : p.nqb * ceil_div(set, rows_per_cta);
  const int64_t base = chunks * (gm ? p.Hkv : p.Hq) * p.B;
  const int64_t target = 2 * int64_t(sm_count());
  int64_t splits = ceil_div(target, std::max<int64_t>(base, 1));
  const int64_t tiles = p.max_row_nnz * (p.block_k / tile_keys);
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, tiles / min_tiles));
  splits = std::min<int64_t>(splits, 128);
  splits = std::min<int64_t>(splits, 65535 / std::max<int64_t>(p.B, 1));  // grid.z = B * splits <= 65535
  // attn_merge_kernel runs one CTA per (b, hq, i) row on grid.x (< 2^31).
  if (p.B * p.Hq * p.Nq > int64_t(INT32_MAX)) splits = 1;
  return int(std::max<int64_t>(splits, 1));
}

int path_splits(const AttnParams& p, AttnPath path) {
  if (path == AttnPath::SplitKDecode) return split_count(p, kDecRows, kDecTK, 2 * kDecWarps);
  if (int(path) == kGenericSplitPath) return split_count(p, kGenRows, kGenTK, 4);
  return 1;
}

AttnPath choose(const AttnParams& p, int force_path) {
  if (force_path == int(AttnPath::Generic)) return AttnPath::Generic;
  if (force_path == int(AttnPath::SplitKDecode)) return AttnPath::SplitKDecode;
  if (force_path == kGenericSplitPath) return AttnPath(kGenericSplitPath);
  if (force_path == int(AttnPath::TensorCore)) return fa2_applicable(p) ? AttnPath::TensorCore : AttnPath::Generic;
  if (p.Nq <= 16) return AttnPath::SplitKDecode;
  if (fa2_applicable(p)) return AttnPath::TensorCore;
  return AttnPath::Generic;
}

template <typename T>
void launch_merge(const AttnParams& p, int splits, float* ws, cudaStream_t st);

size_t generic_smem(const AttnParams& p) {
  return size_t(2 * kGenTK * (p.D + 1) + kGenRows * p.D) * sizeof(float);
}

template <typename T>
void launch_generic(const AttnParams& p, bool group_mode, int splits, float* ws, cudaStream_t st) {
  const size_t smem = generic_smem(p);
  const bool vec = aligned16(p.k) && aligned16(p.v);  // rows are 16-byte multiples (D % 8 == 0)
  auto kern = vec ? attn_generic_kernel<T, true> : attn_generic_kernel<T, false>;
  cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))),
                "cudaFuncSetAttribute(attn_generic_kernel)");
  int64_t gx;
  if (group_mode) gx = ceil_div((p.Hq / p.Hkv) * p.Nq, kGenRows);
  else gx = p.nqb * ceil_div(p.block_q, kGenRows);
  const dim3 grid(unsigned(gx), unsigned(group_mode ? p.Hkv : p.Hq), unsigned(p.B * splits));
  kern<<<grid, kGenWarps * 32, smem, st>>>(p, group_mode ? 1 : 0, splits, ws);
  check_launch("attn_generic_kernel");
  if (splits > 1) launch_merge<T>(p, splits, ws, st);
}

template <typename T>
void launch_merge(const AttnParams& p, int splits, float* ws, cudaStream_t st) {
  const int64_t rows = p.B * p.Hq * p.Nq;
  attn_merge_kernel<T><<<unsigned(rows), 128, 0, st>>>(p, splits, ws);
  check_launch("attn_merge_kernel");
}

template <typename T>
void launch_decode(const AttnParams& p, int splits, float* ws, cudaStream_t st) {
  const bool gm = group_mode_ok(p);
  const size_t smem = size_t(kDecRows * p.D + 2 * kDecWarps * kDecRows + kDecWarps * kDecRows * p.D) * sizeof(float);
  const bool vec = aligned16(p.k) && aligned16(p.v);
  auto kern = p.D <= 128 ? (vec ? attn_decode_kernel<T, true, 4> : attn_decode_kernel<T, false, 4>)
                         : (vec ? attn_decode_kernel<T, true, 8> : attn_decode_kernel<T, false, 8>);
  cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))),
                "cudaFuncSetAttribute(attn_decode_kernel)");
  const int64_t gx = gm ? ceil_div((p.Hq / p.Hkv) * p.Nq, kDecRows) : p.nqb * ceil_div(p.block_q, kDecRows);
  const dim3 grid(unsigned(gx), unsigned(gm ? p.Hkv : p.Hq), unsigned(p.B * splits));
  kern<<<grid, kDecWarps * 32, smem, st>>>(p, gm ? 1 : 0, splits, ws);
  check_launch("attn_decode_kernel");
  if (splits > 1) launch_merge<T>(p, splits, ws, st);
}

template <typename T, int D, int STAGES, int MT, int BN>
void launch_fa2_d(const AttnParams& p, cudaStream_t st) {
  constexpr int BM = 16 * MT * (kFaThreads / 32);
  const size_t smem = size_t(BM * D + 2 * STAGES * BN * D) * sizeof(T);
  auto kern = attn_fa2_kernel<T, D, STAGES, MT, BN>;
  cuda_throw_if(int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))),
                "cudaFuncSetAttribute(attn_fa2_kernel)");
  const dim3 grid(unsigned(p.nqb * (p.block_q / BM)), unsigned(p.Hq), unsigned(p.B));
  kern<<<grid, kFaThreads, smem, st>>>(p);
  check_launch("attn_fa2_kernel");
}

// Variant: 128-row CTAs (two m-tiles per warp, K/V fragments reused across them) for 128-row layout
// blocks; 64-row CTAs otherwise. LLMK_ATTN_FA2_MT1=1 forces the 64-row kernel (A/B timing, fallback).
template <typename T>
void launch_fa2(const AttnParams& p, cudaStream_t st) {
  static const bool force_mt1 = [] { const char* e = std::getenv("LLMK_ATTN_FA2_MT1"); return e && e[0] == '1'; }();
  const bool mt2 = p.block_q % 128 == 0 && !force_mt1;
  if (p.D == 64) {
    if (mt2) launch_fa2_d<T, 64, 3, 2, 64>(p, st);
    else launch_fa2_d<T, 64, 3, 1, 64>(p, st);
  } else {
    if (mt2) launch_fa2_d<T, 128, 3, 2, 32>(p, st);
    else launch_fa2_d<T, 128, 2, 1, 64>(p, st);
  }
}

}  // namespace

AttnPath attention_path(const AttnParams& p) { return choose(p, -1); }

int64_t attention_workspace_floats(const AttnParams& p, int force_path) {
  const int splits = path_splits(p, choose(p, force_path));
  if (splits <= 1) return 0;
  return int64_t(splits) * p.B * p.Hq * p.Nq * (p.D + 1);
}

void attention_block_sparse(const AttnParams& p, float* workspace, void* stream, int force_path) {
  if (p.B == 0 || p.Nq == 0 || p.Hq == 0) return;
  // The ops layer checks all of this; the launcher re-checks what its kernels assume (register tiles of
  // D <= 256 in steps of 8, 32-key tiles dividing the block, grid.y/z limits) so a direct caller cannot
  // get a silently truncated output or an invalid launch.
  if (p.D < 8 || p.D > 256 || p.D % 8 != 0 || p.Hkv < 1 || p.Hq % p.Hkv != 0 || p.Nk < 1 ||
      (p.block_q != 64 && p.block_q != 128) || (p.block_k != 64 && p.block_k != 128) || p.B > 65535 ||
      p.Hq > 65535 || p.nqb != ceil_div(p.Nq, p.block_q) || p.nkb != ceil_div(p.Nk, p.block_k) ||
      (p.layout_heads != 1 && p.layout_heads != p.Hq))
    throw Error(ErrCode::Internal, "attention: launcher called with parameters the kernels do not support");
  cudaStream_t st = as_stream(stream);
  const AttnPath path = choose(p, force_path);
  if (path == AttnPath::TensorCore) {
    LLMK_DISPATCH_HALF(p.dtype, T, launch_fa2<T>(p, st));
    return;
  }
  const int splits = path_splits(p, path);
  if (splits > 1 && workspace == nullptr)
    throw Error(ErrCode::Internal, "attention: split-K path launched without its workspace");
  if (path == AttnPath::SplitKDecode) {
    LLMK_DISPATCH_FLOAT(p.dtype, T, launch_decode<T>(p, splits, workspace, st));
    return;
  }
  const bool gm = path != AttnPath::Generic && group_mode_ok(p);
  LLMK_DISPATCH_FLOAT(p.dtype, T, launch_generic<T>(p, gm, splits, workspace, st));
}

void attention_copy_h2d(void* dst, const void* src, int64_t nbytes, void* stream) {
  if (nbytes <= 0) return;
  cuda_throw_if(int(cudaMemcpyAsync(dst, src, size_t(nbytes), cudaMemcpyHostToDevice, as_stream(stream))),
                "cudaMemcpyAsync(attention layout)");
}

}  // namespace llmk::cuda
