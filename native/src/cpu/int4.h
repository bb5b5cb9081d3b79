// INT4 weight-only matmul, CPU kernels (docs/architecture.md §4.3).
//
// Canonical format for a weight W[N,K]: qweight uint8 [N, K/2] packed along K (low nibble = even k),
// scales [N, G] (G = K / group; float32, float16 or bfloat16, given as a DType int), zeros uint8 [N, G]
// or null (symmetric: zero point 8). Value = scale * (nibble - zero).
//
// Plain functions over pointers; multi-threaded with llmk::parallel_for; no allocation policy.
#pragma once
#include <cstdint>

namespace llmk::cpu {

// ---- The CPU's prepared layout (quant.prepare on the CPU when int4_quads_fit(N, K)) ----
// The canonical qweight rows four at a time ("quads"), interleaved by 64-byte chunks: chunk c of row n at
// byte (n / 4)·4·(K/2) + c·256 + (n % 4)·64. Same bytes and size as the canonical [N, K/2]; scales and
// zeros stay canonical. Why: the SIMD tiles take four (or more) rows at a time, and four interleaved row
// streams are a poor pattern for the hardware prefetchers; a quad is one sequential stream (int8 mode,
// AVX-512 VNNI on Zen 5, M = 1, 4096², alternating with the canonical weight in one process: 1.34-1.41x;
// M = 16 and the float mode within 3%).
constexpr int64_t kQuadRows = 4, kQuadChunk = 64;
inline bool int4_quads_fit(int64_t N, int64_t K) { return N % kQuadRows == 0 && K % (2 * kQuadChunk) == 0; }
void int4_to_quads(const uint8_t* canonical, int64_t N, int64_t K, uint8_t* quads);
void int4_from_quads(const uint8_t* quads, int64_t N, int64_t K, uint8_t* canonical);

// The layout of the codes given to int4_matmul / int4_matmul_int8: canonical, or quads with the rows
// counted from row0 of the quad at the given pointer (a row slice of a prepared weight, as the MoE kernel
// takes, may start inside a quad).
struct QLayout {
  bool quads = false;
  int64_t row0 = 0;
};

// One weight row's packed bytes: byte o (of the canonical row's K/2) at at(o). A read of up to 64 bytes
// from an offset that is a multiple of its length stays in one chunk, so it is contiguous in both layouts.
struct QRow {
  const uint8_t* p;  // the row's first chunk
  int64_t cs;        // bytes between its chunks: 64 canonical, 256 in quads
  const uint8_t* at(int64_t o) const { return p + (o >> 6) * cs + (o & 63); }
};

// The packed codes as the kernels address them. Rows D apart, D a multiple of 4, are D·K/2 bytes apart in
// both layouts (row(n + D).at(o) == row(n).at(o) + D·K2): the kernels' prefetches of later rows use that.
struct QWeight {
  const uint8_t* q;
  int64_t K2;  // K / 2
  QLayout lay;
  QRow row(int64_t n) const {
    if (!lay.quads) return QRow{q + n * K2, kQuadChunk};
    n += lay.row0;
    return QRow{q + (n / kQuadRows) * kQuadRows * K2 + (n % kQuadRows) * kQuadChunk, kQuadRows * kQuadChunk};
  }
};

// Round-to-nearest quantisation of w[N,K] (dtype wdt) per group of `group` consecutive k.
// symmetric: scale = amax/7, q = clamp(round(w/scale), -8, 7) + 8 (zeros not written).
// asymmetric: range widened to include 0, scale = (max-min)/15, zero = clamp(round(-min/scale), 0, 15),
//             q = clamp(round(w/scale) + zero, 0, 15); zeros must be non-null.
// Scales are rounded to sdt first and q is computed with the rounded scale.
void int4_quantize(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric,
                   uint8_t* qweight, void* scales, int sdt, uint8_t* zeros);

// Throws ERR_LLMK_ARG when w holds Inf / NaN or a group's scale (as int4_quantize computes it) is not
// finite in sdt (float16 above max|w| ≈ 4.6e5 symmetric; any dtype when max − min overflows float32).
void int4_quantize_check(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric, int sdt);

// out[N,K] (dtype odt) = scale * (nibble - zero).
void int4_dequantize(const uint8_t* qweight, const void* scales, int sdt, const uint8_t* zeros,
                     int64_t N, int64_t K, int64_t group, void* out, int odt);

// y[M,N] (dtype ydt) = x'[M,K] · dequant(W)ᵀ + bias, where x' = x, or x'[:, j] = x[:, perm[j]] when
// perm is non-null (act-order). Accumulation in float32; never materialises the dequantised W.
// perm entries must be a permutation of [0,K) (checked by the caller). Non-finite values follow the
// math of x · dequant(W)ᵀ: Inf in x gives ±Inf (NaN only for Inf·0 or Inf − Inf), NaN stays in its row.
// qweight in the layout `lay` (canonical by default).
void int4_matmul(const void* x, int xdt, const uint8_t* qweight, const void* scales, int sdt,
                 const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y, int ydt,
                 int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay = {});

// int4_matmul with int8 activations (quant.matmul compute 'int8', MatMulNBits accuracy_level 4): per row
// and block of BA = int4_int8_block(group) consecutive k (the largest power of two ≤ 256 dividing the group:
// the group itself for 32…256), x is quantised to xq = clamp(round(x / sa), ±127) with sa = max|x| / 127;
// y = Σ_blocks sa · scale · Σ xq·(q − zero) (integer dot, float32 sum over blocks). Error bound against
// x · dequant(W)ᵀ, per output: Σ_blocks (max|x| / 254) · Σ_block |w| plus float32 rounding (README).
// Blocks holding Inf / NaN are computed as int4_matmul computes them. Kernel by int4_isa() (int4_isa.h).
void int4_matmul_int8(const void* x, int xdt, const uint8_t* qweight, const void* scales, int sdt,
                      const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y, int ydt,
                      int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay = {});
int64_t int4_int8_block(int64_t group);

// For M > 256: runs fn (int4_matmul or int4_matmul_int8) on blocks of 256 rows of x and y, so their
// per-call copies of x stay bounded, and returns true; false (nothing done) for M ≤ 256.
using Int4MatmulFn = void (*)(const void*, int, const uint8_t*, const void*, int, const uint8_t*, const void*, int,
                              const int32_t*, void*, int, int64_t, int64_t, int64_t, int64_t, QLayout);
bool int4_matmul_in_row_blocks(Int4MatmulFn fn, const void* x, int xdt, const uint8_t* qweight, const void* scales,
                               int sdt, const uint8_t* zeros, const void* bias, int bdt, const int32_t* perm, void* y,
                               int ydt, int64_t M, int64_t N, int64_t K, int64_t group, QLayout lay);

// Throws ERR_LLMK_INDEX ("<op>: permutation entry …") when an entry of perm [K] is outside [0, K).
void check_perm(const int32_t* perm, int64_t K, const char* op);

// out[M,K] = x[:, perm] (elements of esize bytes); perm entries outside [0,K) throw ERR_LLMK_INDEX.
void permute_cols(const void* x, const int32_t* perm, void* out, int64_t M, int64_t K, int64_t esize);

// ---- The CUDA kernels' tuned layout ("prepared"), as a host reference (used by the native test and
// by the ops layer to describe sizes). Only for N % 16 == 0 and K % 16 == 0.
//   qweight: blocks of 16 rows × 64 k (512 bytes), block (nb, kb) at byte offset (nb * KB + kb) * 512,
//   KB = ceil(K/64) (k beyond K padded with nibble 0). Inside a block, 32-bit word (lane*4 + kc),
//   lane = g*4 + t (g, t in 0..7, 0..3), kc in 0..3, holds eight nibbles (bits 4i..4i+3 = slot i):
//     slot0 = W[g][16kc+2t]     slot4 = W[g][16kc+2t+1]
//     slot1 = W[g][16kc+2t+8]   slot5 = W[g][16kc+2t+9]
//     slot2 = W[g+8][16kc+2t]   slot6 = W[g+8][16kc+2t+1]
//     slot3 = W[g+8][16kc+2t+8] slot7 = W[g+8][16kc+2t+9]
//   (rows relative to 16*nb, k relative to 64*kb): exactly the B fragments of mma.m16n8k16 for two
//   n8 tiles, so one 16-byte load per lane gives a warp a 16×64 tile ready to dequantise in registers.
//   scales: transposed to [G, N] (same dtype); zeros: transposed to [G, N].
inline int64_t int4_prepared_qbytes(int64_t N, int64_t K) { return (N / 16) * ((K + 63) / 64) * 512; }
void int4_pack_prepared(const uint8_t* qweight, int64_t N, int64_t K, uint8_t* out);
void int4_unpack_prepared(const uint8_t* packed, int64_t N, int64_t K, uint8_t* qweight);
// [R, C] -> [C, R] transpose of elements of `esize` bytes.
void transpose_bytes(const void* in, int64_t R, int64_t C, int64_t esize, void* out);

}  // namespace llmk::cpu
