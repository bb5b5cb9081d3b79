// float64 reference of block-sparse attention (docs/architecture.md §4.2), written from the math: the BSR layout
// is expanded into a dense boolean mask [Nq][Nk] per head (fine at test sizes), refined by the
// token-level causal / window rules, then plain softmax(scale·q·kᵀ (softcapped)) · v per row.
// Never calls the library.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { ceil, exp, floor, log, min, sqrt, tanh } = Math;
const INF = Infinity;

export interface RefLayout {
  blockQ: number; blockK: number; heads: number; perHead: boolean;
  rowPtr: Int32Array; colIdx: Int32Array;
}

export interface RefOptions {
  scale?: number;
  causal?: boolean;
  window?: { left?: number; right?: number };
  softcap?: number;
}

/** Dense [Nq·Nk] 0/1 mask of one head, from the BSR arrays alone. */
export function expandLayout(L: RefLayout, head: number, Nq: number, Nk: number): Uint8Array {
  const nQB = ceil(Nq / L.blockQ);
  const base = (L.perHead ? head : 0) * (nQB + 1);
  const m = new Uint8Array(Nq * Nk);
  for (let r = 0; r < nQB; r++) {
    for (let p = L.rowPtr[base + r]; p < L.rowPtr[base + r + 1]; p++) {
      const c = L.colIdx[p];
      for (let i = r * L.blockQ; i < min(Nq, (r + 1) * L.blockQ); i++)
        for (let j = c * L.blockK; j < min(Nk, (c + 1) * L.blockK); j++) m[i * Nk + j] = 1;
    }
  }
  return m;
}

/** Is key j visible to query i under the token rules (bottom-right aligned)? */
export function tokenVisible(i: number, j: number, Nq: number, Nk: number, o: RefOptions): boolean {
  const diag = i + Nk - Nq;
  if (o.causal && j > diag) return false;
  const left = o.window?.left, right = o.window?.right;
  if (left !== undefined && left !== INF && j < diag - left) return false;
  if (right !== undefined && right !== INF && j > diag + right) return false;
  return true;
}

/**
 * out[B,Nq,Hq,D] (float64) and lse[B,Hq,Nq] (natural log; −Inf for rows that see nothing, whose out is 0).
 * q, k, v are the (already dtype-rounded) inputs as numbers in bshd layout.
 */
export function attentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  B: number, Nq: number, Nk: number, Hq: number, Hkv: number, D: number, L: RefLayout, o: RefOptions = {},
): { out: Float64Array; lse: Float64Array } {
  const scale = o.scale ?? 1 / sqrt(D);
  const group = Hq / Hkv;
  const out = new Float64Array(B * Nq * Hq * D);
  const lse = new Float64Array(B * Hq * Nq);
  const s = new Float64Array(Nk);
  for (let h = 0; h < Hq; h++) {
    const mask = expandLayout(L, h, Nq, Nk);
    const hk = floor(h / group);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < Nq; i++) {
        let mx = -INF;
        const qo = ((b * Nq + i) * Hq + h) * D;
        for (let j = 0; j < Nk; j++) {
          s[j] = -INF;
          if (!mask[i * Nk + j] || !tokenVisible(i, j, Nq, Nk, o)) continue;
          const ko = ((b * Nk + j) * Hkv + hk) * D;
          let x = 0;
          for (let d = 0; d < D; d++) x += q[qo + d] * k[ko + d];
          x *= scale;
          if (o.softcap !== undefined && o.softcap > 0) x = o.softcap * tanh(x / o.softcap);
          s[j] = x;
          if (x > mx) mx = x;
        }
        const li = (b * Hq + h) * Nq + i;
        if (mx === -INF) { lse[li] = -INF; continue; }  // out stays 0
        let den = 0;
        for (let j = 0; j < Nk; j++) if (s[j] !== -INF) den += exp(s[j] - mx);
        lse[li] = mx + log(den);
        for (let j = 0; j < Nk; j++) {
          if (s[j] === -INF) continue;
          const w = exp(s[j] - mx) / den;
          const vo = ((b * Nk + j) * Hkv + hk) * D;
          for (let d = 0; d < D; d++) out[qo + d] += w * v[vo + d];
        }
      }
    }
  }
  return { out, lse };
}
