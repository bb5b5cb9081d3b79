#include "attention.h"

#include <cmath>
#include <cstring>

#include "../core/cuda_runtime.h"
#include "../core/stream.h"
#include "../cpu/attention.h"
#ifdef LLMK_WITH_CUDA
#include "../cuda/attention.h"
#endif

namespace llmk::ops {

int64_t check_attention_layout(const AttentionLayout& L, const char* op) {
  LLMK_CHECK(L.block_q == 64 || L.block_q == 128, Arg, "%s: layout blockQ must be 64 or 128, got %lld", op,
             (long long)L.block_q);
  LLMK_CHECK(L.block_k == 64 || L.block_k == 128, Arg, "%s: layout blockK must be 64 or 128, got %lld", op,
             (long long)L.block_k);
  LLMK_CHECK(L.q_len >= 1 && L.k_len >= 1, Arg, "%s: layout qLen and kLen must be positive", op);
  LLMK_CHECK(L.heads >= 1, Arg, "%s: layout heads must be positive", op);
  LLMK_CHECK(L.q_len <= (int64_t(1) << 53) && L.k_len <= (int64_t(1) << 53), Shape,
             "%s: layout qLen and kLen must be at most 2^53", op);
  const int64_t nqb = (L.q_len + L.block_q - 1) / L.block_q, nkb = (L.k_len + L.block_k - 1) / L.block_k;
  // Division, not heads * (nqb + 1): that product can wrap around for hostile sizes and let a short
  // rowPtr through (the loops below would then read past its end).
  LLMK_CHECK(L.row_ptr != nullptr && L.row_ptr_len % L.heads == 0 && L.row_ptr_len / L.heads == nqb + 1, Shape,
             "%s: layout rowPtr has %lld entries, %lld head(s) x (nQB + 1 = %lld) expected", op, (long long)L.row_ptr_len,
             (long long)L.heads, (long long)(nqb + 1));
  LLMK_CHECK(L.nnz >= 0 && L.nnz < (int64_t(1) << 31) && (L.nnz == 0 || L.col_idx != nullptr), Shape,
             "%s: layout colIdx has an invalid length %lld", op, (long long)L.nnz);
  LLMK_CHECK(L.row_ptr[0] == 0, Index, "%s: layout rowPtr[0] must be 0, got %d", op, L.row_ptr[0]);
  int64_t max_row = 0;
  for (int64_t h = 0; h < L.heads; h++) {
    const int32_t* rp = L.row_ptr + h * (nqb + 1);
    if (h > 0)
      LLMK_CHECK(rp[0] == rp[-1], Index, "%s: layout head %lld's rowPtr must start where head %lld's ends", op,
                 (long long)h, (long long)(h - 1));
    for (int64_t r = 0; r < nqb; r++) {
      const int64_t a = rp[r], b = rp[r + 1];
      LLMK_CHECK(a <= b && b <= L.nnz, Index,
                 "%s: layout rowPtr must be non-decreasing and at most nnz = %lld (head %lld row %lld: %lld -> %lld)", op,
                 (long long)L.nnz, (long long)h, (long long)r, (long long)a, (long long)b);
      max_row = b - a > max_row ? b - a : max_row;
      for (int64_t p = a; p < b; p++) {
        const int64_t c = L.col_idx[p];
        LLMK_CHECK(c >= 0 && c < nkb, Index, "%s: layout colIdx[%lld] = %lld is out of range [0, %lld)", op,
                   (long long)p, (long long)c, (long long)nkb);
        LLMK_CHECK(p == a || c > L.col_idx[p - 1], Index,
                   "%s: layout column indices of head %lld row %lld must be sorted and unique", op, (long long)h,
                   (long long)r);
      }
    }
  }
  LLMK_CHECK(L.row_ptr[L.row_ptr_len - 1] == L.nnz, Index, "%s: layout rowPtr must end at nnz = %lld", op,
             (long long)L.nnz);
  return max_row;
}

AttentionResult attention_block_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& L,
                                       const AttentionOptions& o) {
  const char* op = "attention.blockSparse";
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  check_float_dtype(q, op, "q");
  LLMK_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), DType, "%s: q, k, v dtypes differ (%s, %s, %s)", op,
             dtype_name(q.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  check_ndim(q, 4, op, "q");
  check_ndim(k, 4, op, "k");
  check_ndim(v, 4, op, "v");
  const int64_t B = q.dim(0), Nq = q.dim(1), Hq = q.dim(2), D = q.dim(3);
  const int64_t Nk = k.dim(1), Hkv = k.dim(2);
  LLMK_CHECK(k.shape() == v.shape(), Shape, "%s: k %s and v %s shapes differ", op, shape_str(k.shape()).c_str(),
             shape_str(v.shape()).c_str());
  LLMK_CHECK(k.dim(0) == B && k.dim(3) == D, Shape, "%s: q is %s but k is %s (batch and head size must match)", op,
             shape_str(q.shape()).c_str(), shape_str(k.shape()).c_str());
  LLMK_CHECK(Hkv >= 1 && Hq >= 1 && Hq % Hkv == 0, Shape, "%s: query heads (%lld) must be a multiple of KV heads (%lld)",
             op, (long long)Hq, (long long)Hkv);
  LLMK_CHECK(D >= 8 && D <= 256 && D % 8 == 0, Shape, "%s: head size D = %lld must be a multiple of 8 in [8, 256]", op,
             (long long)D);
  LLMK_CHECK(B >= 1 && Nq >= 1 && Nk >= 1, Shape, "%s: batch and sequence lengths must be positive", op);
  LLMK_CHECK(B <= 65535 && Hq <= 65535, Shape, "%s: batch (%lld) and query heads (%lld) must each be at most 65535", op,
             (long long)B, (long long)Hq);
  LLMK_CHECK(L.q_len == Nq && L.k_len == Nk, Shape, "%s: layout is for qLen %lld, kLen %lld but q has %lld and k %lld tokens",
             op, (long long)L.q_len, (long long)L.k_len, (long long)Nq, (long long)Nk);
  LLMK_CHECK(L.heads == 1 || L.heads == Hq, Shape, "%s: per-head layout has %lld heads, q has %lld", op,
             (long long)L.heads, (long long)Hq);
  const int64_t max_row = check_attention_layout(L, op);
  const double scale = o.has_scale ? o.scale : 1.0 / std::sqrt(double(D));
  LLMK_CHECK(std::isfinite(scale) && std::isfinite(float(scale)), Arg, "%s: scale must be a finite float32 number", op);
  LLMK_CHECK(std::isfinite(o.softcap) && o.softcap >= 0, Arg, "%s: softcap must be a finite number >= 0", op);
  LLMK_CHECK(o.win_left >= -1 && o.win_right >= -1, Arg, "%s: window bounds must be >= 0 (or unbounded)", op);

  const Device dev = q.device();
  const int64_t nqb = (Nq + L.block_q - 1) / L.block_q, nkb = (Nk + L.block_k - 1) / L.block_k;
  Tensor out = Tensor::empty({B, Nq, Hq, D}, q.dtype(), dev);
  Tensor lse;
  if (o.return_lse) lse = Tensor::empty({B, Hq, Nq}, DType::F32, dev);
  Tensor rp = Tensor::empty({L.row_ptr_len}, DType::I32, dev);
  Tensor ci = Tensor::empty({L.nnz > 0 ? L.nnz : 1}, DType::I32, dev);

  AttnParams p;  // the sizes and options; data pointers are set per device below
  p.B = B; p.Nq = Nq; p.Nk = Nk; p.Hq = Hq; p.Hkv = Hkv; p.D = D; p.dtype = int(q.dtype());
  p.layout_heads = L.heads; p.nqb = nqb; p.nkb = nkb; p.nnz = L.nnz; p.max_row_nnz = max_row;
  p.block_q = L.block_q; p.block_k = L.block_k;
  p.scale = float(scale); p.causal = o.causal; p.win_left = o.win_left; p.win_right = o.win_right;
  p.softcap = float(o.softcap);
  if (dev.is_cpu()) {
    std::memcpy(rp.data(), L.row_ptr, size_t(L.row_ptr_len) * 4);
    if (L.nnz > 0) std::memcpy(ci.data(), L.col_idx, size_t(L.nnz) * 4);
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
    cuda::attention_copy_h2d(rp.data(), L.row_ptr, L.row_ptr_len * 4, stream);
    if (L.nnz > 0) cuda::attention_copy_h2d(ci.data(), L.col_idx, L.nnz * 4, stream);
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
