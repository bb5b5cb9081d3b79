// Block-sparse attention forward on the CPU: each batch entry is one sequence of the shared attention
// core (attention_core.h), with the BSR layout choosing the key blocks of each query block row.
#include "attention.h"

#include <cstddef>
#include <vector>

#include "attention_core.h"

namespace llmk::cpu {

void attention_block_sparse(const AttnParams& p) {
  std::vector<AttnSeq> seqs(size_t(p.B));
  for (int64_t b = 0; b < p.B; b++) {
    AttnSeq& s = seqs[size_t(b)];
    s.q0 = b * p.Nq; s.nq = p.Nq; s.k0 = b * p.Nk; s.nk = p.Nk;
    s.lse0 = b * p.Hq * p.Nq;
  }
  AttnCoreArgs a;
  a.dtype = p.dtype; a.Hq = p.Hq; a.Hkv = p.Hkv; a.D = p.D;
  a.q = p.q; a.out = p.out; a.lse = p.lse; a.lse_hstride = p.Nq;
  a.k = p.k; a.v = p.v;
  a.seqs = seqs.data(); a.nseq = p.B;
  a.causal = p.causal; a.win_left = p.win_left; a.win_right = p.win_right;
  a.scale = p.scale; a.softcap = p.softcap;
  a.block_q = p.block_q; a.block_k = p.block_k;
  a.row_ptr = p.row_ptr; a.col_idx = p.col_idx;
  a.layout_heads = p.layout_heads; a.nqb = p.nqb; a.nkb = p.nkb; a.nnz = p.nnz;
  attention_core(a);
}

}  // namespace llmk::cpu
