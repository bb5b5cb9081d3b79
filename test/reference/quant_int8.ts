// float64 reference of quant.matmul's int8 mode (MatMulNBits accuracy_level 4 semantics), written from the
// definition in the README. Never calls the library.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { abs, floor, fround, max, min, round } = Math;

/** Activation block length: the largest power of two ≤ 256 dividing the group (the group for 32…256). */
export function int8Block(groupSize: number): number {
  let b = 256;
  while (groupSize % b !== 0) b /= 2;
  return b;
}

/** Round half to even (what nearbyint does in the default rounding mode). */
function rint(v: number): number {
  return abs(v % 1) === 0.5 ? 2 * round(v / 2) : round(v);
}

export interface Int8Ref {
  /** The int8 algorithm carried out in float64 on the float32-computed xq and sa (float32 steps emulated with fround). */
  y: Float64Array;
  /** Per output: the bound on |int8 result − x·Wᵀ| from quantising x (Σ_blocks max|x|/254 · Σ_block |w|, the README's bound). */
  quantBound: Float64Array;
  /** Per output: the float32 rounding allowance of the kernel's sums ((blocks + 4) · 2^-23 · Σ of the magnitudes summed). */
  roundBound: Float64Array;
}

/**
 * x [m,k] (float32 values, act-order already applied), W given as codes [n*k], scales [n*G] (as stored,
 * float32 values), zeros [n*G] or null (8), bias [n] or null. Finite x only.
 */
export function int8LinearRef(x: ArrayLike<number>, codes: ArrayLike<number>, scales: ArrayLike<number>,
  zeros: ArrayLike<number> | null, m: number, n: number, k: number, groupSize: number,
  bias?: ArrayLike<number> | null): Int8Ref {
  const BA = int8Block(groupSize), NB = k / BA, G = k / groupSize;
  const f = fround;
  const xq = new Int32Array(m * k), sa = new Float64Array(m * NB), amaxs = new Float64Array(m * NB);
  for (let i = 0; i < m; i++)
    for (let b = 0; b < NB; b++) {
      let amax = 0;
      for (let c = b * BA; c < (b + 1) * BA; c++) amax = max(amax, abs(x[i * k + c]));
      const inv = amax > 0 ? f(127 / amax) : 0;
      sa[i * NB + b] = f(amax / 127);
      amaxs[i * NB + b] = amax;
      for (let c = b * BA; c < (b + 1) * BA; c++) xq[i * k + c] = max(-127, min(127, rint(f(x[i * k + c] * inv))));
    }
  const y = new Float64Array(m * n), quantBound = new Float64Array(m * n), roundBound = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0, qb = 0, mag = 0;
      for (let b = 0; b < NB; b++) {
        const g = floor((b * BA) / groupSize);
        const sw = scales[j * G + g], z = zeros ? zeros[j * G + g] : 8;
        let dot = 0, absw = 0, absq = 0;
        for (let c = b * BA; c < (b + 1) * BA; c++) {
          dot += xq[i * k + c] * (codes[j * k + c] - z);
          absw += abs(sw * (codes[j * k + c] - z));
          absq += abs(xq[i * k + c]);
        }
        s += sa[i * NB + b] * sw * dot;
        qb += (amaxs[i * NB + b] / 254) * absw;
        // The kernels scale Σ xq·code (codes 0…15) and −zero·Σxq apart and sum both: magnitudes ≤ (15 + z) · Σ|xq|.
        mag += sa[i * NB + b] * abs(sw) * (15 + z) * absq;
      }
      const bv = bias ? bias[j] : 0;
      y[i * n + j] = s + bv;
      quantBound[i * n + j] = qb;
      roundBound[i * n + j] = (NB + 4) * 2 ** -23 * (mag + abs(bv));
    }
  return { y, quantBound, roundBound };
}
