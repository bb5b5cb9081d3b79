// float64 reference of the MoE expert layer (moe.experts), written from the math of issue 14:
//   y[t] = Σ_j w[t,j] · ( down_e · act(gateUp_e · x[t] + gateUpBias_e) + downBias_e ),  e = ids[t,j]
// with the intermediate act(...) rounded to x's dtype (as vLLM does). Never calls the library.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { PI, exp, max, min, sqrt, tanh } = Math;
import { roundTo } from './half';

export type Activation = 'swiglu' | 'swigluOai' | 'geglu' | 'gelu' | 'relu';
export type GateLayout = 'concat' | 'interleaved';

/** True for the gated activations (gateUp has 2·I rows). */
export function isGated(act: Activation): boolean { return act === 'swiglu' || act === 'swigluOai' || act === 'geglu'; }

const silu = (v: number) => v / (1 + exp(-v));
/** GELU, tanh approximation (as onnxruntime's MoE). */
export function geluTanh(v: number): number {
  return 0.5 * v * (1 + tanh(sqrt(2 / PI) * (v + 0.044715 * v * v * v)));
}

/** act(gate, up) for the gated activations; act(gate) for the ungated ones (up ignored). */
export function activate(act: Activation, gate: number, up: number): number {
  switch (act) {
    case 'swiglu': return silu(gate) * up;
    case 'geglu': return geluTanh(gate) * up;
    case 'swigluOai': {
      const g = min(gate, 7), u = max(-7, min(7, up));
      return g / (1 + exp(-1.702 * g)) * (u + 1);
    }
    case 'gelu': return geluTanh(gate);
    case 'relu': return max(0, gate);
  }
}

export interface ExpertsRefInput {
  x: ArrayLike<number>;          // [T, H], values already in x's dtype
  T: number; H: number; I: number;
  weights: ArrayLike<number>;    // [T, k]
  ids: ArrayLike<number>;        // [T, k] global ids
  k: number;
  gateUp: ArrayLike<number>;     // [E_local, (gated ? 2I : I), H] (dequantised values for INT4)
  down: ArrayLike<number>;       // [E_local, H, I]
  gateUpBias?: ArrayLike<number> | null;  // [E_local, rows]
  downBias?: ArrayLike<number> | null;    // [E_local, H]
  activation?: Activation;
  layout?: GateLayout;
  expertMap?: ArrayLike<number> | null;   // [E_global]: local index or −1
  dtype: string;                 // x's dtype: the intermediate is rounded to it
}

/** y [T, H] in float64 (not rounded to the output dtype). */
export function expertsRef(p: ExpertsRefInput): Float64Array {
  const act = p.activation ?? 'swiglu', layout = p.layout ?? 'concat';
  const { T, H, I, k } = p;
  const gated = isGated(act), rows = gated ? 2 * I : I;
  const y = new Float64Array(T * H);
  const h = new Float64Array(I);
  const proj = (e: number, r: number, t: number) => {
    let s = p.gateUpBias ? p.gateUpBias[e * rows + r] : 0;
    const w = e * rows * H + r * H;
    for (let c = 0; c < H; c++) s += p.gateUp[w + c] * p.x[t * H + c];
    return s;
  };
  for (let t = 0; t < T; t++)
    for (let j = 0; j < k; j++) {
      const g = p.ids[t * k + j];
      const e = p.expertMap ? p.expertMap[g] : g;
      if (e < 0) continue;
      const wt = p.weights[t * k + j];
      for (let i = 0; i < I; i++) {
        let gate: number, up = 0;
        if (!gated) gate = proj(e, i, t);
        else if (layout === 'concat') { gate = proj(e, i, t); up = proj(e, I + i, t); }
        else { gate = proj(e, 2 * i, t); up = proj(e, 2 * i + 1, t); }
        h[i] = roundTo(p.dtype, activate(act, gate, up));
      }
      for (let o = 0; o < H; o++) {
        let s = p.downBias ? p.downBias[e * H + o] : 0;
        const w = e * H * I + o * I;
        for (let i = 0; i < I; i++) s += p.down[w + i] * h[i];
        y[t * H + o] += wt * s;
      }
    }
  return y;
}
