// Shared by int4_int8.cpp and the per-ISA kernel bodies it includes: the quantised activations of one
// call and the arguments of a kernel tile.
#pragma once
#include <cstdint>
#include <vector>

#include "int4.h"
#include "int4_isa.h"

namespace llmk::cpu::int8mode {

// Activations quantised per row m and block b of BA consecutive k (after act-order): sa = amax / 127,
// xq = clamp(round(x / sa), −127, 127). Inside each chunk of CH k the int8 values are stored as the CH/2
// even k, then the CH/2 odd k, so the low nibbles of CH/2 packed weight bytes meet the first half and the
// high nibbles the second. A block holding Inf or NaN gets sa = NaN and xq = 0, and its row is marked bad
// (recomputed with the float math for that block).
struct QuantX {
  std::vector<int8_t> buf;   // q's storage (q is 64-byte aligned in it: a SIMD load of x never splits a cache line)
  int8_t* q = nullptr;       // [M][K], chunk layout
  std::vector<float> sa;     // [M][NB]
  std::vector<int32_t> sum;  // [M][NB]: Σ xq over the block (for the zero point)
  std::vector<float> xf;     // [M][K]: x as float32 (act-order applied), unless x is that already
  const float* xr = nullptr; // xf, or x itself (float32 without act-order)
  std::vector<uint8_t> bad;  // [M]
  int64_t BA = 0, CH = 0, NB = 0;
};

// The block factors of the SIMD tiles (R weight rows × all M activation rows, index i = r·M + m) when a
// group spans several blocks (Args::inl false), set up once per row tile by portable code:
// cs[i·NB + b] = scale · sa (the block's float factor) and zc[i·NB + b] = −zero · Σ xq (the zero point's
// integer term, scaled by cs and summed apart from the dot products). sw and z are the rows' scales and zero points per
// block (row_params), the set-up's inputs.
struct RowParams {
  std::vector<float> sw, cs;
  std::vector<int32_t> z, zc;
};

// Quantises x [M][K] (dtype xdt, columns permuted by perm when non-null) into x, whose BA, CH, NB, q, sa,
// sum and bad are set up (int4_int8_quant_x.cpp); vector code for the ISAs at or below `isa`.
void quantise_x(const void* xs, int xdt, const int32_t* perm, int64_t M, int64_t K, Int4Isa isa, QuantX& x);

struct Args {
  QWeight q;  // the packed codes (canonical or quads)
  const void* scales;
  int sdt;
  const uint8_t* zeros;
  int64_t M, N, K, group;
  const QuantX* x;
  bool inl;  // every block has its own group: the SIMD tiles make their block factors themselves (no RowParams)
};

}  // namespace llmk::cpu::int8mode
