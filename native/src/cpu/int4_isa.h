// Which instruction set the CPU INT4 kernels use: the best the CPU has, or a lesser one asked for with
// LLMK_CPU_INT4_ISA=avx512|avx512bw|avx2|generic (read per call, so tests cover every variant on one machine).
// avx512bw is AVX-512 without VNNI (the int8 mode then uses vpmaddubsw instead of vpdpbusd).
#pragma once
#include <cstdlib>
#include <cstring>

namespace llmk::cpu {

enum class Int4Isa { Generic = 0, Avx2 = 1, Avx512Bw = 2, Avx512Vnni = 3 };

inline Int4Isa int4_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool has512 = has2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl");
  static const bool vnni = has512 && __builtin_cpu_supports("avx512vnni");
  const char* w = std::getenv("LLMK_CPU_INT4_ISA");
  Int4Isa cap = Int4Isa::Avx512Vnni;
  if (w && std::strcmp(w, "generic") == 0) cap = Int4Isa::Generic;
  else if (w && std::strcmp(w, "avx2") == 0) cap = Int4Isa::Avx2;
  else if (w && std::strcmp(w, "avx512bw") == 0) cap = Int4Isa::Avx512Bw;
  const Int4Isa best = vnni ? Int4Isa::Avx512Vnni : has512 ? Int4Isa::Avx512Bw : has2 ? Int4Isa::Avx2 : Int4Isa::Generic;
  return int(best) < int(cap) ? best : cap;
#else
  return Int4Isa::Generic;
#endif
}

}  // namespace llmk::cpu
