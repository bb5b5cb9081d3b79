// Dense CPU matmul: a register-blocked GEMM (micro-kernel matmul_kernel.h, blocking matmul_driver.h) compiled
// for AVX-512, AVX2+FMA and portable code, picked at run time (shipped binaries carry no host-specific -march flags).
#include "matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include "simd_x86.h"

#include "../core/half.h"
#include "../core/parallel.h"

namespace llmk::cpu {
namespace {

// Rows per packed A block (128×256 floats, L2-resident), depth per packed block (256: C is read and written once
// per depth block; 128 and 384 measured 2-7 % slower at 1024-2048³, 1 thread, AMD EPYC Zen 4, near the noise).
constexpr int64_t MC = 128, KC = 256;
// Columns per task: up to NT_MAX (the task's packed B block, KC×NT_MAX floats = 2 MB, lives in L2/L3 and is
// reused by all its rows; A is packed once per column block, so wide blocks keep that copy rare); small M: SMALL_NT.
constexpr int64_t NT_MAX = 2048, SMALL_NT = 256;
// Rows per task at least MIN_MT (B is packed once per task and K block).
constexpr int64_t MIN_MT = 64;
// Up to SMALL_M_MAX rows, the small-M kernel: slivers of SMALL_M rows with wider tiles (fewer, longer reads
// of B; float32 B is read in place below the ISA's PACK_B_MIN_M, streamed from memory once).
constexpr int SMALL_M = 4;
constexpr int64_t SMALL_M_MAX = 16;
// Up to GEMV_M_MAX rows, the streaming path (matmul_gemv.h): B read GEMV_U contiguous row slices at a time
// (8 beat 4 by 10-25% at M=1 and 4, N=K=4096, AVX-512 and AVX2, 1 thread), one column task per thread of at
// most GEMV_NC_MAX columns (y[rows][chunk] stays in L2; longer row slices measured faster than 512-1024).
constexpr int64_t GEMV_M_MAX = 4, GEMV_NC_MAX = 4096;
constexpr int GEMV_U = 8;

struct Job {
  const void* a;
  const void* b;
  void* out;
  int64_t M, N, K;
  int dt;       // DType as int: 0 float32, 1 float16, 2 bfloat16
  int64_t mt, nt;  // rows and columns per task of the blocked path
};

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The blocked path's task grid: column blocks as wide as NT_MAX allows (small M: SMALL_NT), then rows split
// so that there are about two tasks per thread (some slack for threads descheduled on a loaded machine).
void set_grid(Job& j) {
  if (j.M <= SMALL_M_MAX) { j.mt = j.M; j.nt = SMALL_NT; return; }
  const int64_t threads = num_threads();
  j.nt = std::min(NT_MAX, round_up(j.N, 64));
  const int64_t col_tasks = (j.N + j.nt - 1) / j.nt;
  const int64_t want = threads > 1 ? 2 * threads : 1;
  const int64_t row_tasks = std::max<int64_t>(1, std::min((want + col_tasks - 1) / col_tasks, j.M / MIN_MT));
  j.mt = round_up((j.M + row_tasks - 1) / row_tasks, 16);
}

// Columns per streaming-path task: N split evenly over the threads, whole vectors, capped.
int64_t gemv_chunk(int64_t N) {
  const int64_t t = std::max<int64_t>(1, num_threads());
  return std::min(GEMV_NC_MAX, ((N + t - 1) / t + 63) / 64 * 64);
}

// Per-thread scratch buffer `slot` of at least n floats, 64-byte aligned, kept between calls (grow only).
float* scratch(int slot, int64_t n) {
  struct Buf {
    float* p = nullptr;
    int64_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[3];
  Buf& b = bufs[slot];
  if (b.n < n) {
    std::free(b.p);
    b.p = static_cast<float*>(std::aligned_alloc(64, size_t((n + 15) / 16 * 16) * sizeof(float)));
    if (!b.p) throw std::bad_alloc();
    b.n = n;
  }
  return b.p;
}

#if defined(LLMK_CPU_X86)
namespace avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#include "simd_avx512.inc"
constexpr int MR = 6, NV = 4, NVS = 4;  // 6×64 main tile (24 zmm; ≥ 8×32, 12×32, 14×32 here), 4×64 small-M tile
// From this many rows float32 B is packed into panels too (below, its 64-float panel rows are read in place:
// packing them made M = 8 and 16 at N = K = 4096 1.2x slower, 1 thread, Zen 5).
constexpr int64_t PACK_B_MIN_M = 32;
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "matmul_driver.h"
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "simd_avx2.inc"
constexpr int MR = 6, NV = 2, NVS = 2;  // 6×16 main tile (12 ymm), 4×16 small-M tile
// Float32 B is packed from the first row count past the streaming path: read in place, each 16-float panel row
// is one line 4·N bytes from the next (N = 4096: all in one L1 set). Packing: M = 5 and 16 at N = K = 4096
// 1.3-1.6x faster, M = 8 at N = 11008 within the noise (0.9-1.06x), 1 thread, Zen 5.
constexpr int64_t PACK_B_MIN_M = GEMV_M_MAX + 1;
#include "matmul_f16c.h"
#include "matmul_kernel.h"
#include "matmul_driver.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

namespace generic {
#include "simd_generic.inc"
constexpr int MR = 4, NV = 2, NVS = 2;  // 4×8 tile: 8 vectors of 4 (SSE2 / NEON)
constexpr int64_t PACK_B_MIN_M = 32;  // float32 B packed from this many rows (as the AVX-512 variant; not tuned)
#include "matmul_kernel.h"
#include "matmul_driver.h"
}  // namespace generic

using RunFn = void (*)(const Job&, int64_t, int64_t);

// Best kernel the CPU supports; LLMK_CPU_MATMUL_ISA=avx2|generic asks for a lesser one (tests use it to
// cover every variant on one machine).
RunFn pick_kernel(bool gemv) {
  const char* want = std::getenv("LLMK_CPU_MATMUL_ISA");
  const std::string w = want ? want : "";
#if defined(LLMK_CPU_X86)
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f");
  // The x86 variants convert halves with F16C: every AVX2 CPU has it so far, but it is a separate flag.
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  if (has512 && has2 && (w.empty() || w == "avx512")) return gemv ? avx512::gemv_tasks : avx512::run;
  if (has2 && w != "generic") return gemv ? avx2::gemv_tasks : avx2::run;
#endif
  (void)w;
  return gemv ? generic::gemv_tasks : generic::run;
}

}  // namespace

void matmul(const void* a, const void* b, void* out, int64_t M, int64_t N, int64_t K, DType dtype) {
  if (M <= 0 || N <= 0) return;
  const int dt = int(dtype);
  if (K <= 0) {
    parallel_for(M * N, 1 << 16, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; i++) store_from_f32(out, i, dt, 0.f);
    });
    return;
  }
  Job job{a, b, out, M, N, K, dt, 0, 0};
  set_grid(job);
  const bool gemv = M <= GEMV_M_MAX;
  const RunFn run = pick_kernel(gemv);
  const int64_t tasks = gemv ? (N + gemv_chunk(N) - 1) / gemv_chunk(N)
                             : ((M + job.mt - 1) / job.mt) * ((N + job.nt - 1) / job.nt);
  parallel_for(tasks, 1, [&](int64_t s, int64_t e) { run(job, s, e); });
}

}  // namespace llmk::cpu
