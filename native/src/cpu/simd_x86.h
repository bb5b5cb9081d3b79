// x86 intrinsics for the CPU kernels' per-ISA regions. LLMK_CPU_X86 is defined where those regions are
// compiled: x86-64 GCC (they use GCC's `#pragma GCC target`; clang builds get the portable code).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12's AVX-512 intrinsics seed their pass-through operands with `__Y = __Y` and then warn that the
// value is used uninitialized (GCC bug 105593, fixed in 13): silenced for the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#if !defined(__clang__)
#define LLMK_CPU_X86 1
#include <cpuid.h>
// F16C from CPUID: __builtin_cpu_supports("f16c") needs GCC 11, and the prebuilds are built with GCC 10.
// Asked once: the kernels pick their ISA per call, and CPUID traps to the hypervisor in a VM (it was about
// 10 µs, 0.5 % of a 512³ matmul, on the 2-core EPYC VM).
inline bool cpu_has_f16c() {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  }();
  return has;
}
#endif
#endif

#define LLMK_ALWAYS_INLINE inline __attribute__((always_inline))
