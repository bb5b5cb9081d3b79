#include "attention.h"

#include <cmath>
#include <cstring>
#include <string>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/attention.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/attention.h"
#endif

namespace llmk::ops {

int64_t check_attention_layout(const AttentionLayout& L, const char* op) {
  LLMK_CHECK(L.block_q == 64 || L.block_q == 128, Arg, "%s: blockQ must be 64 or 128, got %lld", op, (long long)L.block_q);
  LLMK_CHECK(L.block_k == 64 || L.block_k == 128, Arg, "%s: blockK must be 64 or 128, got %lld", op, (long long)L.block_k);
  LLMK_CHECK(L.q_len >= 1 && L.k_len >= 1, Arg, "%s: qLen and kLen must be positive, got %lld and %lld", op,
             (long long)L.q_len, (long long)L.k_len);
  LLMK_CHECK(L.heads >= 1, Arg, "%s: heads must be positive, got %lld", op, (long long)L.heads);
  LLMK_CHECK(L.q_len <= (int64_t(1) << 53) && L.k_len <= (int64_t(1) << 53), Shape,
             "%s: qLen and kLen must be at most 2^53, got %lld and %lld", op, (long long)L.q_len, (long long)L.k_len);
  const int64_t nqb = (L.q_len + L.block_q - 1) / L.block_q, nkb = (L.k_len + L.block_k - 1) / L.block_k;
  // Division, not heads * (nqb + 1): that product can wrap around for hostile sizes and let a short
  // rowPtr through (the loops below would then read past its end).
  LLMK_CHECK(L.row_ptr != nullptr && L.row_ptr_len % L.heads == 0 && L.row_ptr_len / L.heads == nqb + 1, Shape,
             "%s: rowPtr has %lld entries; %lld head(s) x (nQB + 1 = %lld) expected (qLen %lld, blockQ %lld: does the "
             "layout's qLen / block size match the sequence?)",
             op, (long long)L.row_ptr_len, (long long)L.heads, (long long)(nqb + 1), (long long)L.q_len,
             (long long)L.block_q);
  LLMK_CHECK(L.nnz >= 0 && L.nnz < (int64_t(1) << 31) && (L.nnz == 0 || L.col_idx != nullptr), Shape,
             "%s: colIdx has %lld entries; at most 2^31 - 1 are allowed", op, (long long)L.nnz);
  LLMK_CHECK(L.row_ptr[0] == 0, Index, "%s: rowPtr[0] must be 0, got %d", op, L.row_ptr[0]);
  int64_t max_row = 0;
  for (int64_t h = 0; h < L.heads; h++) {
    const int32_t* rp = L.row_ptr + h * (nqb + 1);
    LLMK_CHECK(h == 0 || rp[0] == rp[-1], Index, "%s: head %lld's rowPtr must start where head %lld's ends (%d), got %d",
               op, (long long)h, (long long)(h - 1), h ? rp[-1] : 0, rp[0]);
    for (int64_t r = 0; r < nqb; r++) {
      const int64_t a = rp[r], b = rp[r + 1];
      LLMK_CHECK(a <= b && b <= L.nnz, Index,
                 "%s: rowPtr must be non-decreasing and at most colIdx.length = %lld; head %lld row %lld: %lld -> %lld", op,
                 (long long)L.nnz, (long long)h, (long long)r, (long long)a, (long long)b);
      max_row = b - a > max_row ? b - a : max_row;
      for (int64_t p = a; p < b; p++) {
        const int64_t c = L.col_idx[p];
        LLMK_CHECK(c >= 0 && c < nkb, Index, "%s: colIdx[%lld] = %lld is out of range [0, %lld) (head %lld, block row %lld)",
                   op, (long long)p, (long long)c, (long long)nkb, (long long)h, (long long)r);
        LLMK_CHECK(p == a || c > L.col_idx[p - 1], Index,
                   "%s: column indices of head %lld block row %lld must be sorted and unique; colIdx[%lld] = %d, "
                   "colIdx[%lld] = %lld",
                   op, (long long)h, (long long)r, (long long)(p - 1), p > a ? L.col_idx[p - 1] : 0, (long long)p,
                   (long long)c);
      }
    }
  }
  LLMK_CHECK(L.row_ptr[L.row_ptr_len - 1] == L.nnz, Index,
             "%s: the last rowPtr entry (%d) must equal colIdx.length (%lld)", op, L.row_ptr[L.row_ptr_len - 1],
             (long long)L.nnz);
  return max_row;
}

namespace {
std::string js_number(double x) {  // as JavaScript prints it, for messages about JS option values
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  return fmt("%.17g", x);
}
}  // namespace

float check_attention_options(const AttentionOptions& o, int64_t D, const char* op) {
  const double scale = o.has_scale ? o.scale : 1.0 / std::sqrt(double(D));
  LLMK_CHECK(std::isfinite(scale) && std::isfinite(float(scale)), Arg, "%s: scale must be a finite float32 number, got %s",
             op, js_number(scale).c_str());
  LLMK_CHECK(std::isfinite(o.softcap) && o.softcap >= 0, Arg, "%s: softcap must be a finite number >= 0 (0 = none), got %s",
             op, js_number(o.softcap).c_str());
  LLMK_CHECK(o.win_left >= -1 && o.win_right >= -1, Arg, "%s: window bounds must be >= 0 (or unbounded)", op);
  return float(scale);
}

std::shared_ptr<const AttentionPlan> plan_attention_layout(const AttentionLayout& L, Device dev, const char* op) {
  auto p = std::make_shared<AttentionPlan>();
  p->max_row = check_attention_layout(L, op);
  p->device = dev;
  p->heads = L.heads; p->block_q = L.block_q; p->block_k = L.block_k; p->q_len = L.q_len; p->k_len = L.k_len;
  p->nqb = (L.q_len + L.block_q - 1) / L.block_q; p->nkb = (L.k_len + L.block_k - 1) / L.block_k; p->nnz = L.nnz;
  p->row_ptr = Tensor::empty({L.row_ptr_len}, DType::I32, dev);
  p->col_idx = Tensor::empty({L.nnz > 0 ? L.nnz : 1}, DType::I32, dev);  // one element: a valid pointer when empty
  if (dev.is_cpu()) {
    std::memcpy(p->row_ptr.data(), L.row_ptr, size_t(L.row_ptr_len) * 4);
    if (L.nnz > 0) std::memcpy(p->col_idx.data(), L.col_idx, size_t(L.nnz) * 4);
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(dev.index);
    void* stream = current_stream(dev)->cuda();
    cuda::attention_copy_h2d(p->row_ptr.data(), L.row_ptr, L.row_ptr_len * 4, stream);
    if (L.nnz > 0) cuda::attention_copy_h2d(p->col_idx.data(), L.col_idx, L.nnz * 4, stream);
#else
    throw Error(ErrCode::Unavailable, fmt("%s: this build has no CUDA support", op));
#endif
  }
  return p;
}

AttentionResult attention_block_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionPlan& L,
                                       const AttentionOptions& o) {
  const char* op = "attention.blockSparse";
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  LLMK_CHECK(L.device == q.device(), Device, "%s: the layout was planned for %s but q is on %s", op,
             L.device.str().c_str(), q.device().str().c_str());
  check_float_dtype(q, op, "q");
  LLMK_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), DType, "%s: q, k and v must have one dtype (got %s, %s, %s)",
             op, dtype_name(q.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  check_ndim(q, 4, op, "q [batch, seq, heads, headDim]");
  check_ndim(k, 4, op, "k [batch, seq, heads, headDim]");
  check_ndim(v, 4, op, "v [batch, seq, heads, headDim]");
  const int64_t B = q.dim(0), Nq = q.dim(1), Hq = q.dim(2), D = q.dim(3);
  const int64_t Nk = k.dim(1), Hkv = k.dim(2);
  LLMK_CHECK(k.shape() == v.shape(), Shape, "%s: k %s and v %s must have one shape", op, shape_str(k.shape()).c_str(),
             shape_str(v.shape()).c_str());
  LLMK_CHECK(k.dim(0) == B && k.dim(3) == D, Shape, "%s: q %s and k %s differ in batch or head size", op,
             shape_str(q.shape()).c_str(), shape_str(k.shape()).c_str());
  LLMK_CHECK(B >= 1 && Nq >= 1 && Nk >= 1 && Hq >= 1 && Hkv >= 1, Shape, "%s: empty dimensions in q %s or k %s", op,
             shape_str(q.shape()).c_str(), shape_str(k.shape()).c_str());
  LLMK_CHECK(Hq % Hkv == 0, Shape, "%s: query heads (%lld) must be a multiple of key/value heads (%lld)", op,
             (long long)Hq, (long long)Hkv);
  LLMK_CHECK(D >= 8 && D <= 256 && D % 8 == 0, Shape, "%s: head size %lld must be a multiple of 8 between 8 and 256", op,
             (long long)D);
  LLMK_CHECK(B <= 65535 && Hq <= 65535, Shape, "%s: batch (%lld) and query heads (%lld) must each be at most 65535", op,
             (long long)B, (long long)Hq);
  LLMK_CHECK(L.q_len == Nq && L.k_len == Nk, Shape,
             "%s: the layout is for qLen %lld, kLen %lld, but q has %lld and k %lld tokens", op, (long long)L.q_len,
             (long long)L.k_len, (long long)Nq, (long long)Nk);
  LLMK_CHECK(L.heads == 1 || L.heads == Hq, Shape, "%s: the per-head layout has %lld heads, q has %lld", op,
             (long long)L.heads, (long long)Hq);
  const float scale = check_attention_options(o, D, op);

  const Device dev = q.device();
  Tensor out = Tensor::empty({B, Nq, Hq, D}, q.dtype(), dev);
  Tensor lse;
  if (o.return_lse) lse = Tensor::empty({B, Hq, Nq}, DType::F32, dev);
  // The plan's arrays are inputs of this launch: order the current stream after their last use (the
  // stream contract, core/storage.h), as arg_tensor does for tensors given by JavaScript.
  const Tensor rp = L.row_ptr, ci = L.col_idx;
  rp.storage()->use_on(current_stream(dev));
  ci.storage()->use_on(current_stream(dev));

  AttnParams p;  // the sizes and options; data pointers are set per device below
  p.B = B; p.Nq = Nq; p.Nk = Nk; p.Hq = Hq; p.Hkv = Hkv; p.D = D; p.dtype = int(q.dtype());
  p.layout_heads = L.heads; p.nqb = L.nqb; p.nkb = L.nkb; p.nnz = L.nnz; p.max_row_nnz = L.max_row;
  p.block_q = L.block_q; p.block_k = L.block_k;
  p.scale = scale; p.causal = o.causal; p.win_left = o.win_left; p.win_right = o.win_right;
  p.softcap = float(o.softcap);
  if (dev.is_cpu()) {
    enqueue_cpu([p, q, k, v, out, lse, rp, ci]() mutable {
      p.q = q.data(); p.k = k.data(); p.v = v.data(); p.out = out.data();
      p.lse = lse.defined() ? lse.data_as<float>() : nullptr;
      p.row_ptr = rp.data_as<int32_t>(); p.col_idx = ci.data_as<int32_t>();
      cpu::attention_block_sparse(p);
    });
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(dev.index);
    void* stream = current_stream(dev)->cuda();
    p.q = q.data(); p.k = k.data(); p.v = v.data(); p.out = out.data();
    p.lse = lse.defined() ? lse.data_as<float>() : nullptr;
    p.row_ptr = rp.data_as<int32_t>(); p.col_idx = ci.data_as<int32_t>();
    p.err_flag = cuda_error_flag(dev.index);
    const int64_t wsn = cuda::attention_workspace_floats(p, o.force_path);
    Tensor ws;
    if (wsn > 0) ws = Tensor::empty({wsn}, DType::F32, dev);
    cuda::attention_block_sparse(p, wsn > 0 ? ws.data_as<float>() : nullptr, stream, o.force_path);
#else
    throw Error(ErrCode::Unavailable, "attention.blockSparse: this build has no CUDA support");
#endif
  }
  return {out, lse};
}

}  // namespace llmk::ops
