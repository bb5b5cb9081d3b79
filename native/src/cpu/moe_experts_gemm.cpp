// Expert GEMM tiles of moe.experts on the CPU: moe_experts_tile.h compiled here per ISA next to
// matmul_kernel.h (owned by the CPU matmul; its row loaders are used). The ISA is picked like the
// dense matmul's (LLMK_CPU_MATMUL_ISA included).
#include "moe_experts.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "simd_x86.h"

#include "../core/half.h"

namespace llmk::cpu::moe_gemm {

// The depth block matmul_kernel.h's packers need (its whole-matrix driver lives in matmul_driver.h).
constexpr int64_t KC = 128;

// Per-thread buffer `slot` of at least n floats, kept between calls.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[3];
  std::vector<float>& b = bufs[slot];
  if (int64_t(b.size()) < n) b.resize(size_t(n));
  return b.data();
}

#if defined(LLMK_CPU_X86)
namespace avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#include "simd_avx512.inc"
constexpr int MR = 8, NV = 2, NVS = 4;
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "moe_experts_tile.h"
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "simd_avx2.inc"
constexpr int MR = 6, NV = 2, NVS = 2;
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "moe_experts_tile.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

namespace generic {
#include "simd_generic.inc"
constexpr int MR = 4, NV = 2, NVS = 2;
#include "matmul_kernel.h"
#include "moe_experts_tile.h"
}  // namespace generic

using TileFn = void (*)(const void*, int, int64_t, int64_t, int64_t, const float*, int64_t, float*, int64_t);
struct Fns {
  TileFn tile, tile_packed;
  int64_t (*packed_size)(int64_t, int64_t);
  void (*pack_tokens)(const float*, int64_t, int64_t, float*);
};
#define LLMK_MOE_FNS(ns) Fns{ns::tile, ns::tile_packed, ns::packed_size, ns::pack_tokens}

const Fns& fns() {
  static const Fns f = [] {
    const char* want = std::getenv("LLMK_CPU_MATMUL_ISA");
    const std::string w = want ? want : "";
#if defined(LLMK_CPU_X86)
    __builtin_cpu_init();
    const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    if (__builtin_cpu_supports("avx512f") && has2 && (w.empty() || w == "avx512")) return LLMK_MOE_FNS(avx512);
    if (has2 && w != "generic") return LLMK_MOE_FNS(avx2);
#endif
    (void)w;
    return LLMK_MOE_FNS(generic);
  }();
  return f;
}

}  // namespace llmk::cpu::moe_gemm

namespace llmk::cpu {

void expert_gemm_tile(const void* w, int wdt, int64_t K, int64_t r0, int64_t rows, const float* x, int64_t cols,
                      float* c, int64_t ldc, const float* packed) {
  if (rows <= 0 || cols <= 0) return;
  if (K <= 0) {
    for (int64_t r = 0; r < rows; r++) std::fill(c + r * ldc, c + r * ldc + cols, 0.f);
    return;
  }
  const moe_gemm::Fns& f = moe_gemm::fns();
  if (packed) f.tile_packed(w, wdt, K, r0, rows, packed, cols, c, ldc);
  else f.tile(w, wdt, K, r0, rows, x, cols, c, ldc);
}

int64_t expert_packed_size(int64_t cols, int64_t K) { return K > 0 ? moe_gemm::fns().packed_size(cols, K) : 0; }

void expert_pack_tokens(const float* x, int64_t cols, int64_t K, float* dst) {
  moe_gemm::fns().pack_tokens(x, cols, K, dst);
}

}  // namespace llmk::cpu
