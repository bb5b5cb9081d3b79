// float64 references of the MoE routing ops, written from the math of docs/architecture.md §4.1 and the
// routing rules documented in ts/moe.ts. They never call the library.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { ceil, exp, floor, min } = Math;
const isNaNum = Number.isNaN;
const INF = Infinity;

export interface TopkRefOptions {
  k: number;
  scoring?: 'softmax' | 'sigmoid';
  renormalize?: boolean;
  bias?: ArrayLike<number>;
  groups?: { count: number; topk: number };
  scale?: number;
}

export interface TopkRef {
  weights: Float64Array; // [T,k]
  ids: Int32Array;       // [T,k]
  keys: Float64Array;    // [T,E] selection keys (NaN for NaN logits), for tie checks
  excluded: Uint8Array;  // [T,E] 1 where grouped routing removed the expert
  groupScores: Float64Array; // [T,G] group scores of grouped routing (G = 1 and unused without groups)
}

/** Ranking: NaN lowest; otherwise larger key first; equal keys: lower index first. */
export function better(ka: number, ia: number, kb: number, ib: number): boolean {
  const na = isNaNum(ka), nb = isNaNum(kb);
  if (na || nb) return na && nb ? ia < ib : nb;
  return ka > kb || (ka === kb && ia < ib);
}

function scoresOf(x: ArrayLike<number>, o: TopkRefOptions): number[] {
  const E = x.length;
  if ((o.scoring ?? 'softmax') === 'sigmoid') {
    return Array.from(x, (v) => (isNaNum(v) ? 0 : 1 / (1 + exp(-v))));
  }
  let m = -INF;
  for (let e = 0; e < E; e++) if (!isNaNum(x[e]) && x[e] > m) m = x[e];
  const u = Array.from(x, (v) => {
    if (isNaNum(v)) return 0;
    if (m === INF || m === -INF) return v === m ? 1 : 0;
    return exp(v - m);
  });
  const s = u.reduce((a, b) => a + b, 0);
  return u.map((v) => (s > 0 ? v / s : 0));
}

/** Group scores of one row's keys: the best key of each group, or the sum of the best two when biased. */
function groupScoresRef(key: number[], G: number, biased: boolean): number[] {
  const gs = key.length / G, gscore: number[] = [];
  for (let g = 0; g < G; g++) {
    const idx = Array.from({ length: gs }, (_, i) => g * gs + i);
    idx.sort((a, b) => (better(key[a], a, key[b], b) ? -1 : 1));
    gscore.push(biased && gs >= 2 ? key[idx[0]] + key[idx[1]] : key[idx[0]]);
  }
  return gscore;
}

/** Groups best first by score (NaN last, lower index first on ties); grouped routing keeps the first `topk`. */
export function groupOrderRef(gscore: number[]): number[] {
  return gscore.map((_, g) => g).sort((a, b) => (better(gscore[a], a, gscore[b], b) ? -1 : 1));
}

/** The k best experts of one row's keys among the experts of the kept groups (all when `kept` is undefined). */
export function pickRef(key: number[], k: number, G: number, kept?: Set<number>): number[] {
  const E = key.length, gs = E / G;
  const cand = Array.from({ length: E }, (_, e) => e).filter((e) => !kept || kept.has(floor(e / gs)));
  cand.sort((a, b) => (better(key[a], a, key[b], b) ? -1 : 1));
  return cand.slice(0, k);
}

/** moe.topk over T rows of E logits (already rounded to the logits' dtype). */
export function topkRef(logits: ArrayLike<number>, T: number, E: number, o: TopkRefOptions): TopkRef {
  const k = o.k, renorm = o.renormalize ?? true, scale = o.scale ?? 1, G = o.groups?.count ?? 1;
  const weights = new Float64Array(T * k), ids = new Int32Array(T * k);
  const keys = new Float64Array(T * E), excluded = new Uint8Array(T * E), groupScores = new Float64Array(T * G);
  for (let t = 0; t < T; t++) {
    const x = Array.from({ length: E }, (_, e) => logits[t * E + e]);
    const sc = scoresOf(x, o);
    const key = x.map((v, e) => (isNaNum(v) ? NaN : o.bias ? sc[e] + o.bias[e] : v));
    let kept: Set<number> | undefined;
    if (o.groups) {
      const gscore = groupScoresRef(key, G, !!o.bias);
      gscore.forEach((v, g) => { groupScores[t * G + g] = v; });
      kept = new Set(groupOrderRef(gscore).slice(0, o.groups.topk));
    }
    const chosen = pickRef(key, k, G, kept);
    let sum = 0;
    for (let j = 0; j < k; j++) { ids[t * k + j] = chosen[j]; sum += sc[chosen[j]]; }
    for (let j = 0; j < k; j++) {
      let w = sc[chosen[j]];
      if (renorm && sum > 0) w /= sum;
      weights[t * k + j] = w * scale;
    }
    for (let e = 0; e < E; e++) {
      keys[t * E + e] = key[e];
      excluded[t * E + e] = kept && !kept.has(floor(e / (E / G))) ? 1 : 0;
    }
  }
  return { weights, ids, keys, excluded, groupScores };
}

/** moe.align: stable grouping of the n = ids.length slots by expert, runs padded to blockSize. */
export function alignRef(ids: ArrayLike<number>, E: number, bs: number) {
  const n = ids.length;
  const cap = n + min(E, n) * (bs - 1);
  const counts = new Array<number>(E).fill(0);
  for (let i = 0; i < n; i++) counts[ids[i]]++;
  const start: number[] = [0];
  for (let e = 0; e < E; e++) start.push(start[e] + ceil(counts[e] / bs) * bs);
  const sortedIds = new Int32Array(cap).fill(n);
  const cursor = start.slice(0, E);
  for (let i = 0; i < n; i++) sortedIds[cursor[ids[i]]++] = i;
  const blockExperts = new Int32Array(floor(cap / bs)).fill(-1);
  for (let e = 0; e < E; e++) for (let b = start[e] / bs; b < start[e + 1] / bs; b++) blockExperts[b] = e;
  return { sortedIds, blockExperts, numPadded: start[E] };
}

/** moe.permute: rows of x [T,H] in stable expert order of the slots; rowMap[slot] = output row. */
export function permuteRef(x: ArrayLike<number>, T: number, H: number, ids: ArrayLike<number>, k: number, E: number) {
  const n = T * k;
  const slots = Array.from({ length: n }, (_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b);
  const out = new Float64Array(n * H), rowMap = new Int32Array(n);
  slots.forEach((s, r) => {
    rowMap[s] = r;
    const t = floor(s / k);
    for (let h = 0; h < H; h++) out[r * H + h] = x[t * H + h];
  });
  const offsets = new Int32Array(E + 1);
  for (let i = 0; i < n; i++) offsets[ids[i] + 1]++;
  for (let e = 0; e < E; e++) offsets[e + 1] += offsets[e];
  return { out, rowMap, offsets };
}

/** moe.combine: out[t] = Σ_j w[t,j] · y[rowMap[t,j]]. */
export function combineRef(y: ArrayLike<number>, H: number, w: ArrayLike<number>, rowMap: ArrayLike<number>, T: number, k: number) {
  const out = new Float64Array(T * H);
  for (let t = 0; t < T; t++)
    for (let j = 0; j < k; j++)
      for (let h = 0; h < H; h++) out[t * H + h] += w[t * k + j] * y[rowMap[t * k + j] * H + h];
  return out;
}

export function countsRef(ids: ArrayLike<number>, E: number): Int32Array {
  const c = new Int32Array(E);
  for (let i = 0; i < ids.length; i++) c[ids[i]]++;
  return c;
}

/** Switch-Transformer auxiliary loss E · Σ_e (count_e / (T·k)) · mean_t probs[t,e]; 0 when T = 0. */
export function lbLossRef(probs: ArrayLike<number>, T: number, E: number, ids: ArrayLike<number>, k: number): number {
  if (T === 0) return 0;
  const c = countsRef(ids, E);
  let loss = 0;
  for (let e = 0; e < E; e++) {
    let p = 0;
    for (let t = 0; t < T; t++) p += probs[t * E + e];
    loss += (c[e] / (T * k)) * (p / T);
  }
  return E * loss;
}
