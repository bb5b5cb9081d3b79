// Shared by int4_int8.cpp and the per-ISA kernel bodies it includes: the quantised activations of one
// call and the arguments of a kernel tile.
#pragma once
#include <cstdint>
#include <vector>

namespace llmk::cpu::int8mode {

// Activations quantised per row m and block b of BA consecutive k (after act-order): sa = amax / 127,
// xq = clamp(round(x / sa), −127, 127). Inside each chunk of CH k the int8 values are stored as the CH/2
// even k, then the CH/2 odd k, so the low nibbles of CH/2 packed weight bytes meet the first half and the
// high nibbles the second. A block holding Inf or NaN gets sa = NaN and xq = 0, and its row is marked bad
// (recomputed with the float math for that block).
struct QuantX {
  std::vector<int8_t> q;     // [M][K], chunk layout
  std::vector<float> sa;     // [M][NB]
  std::vector<int32_t> sum;  // [M][NB]: Σ xq over the block (for the zero point)
  std::vector<float> sasum;  // [M][NB]: sa · Σ xq (the SIMD tiles' zero-point term, applied once per output)
  std::vector<float> xf;     // [M][K]: x as float32 (act-order applied)
  std::vector<uint8_t> bad;  // [M]
  int64_t BA = 0, CH = 0, NB = 0;
};

// Weight parameters of R rows expanded per activation block (the SIMD tiles' inner loop reads them
// without dtype dispatch): sw[r·NB + b] = scale, zsw[r·NB + b] = zero · scale of block b's group.
struct RowParams {
  std::vector<float> sw, zsw;
};

struct Args {
  const uint8_t* q;  // canonical packed weight [N][K/2]
  const void* scales;
  int sdt;
  const uint8_t* zeros;
  int64_t M, N, K, group;
  const QuantX* x;
};

}  // namespace llmk::cpu::int8mode
