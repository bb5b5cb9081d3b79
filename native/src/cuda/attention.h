// Block-sparse attention forward on CUDA (DESIGN.md 5.2). Plain C++ header: host launchers only.
#pragma once
#include <cstdint>

namespace llmk::cuda {

// Same meaning as llmk::cpu::AttnParams; every pointer is device memory (lse may be null).
struct AttnParams {
  int64_t B = 0, Nq = 0, Nk = 0, Hq = 0, Hkv = 0, D = 0;
  int dtype = 0;                     // DType of q, k, v and out (F32, F16 or BF16)
  const void* q = nullptr;           // [B, Nq, Hq, D]
  const void* k = nullptr;           // [B, Nk, Hkv, D]
  const void* v = nullptr;           // [B, Nk, Hkv, D]
  void* out = nullptr;               // [B, Nq, Hq, D]
  float* lse = nullptr;              // [B, Hq, Nq] or null
  const int32_t* row_ptr = nullptr;  // [layout_heads, nqb + 1], absolute offsets into col_idx
  const int32_t* col_idx = nullptr;  // [nnz]
  int64_t layout_heads = 1, nqb = 0, nkb = 0, nnz = 0;
  int64_t max_row_nnz = 0;           // largest block count of one layout row (host-computed)
  int64_t block_q = 64, block_k = 64;
  float scale = 1.f;
  bool causal = false;
  int64_t win_left = -1, win_right = -1;  // -1 = unbounded
  float softcap = 0.f;               // 0 = none
  int* err_flag = nullptr;           // set nonzero on a layout index out of range (ERR_LLMK_INDEX)
};

// Which kernel attention_block_sparse runs for p.
enum class AttnPath : int { Generic = 0, TensorCore = 1, SplitKDecode = 2 };
AttnPath attention_path(const AttnParams& p);

// float32 scratch the launch needs (0 for none): split-K partial outputs and LSEs.
int64_t attention_workspace_floats(const AttnParams& p, int force_path = -1);

// Enqueues the forward on `stream`. workspace: attention_workspace_floats(p) floats of device memory.
// force_path >= 0 forces a path (tests); a forced TensorCore path falls back when not applicable.
void attention_block_sparse(const AttnParams& p, float* workspace, void* stream, int force_path = -1);

// Stream-ordered copy of host memory to the device (the host buffer may be reused on return).
void attention_copy_h2d(void* dst, const void* src, int64_t nbytes, void* stream);

}  // namespace llmk::cuda
