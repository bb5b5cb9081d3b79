// Serving attention on CUDA (issue 15): varlen and paged attention and the KV cache scatter, launched without
// a host round trip (the offsets, block tables and slots stay on the device and are checked there: anything
// out of range raises the device error flag, ERR_LLMK_INDEX at the next synchronisation, and is never
// dereferenced). Compiled, not verified on a GPU. Plain C++ header: host launchers only.
#pragma once
#include <cstdint>

namespace llmk::cuda {

struct ServingParams {
  int dtype = 0;  // DType of q, k, v, out (F32, F16, BF16)
  int64_t B = 0, Hq = 0, Hkv = 0, D = 0, total_q = 0, total_k = 0;
  const void* q = nullptr;  // [total_q, Hq, D]
  void* out = nullptr;      // [total_q, Hq, D]
  float* lse = nullptr;     // [Hq, total_q] or null
  const void* k = nullptr;  // varlen: [total_k, Hkv, D]; paged: [num_pages, page_size, Hkv, D]
  const void* v = nullptr;
  const int32_t* cu_q = nullptr;          // [B + 1]
  const int32_t* cu_k = nullptr;          // [B + 1] (varlen; null when paged)
  const int32_t* block_tables = nullptr;  // [B, max_pages] (paged)
  const int32_t* seq_lens = nullptr;      // [B] (paged)
  int64_t max_pages = 0, page_size = 0, num_pages = 0;
  bool causal = false;
  int64_t win_left = -1, win_right = -1;
  float scale = 1.f, softcap = 0.f;
  int* err_flag = nullptr;  // set on any device-data error
};

// Enqueues varlen (p.cu_k set) or paged (p.block_tables set) attention on `stream`.
void attention_serving(const ServingParams& p, void* stream);

// Scatters k, v [n, Hkv, D] into the caches [num_pages * page_size, Hkv, D] at slots [n] (-1 = skip; a slot
// outside the cache raises the flag and that token is not written).
void attention_cache_append(void* k_cache, void* v_cache, const void* k, const void* v, const int32_t* slots, int64_t n,
                            int64_t row_elems, int64_t num_slots, int dtype, int* err_flag, void* stream);

}  // namespace llmk::cuda
