// Serving shapes of attention (issue 15): ragged batches (varlen, cu_seqlens), a paged KV cache and
// the scatter that fills it. Shapes, dtypes, devices and options are checked here at the call; what lives
// in tensors (cu_seqlens, block tables, sequence lengths, slots) is checked by the kernel before it writes
// anything, or as a page is read, and reported as ERR_LLMK_INDEX at the next synchronisation.
#pragma once
#include <utility>
#include "../core/tensor.h"
#include "attention.h"

namespace llmk::ops {

// out [totalQ, Hq, D], lse [Hq, totalQ] float32 (FlashAttention's varlen layout) when asked for.
AttentionResult attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_q, const Tensor& cu_k,
                                 const AttentionOptions& o);

// Pages: k_cache and v_cache [numPages, pageSize, Hkv, D]; block_tables [B, maxPages] int32, seq_lens [B] int32,
// cu_q [B + 1] int32. Sequence b's keys 0..seq_lens[b]-1 are token j at page block_tables[b][j / pageSize].
AttentionResult attention_paged(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                                const Tensor& seq_lens, const Tensor& cu_q, const AttentionOptions& o);

// A zeroed KV cache pair (key, value) [numPages, pageSize, Hkv, D] that meets the contract the ops check.
std::pair<Tensor, Tensor> attention_kv_cache(int64_t num_pages, int64_t page_size, int64_t kv_heads, int64_t head_dim,
                                             DType dtype, Device device);

// k, v [n, Hkv, D] into slots slot_mapping [n] int32 of the caches (slot = page * pageSize + offset; -1 = skip).
void attention_cache_append(const Tensor& k_cache, const Tensor& v_cache, const Tensor& k, const Tensor& v,
                            const Tensor& slot_mapping);

}  // namespace llmk::ops
