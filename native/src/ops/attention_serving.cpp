#include "attention_serving.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/attention_core.h"
#include "tensor_ops.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/attention_paged.h"
#endif

namespace llmk::ops {
namespace {

// Heads, head size and options shared by varlen and paged (the same rules as blockSparse). Returns the scale.
float check_heads_and_options(int64_t Hq, int64_t Hkv, int64_t D, const AttentionOptions& o, const char* op) {
  LLMK_CHECK(Hkv >= 1 && Hq >= 1 && Hq % Hkv == 0, Shape, "%s: query heads (%lld) must be a multiple of KV heads (%lld)",
             op, (long long)Hq, (long long)Hkv);
  LLMK_CHECK(Hq <= 65535, Shape, "%s: query heads (%lld) must be at most 65535", op, (long long)Hq);
  LLMK_CHECK(D >= 8 && D <= 256 && D % 8 == 0, Shape, "%s: head size D = %lld must be a multiple of 8 in [8, 256]", op,
             (long long)D);
  return check_attention_options(o, D, op);
}

// An int32 vector (or matrix) on q's device.
void check_index_tensor(const Tensor& t, int nd, const Tensor& like, const char* op, const char* name) {
  check_dtype(t, DType::I32, op, name);
  check_ndim(t, nd, op, name);
  check_same_device(like, t, op);
}

// cu_seqlens (read when the kernel runs): starts at 0, never decreases, ends at the tensor's total.
void check_cu_seqlens(const int32_t* cu, int64_t B, int64_t total, const char* op, const char* name) {
  if (cu[0] != 0) throw Error(ErrCode::Index, fmt("%s: %s[0] must be 0, got %d", op, name, cu[0]));
  for (int64_t b = 0; b < B; b++)
    if (cu[b + 1] < cu[b])
      throw Error(ErrCode::Index, fmt("%s: %s must not decrease (entry %lld: %d -> %d)", op, name, (long long)b, cu[b], cu[b + 1]));
  if (cu[B] != total)
    throw Error(ErrCode::Index, fmt("%s: %s must end at the %lld tokens of its tensor, got %d", op, name, (long long)total, cu[B]));
}

cpu::AttnCoreArgs core_args(const Tensor& q, int64_t Hkv, float scale, const AttentionOptions& o) {
  cpu::AttnCoreArgs a;
  a.dtype = int(q.dtype());
  a.Hq = q.dim(1); a.Hkv = Hkv; a.D = q.dim(2);
  a.causal = o.causal; a.win_left = o.win_left; a.win_right = o.win_right;
  a.scale = scale; a.softcap = float(o.softcap);
  a.lse_hstride = q.dim(0);
  return a;
}

void set_outputs(cpu::AttnCoreArgs& a, const Tensor& q, const AttentionResult& r) {
  a.q = q.data(); a.out = r.out.data();
  a.lse = r.lse.defined() ? r.lse.data_as<float>() : nullptr;
}

AttentionResult alloc_outputs(const Tensor& q, const AttentionOptions& o) {
  AttentionResult r;
  r.out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (o.return_lse) r.lse = Tensor::empty({q.dim(1), q.dim(0)}, DType::F32, q.device());
  return r;
}

#ifdef LLMK_WITH_CUDA
// The CUDA kernel's arguments common to varlen and paged (compiled, not verified on a GPU).
cuda::ServingParams serving_params(const Tensor& q, const AttentionResult& r, int64_t Hkv, int64_t B, float scale,
                                   const AttentionOptions& o) {
  cuda::ServingParams p;
  p.dtype = int(q.dtype());
  p.B = B; p.Hq = q.dim(1); p.Hkv = Hkv; p.D = q.dim(2); p.total_q = q.dim(0);
  p.q = q.data(); p.out = r.out.data(); p.lse = r.lse.defined() ? r.lse.data_as<float>() : nullptr;
  p.causal = o.causal; p.win_left = o.win_left; p.win_right = o.win_right;
  p.scale = scale; p.softcap = float(o.softcap);
  cuda_set_device(q.device().index);
  p.err_flag = cuda_error_flag(q.device().index);
  return p;
}
#else
[[noreturn]] void no_cuda(const char* op) {
  throw Error(ErrCode::Unavailable, fmt("%s: this build has no CUDA support", op));
}
#endif

}  // namespace

AttentionResult attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_q, const Tensor& cu_k,
                                 const AttentionOptions& o) {
  const char* op = "attention.varlen";
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  check_float_dtype(q, op, "q");
  LLMK_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), DType, "%s: q, k, v dtypes differ (%s, %s, %s)", op,
             dtype_name(q.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  check_ndim(q, 3, op, "q");
  check_ndim(k, 3, op, "k");
  check_ndim(v, 3, op, "v");
  LLMK_CHECK(k.shape() == v.shape(), Shape, "%s: k %s and v %s shapes differ", op, shape_str(k.shape()).c_str(),
             shape_str(v.shape()).c_str());
  LLMK_CHECK(k.dim(2) == q.dim(2), Shape, "%s: q %s and k %s head sizes differ", op, shape_str(q.shape()).c_str(),
             shape_str(k.shape()).c_str());
  const float scale = check_heads_and_options(q.dim(1), k.dim(1), q.dim(2), o, op);
  check_index_tensor(cu_q, 1, q, op, "cuSeqlensQ");
  check_index_tensor(cu_k, 1, q, op, "cuSeqlensK");
  LLMK_CHECK(cu_q.dim(0) >= 1 && cu_k.dim(0) == cu_q.dim(0), Shape,
             "%s: cuSeqlensQ (%lld) and cuSeqlensK (%lld) must both have B + 1 >= 1 entries", op, (long long)cu_q.dim(0),
             (long long)cu_k.dim(0));
  AttentionResult r = alloc_outputs(q, o);
  const int64_t B = cu_q.dim(0) - 1, total_k = k.dim(0);
  if (!q.device().is_cpu()) {
#ifdef LLMK_WITH_CUDA
    cuda::ServingParams p = serving_params(q, r, k.dim(1), B, scale, o);
    p.total_k = total_k; p.k = k.data(); p.v = v.data();
    p.cu_q = cu_q.data_as<int32_t>(); p.cu_k = cu_k.data_as<int32_t>();
    cuda::attention_serving(p, current_stream(q.device())->cuda());
    return r;
#else
    no_cuda(op);
#endif
  }
  cpu::AttnCoreArgs a = core_args(q, k.dim(1), scale, o);
  enqueue_cpu([a, q, k, v, cu_q, cu_k, r, B, total_k, op]() mutable {
    const int32_t* cq = cu_q.data_as<int32_t>();
    const int32_t* ck = cu_k.data_as<int32_t>();
    check_cu_seqlens(cq, B, q.dim(0), op, "cuSeqlensQ");
    check_cu_seqlens(ck, B, total_k, op, "cuSeqlensK");
    std::vector<cpu::AttnSeq> seqs(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; b++) {
      cpu::AttnSeq& s = seqs[size_t(b)];
      s.q0 = cq[b]; s.nq = cq[b + 1] - cq[b]; s.k0 = ck[b]; s.nk = ck[b + 1] - ck[b]; s.lse0 = cq[b];
    }
    set_outputs(a, q, r);
    a.k = k.data(); a.v = v.data();
    a.seqs = seqs.data(); a.nseq = B;
    cpu::attention_core(a);
  });
  return r;
}

constexpr int64_t kMinPage = 16, kMaxPage = 256;  // tokens per page

// The cache pair's contract: 4-D [numPages, pageSize, Hkv, D], one shape, dtype and device, pageSize in [16, 256].
static void check_cache(const Tensor& kc, const Tensor& vc, const char* op) {
  check_same_device(kc, vc, op);
  check_float_dtype(kc, op, "key cache");
  check_ndim(kc, 4, op, "key cache");
  LLMK_CHECK(kc.shape() == vc.shape() && kc.dtype() == vc.dtype(), Shape, "%s: key and value caches differ (%s vs %s)", op,
             shape_str(kc.shape()).c_str(), shape_str(vc.shape()).c_str());
  LLMK_CHECK(kc.dim(1) >= kMinPage && kc.dim(1) <= kMaxPage, Shape, "%s: pageSize must be in [%lld, %lld], got %lld", op,
             (long long)kMinPage, (long long)kMaxPage, (long long)kc.dim(1));
}

std::pair<Tensor, Tensor> attention_kv_cache(int64_t num_pages, int64_t page_size, int64_t kv_heads, int64_t head_dim,
                                             DType dtype, Device device) {
  const char* op = "attention.KvCache";
  LLMK_CHECK(num_pages >= 1, Arg, "%s: numPages must be at least 1, got %lld", op, (long long)num_pages);
  LLMK_CHECK(page_size >= kMinPage && page_size <= kMaxPage, Arg, "%s: pageSize must be an integer in [%lld, %lld], got %lld",
             op, (long long)kMinPage, (long long)kMaxPage, (long long)page_size);
  LLMK_CHECK(kv_heads >= 1 && kv_heads <= 65535, Arg, "%s: kvHeads must be an integer in [1, 65535], got %lld", op,
             (long long)kv_heads);
  LLMK_CHECK(head_dim >= 8 && head_dim <= 256 && head_dim % 8 == 0, Arg,
             "%s: headDim must be a multiple of 8 in [8, 256] (the attention head sizes), got %lld", op, (long long)head_dim);
  LLMK_CHECK(num_pages <= (int64_t(1) << 31) / page_size && num_pages * page_size <= INT32_MAX, Arg,
             "%s: numPages (%lld) x pageSize (%lld) must fit int32 slot numbers", op, (long long)num_pages,
             (long long)page_size);
  LLMK_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, DType,
             "%s: dtype must be float32, float16 or bfloat16, got %s", op, dtype_name(dtype));
  const Shape shape{num_pages, page_size, kv_heads, head_dim};
  return {full(shape, dtype, device, 0.0), full(shape, dtype, device, 0.0)};
}

AttentionResult attention_paged(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& block_tables,
                                const Tensor& seq_lens, const Tensor& cu_q, const AttentionOptions& o) {
  const char* op = "attention.paged";
  check_cache(kc, vc, op);
  check_ndim(q, 3, op, "q");
  LLMK_CHECK(q.device() == kc.device(), Device, "%s: q is on %s but the cache on %s", op, q.device().str().c_str(),
             kc.device().str().c_str());
  LLMK_CHECK(q.dtype() == kc.dtype(), DType, "%s: q is %s but the cache holds %s", op, dtype_name(q.dtype()),
             dtype_name(kc.dtype()));
  LLMK_CHECK(q.dim(2) == kc.dim(3), Shape, "%s: q's head size %lld differs from the cache's %lld", op, (long long)q.dim(2),
             (long long)kc.dim(3));
  const float scale = check_heads_and_options(q.dim(1), kc.dim(2), q.dim(2), o, op);
  check_index_tensor(block_tables, 2, q, op, "blockTables");
  check_index_tensor(seq_lens, 1, q, op, "seqLens");
  check_index_tensor(cu_q, 1, q, op, "cuSeqlensQ");
  const int64_t B = seq_lens.dim(0);
  LLMK_CHECK(block_tables.dim(0) == B && cu_q.dim(0) == B + 1, Shape,
             "%s: blockTables %s, seqLens %s and cuSeqlensQ %s disagree on the batch size", op,
             shape_str(block_tables.shape()).c_str(), shape_str(seq_lens.shape()).c_str(), shape_str(cu_q.shape()).c_str());
  AttentionResult r = alloc_outputs(q, o);
  const int64_t max_pages = block_tables.dim(1);
  if (!q.device().is_cpu()) {
#ifdef LLMK_WITH_CUDA
    cuda::ServingParams p = serving_params(q, r, kc.dim(2), B, scale, o);
    p.k = kc.data(); p.v = vc.data();
    p.cu_q = cu_q.data_as<int32_t>(); p.block_tables = block_tables.data_as<int32_t>(); p.seq_lens = seq_lens.data_as<int32_t>();
    p.max_pages = max_pages; p.page_size = kc.dim(1); p.num_pages = kc.dim(0);
    cuda::attention_serving(p, current_stream(q.device())->cuda());
    return r;
#else
    no_cuda(op);
#endif
  }
  cpu::AttnCoreArgs a = core_args(q, kc.dim(2), scale, o);
  a.page_size = kc.dim(1);
  a.num_pages = kc.dim(0);
  enqueue_cpu([a, q, kc, vc, block_tables, seq_lens, cu_q, r, B, max_pages, op]() mutable {
    const int32_t* cq = cu_q.data_as<int32_t>();
    const int32_t* sl = seq_lens.data_as<int32_t>();
    check_cu_seqlens(cq, B, q.dim(0), op, "cuSeqlensQ");
    for (int64_t b = 0; b < B; b++)
      if (sl[b] < 0 || int64_t(sl[b]) > max_pages * a.page_size)
        throw Error(ErrCode::Index, fmt("%s: seqLens[%lld] = %d does not fit its block table row (%lld pages of %lld)", op,
                                        (long long)b, sl[b], (long long)max_pages, (long long)a.page_size));
    std::vector<cpu::AttnSeq> seqs(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; b++) {
      cpu::AttnSeq& s = seqs[size_t(b)];
      s.q0 = cq[b]; s.nq = cq[b + 1] - cq[b]; s.nk = sl[b]; s.lse0 = cq[b];
      s.pages = block_tables.data_as<int32_t>() + b * max_pages;
    }
    set_outputs(a, q, r);
    a.k = kc.data(); a.v = vc.data();
    a.seqs = seqs.data(); a.nseq = B;
    cpu::attention_core(a);
  });
  return r;
}

void attention_cache_append(const Tensor& kc, const Tensor& vc, const Tensor& k, const Tensor& v, const Tensor& slots) {
  const char* op = "KvCache.append";
  check_cache(kc, vc, op);
  check_same_device(k, v, op);
  LLMK_CHECK(k.device() == kc.device(), Device, "%s: k is on %s but the cache on %s", op, k.device().str().c_str(),
             kc.device().str().c_str());
  LLMK_CHECK(k.dtype() == kc.dtype() && v.dtype() == kc.dtype(), DType, "%s: k and v must be %s like the cache (got %s, %s)",
             op, dtype_name(kc.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  check_ndim(k, 3, op, "k");
  LLMK_CHECK(k.shape() == v.shape() && k.dim(1) == kc.dim(2) && k.dim(2) == kc.dim(3), Shape,
             "%s: k %s and v %s must be [n, %lld, %lld]", op, shape_str(k.shape()).c_str(), shape_str(v.shape()).c_str(),
             (long long)kc.dim(2), (long long)kc.dim(3));
  check_index_tensor(slots, 1, k, op, "slotMapping");
  LLMK_CHECK(slots.dim(0) == k.dim(0), Shape, "%s: slotMapping has %lld entries for %lld tokens", op,
             (long long)slots.dim(0), (long long)k.dim(0));
  if (!k.device().is_cpu()) {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(k.device().index);
    cuda::attention_cache_append(kc.data(), vc.data(), k.data(), v.data(), slots.data_as<int32_t>(), k.dim(0),
                                 k.dim(1) * k.dim(2), kc.dim(0) * kc.dim(1), int(k.dtype()), cuda_error_flag(k.device().index),
                                 current_stream(k.device())->cuda());
    return;
#else
    no_cuda(op);
#endif
  }
  enqueue_cpu([kc, vc, k, v, slots, op]() {
    const int32_t* s = slots.data_as<int32_t>();
    const int64_t n = k.dim(0), nslots = kc.dim(0) * kc.dim(1);
    const size_t row = size_t(k.dim(1) * k.dim(2)) * dtype_size(k.dtype());
    for (int64_t t = 0; t < n; t++)  // every slot first: a bad one writes nothing
      if (s[t] < -1 || s[t] >= nslots)
        throw Error(ErrCode::Index, fmt("%s: slotMapping[%lld] = %d is outside the cache's %lld slots", op, (long long)t, s[t],
                                        (long long)nslots));
    char* kd = static_cast<char*>(kc.data());
    char* vd = static_cast<char*>(vc.data());
    for (int64_t t = 0; t < n; t++) {
      if (s[t] < 0) continue;
      std::memcpy(kd + size_t(s[t]) * row, static_cast<const char*>(k.data()) + size_t(t) * row, row);
      std::memcpy(vd + size_t(s[t]) * row, static_cast<const char*>(v.data()) + size_t(t) * row, row);
    }
  });
}

}  // namespace llmk::ops
