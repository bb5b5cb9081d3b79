// INT4 weight-only matmul, CUDA host launchers (plain C++ header: includers need no CUDA headers).
// Formats: see native/src/cpu/int4.h (canonical and "prepared" layouts). All launchers enqueue on
// `stream` (a cudaStream_t) and return at once; each checks its launch.
#pragma once
#include <cstdint>
#include "../core/int4_params.h"

namespace llmk::cuda {

// True when the tuned ("prepared") device layout exists for this shape: N % 16 == 0, K % 16 == 0.
// Otherwise a prepared CUDA weight keeps the canonical layout and matmul uses the general path.
inline bool int4_fast_layout(int64_t N, int64_t K) { return N > 0 && K > 0 && N % 16 == 0 && K % 16 == 0; }

void int4_quantize(const void* w, int wdt, int64_t N, int64_t K, int64_t group, bool symmetric,
                   uint8_t* qweight, void* scales, int sdt, uint8_t* zeros, void* stream);
void int4_dequantize(const uint8_t* qweight, const void* scales, int sdt, const uint8_t* zeros, int64_t N,
                     int64_t K, int64_t group, void* out, int odt, void* stream);

// Canonical -> prepared (qweight packed as in cpu/int4.h; scales and zeros transposed to [G, N]).
// pzeros may be null when zeros is null. Requires int4_fast_layout(N, K).
void int4_prepare(const uint8_t* qweight, const void* scales, int esize_scales, const uint8_t* zeros,
                  int64_t N, int64_t K, int64_t group, uint8_t* pq, void* pscales, uint8_t* pzeros,
                  void* stream);
// Prepared -> canonical (the reverse of int4_prepare).
void int4_unprepare(const uint8_t* pq, const void* pscales, int esize_scales, const uint8_t* pzeros,
                    int64_t N, int64_t K, int64_t group, uint8_t* qweight, void* scales, uint8_t* zeros,
                    void* stream);

// out[M,K] = x[:, perm] for elements of esize (1, 2 or 4) bytes; out-of-range entries raise err_flag
// and give 0.
void permute_cols(const void* x, const int32_t* perm, void* out, int64_t M, int64_t K, int esize, int* err_flag,
                  void* stream);

// Workspace bytes int4_matmul needs for this call (split-K partials, permuted activations).
int64_t int4_matmul_workspace(int64_t M, int64_t N, int64_t K, int64_t group, int xdt, bool prepared,
                              bool has_perm);

// p.y = x'·dequant(W)ᵀ + bias as core/int4_params.h describes (p.prepared layouts need int4_fast_layout).
// p.perm entries out of range raise err_flag and read as 0. workspace: at least int4_matmul_workspace(...)
// bytes, 256-byte aligned.
void int4_matmul(const Int4MatmulParams& p, void* workspace, int64_t workspace_bytes, int* err_flag, void* stream);

// Which kernel int4_matmul would run ("general" or an mma tile name such as "mma16n128"), and its split-K count.
const char* int4_matmul_path(int64_t M, int64_t N, int64_t K, int xdt, bool prepared, const void* x,
                             int* splits);

}  // namespace llmk::cuda
