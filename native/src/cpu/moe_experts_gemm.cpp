// Expert GEMM tiles of moe.experts on the CPU: moe_experts_tile.h compiled here per ISA next to
// matmul_kernel.h (owned by the CPU matmul; its row loaders are used). The ISA is picked like the
// dense matmul's (LLMK_CPU_MATMUL_ISA included).
#include "moe_experts.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized (GCC bug 105593): silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#if !defined(__clang__)
#define LLMK_MOE_X86 1
#endif
#endif

#include "../core/half.h"

#define LLMK_ALWAYS_INLINE inline __attribute__((always_inline))

namespace llmk::cpu::moe_gemm {

// Blocking constants and the job record matmul_kernel.h expects (its whole-matrix driver is compiled
// here too but only its tile pieces are used).
constexpr int64_t MC = 128, NC = 256, KC = 128;
constexpr int SMALL_M = 4;
constexpr int64_t SMALL_M_MAX = 16;
struct Job {
  const void* a;
  const void* b;
  void* out;
  int64_t M, N, K;
  int dt;
  bool pack_b;
};

// Per-thread buffer `slot` of at least n floats, kept between calls.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[3];
  std::vector<float>& b = bufs[slot];
  if (int64_t(b.size()) < n) b.resize(size_t(n));
  return b.data();
}

#if defined(LLMK_MOE_X86)
namespace avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
using V = __m512;
constexpr int L = 16, MR = 8, NV = 2, NVS = 4;
LLMK_ALWAYS_INLINE V vzero() { return _mm512_setzero_ps(); }
LLMK_ALWAYS_INLINE V vload(const float* p) { return _mm512_loadu_ps(p); }
LLMK_ALWAYS_INLINE void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
LLMK_ALWAYS_INLINE V vbcast(const float* p) { return _mm512_set1_ps(*p); }
LLMK_ALWAYS_INLINE V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "moe_experts_tile.h"
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
using V = __m256;
constexpr int L = 8, MR = 6, NV = 2, NVS = 2;
LLMK_ALWAYS_INLINE V vzero() { return _mm256_setzero_ps(); }
LLMK_ALWAYS_INLINE V vload(const float* p) { return _mm256_loadu_ps(p); }
LLMK_ALWAYS_INLINE void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
LLMK_ALWAYS_INLINE V vbcast(const float* p) { return _mm256_broadcast_ss(p); }
LLMK_ALWAYS_INLINE V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "moe_experts_tile.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

namespace generic {
typedef float V __attribute__((vector_size(16)));
constexpr int L = 4, MR = 4, NV = 2, NVS = 2;
LLMK_ALWAYS_INLINE V vzero() { return V{0.f, 0.f, 0.f, 0.f}; }
LLMK_ALWAYS_INLINE V vload(const float* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
LLMK_ALWAYS_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
LLMK_ALWAYS_INLINE V vbcast(const float* p) { return V{*p, *p, *p, *p}; }
LLMK_ALWAYS_INLINE V vfma(V a, V b, V c) { return a * b + c; }
inline void cvt_f16(const uint16_t* s, float* d, int64_t n) { for (int64_t i = 0; i < n; i++) d[i] = f16_to_f32(s[i]); }
inline void cvt_to_f16(const float* s, uint16_t* d, int64_t n) { for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16(s[i]); }
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
#if defined(LLMK_MOE_X86)
    __builtin_cpu_init();
    const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
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
