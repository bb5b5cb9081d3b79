// float64 / exact-integer references for the collectives and the tensor-parallel layers, written
// from the math (they never call the library).

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { PI, cos, floor, log, max, min, sqrt } = Math;

export type RefOp = 'sum' | 'prod' | 'max' | 'min' | 'avg';
export type RefDType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'int8' | 'uint8';

const INT_BITS: Record<string, { bits: number; signed: boolean }> = {
  int8: { bits: 8, signed: true }, uint8: { bits: 8, signed: false }, int32: { bits: 32, signed: true }, int64: { bits: 64, signed: true },
};

function wrap(v: bigint, dtype: RefDType): bigint {
  const { bits, signed } = INT_BITS[dtype];
  return signed ? BigInt.asIntN(bits, v) : BigInt.asUintN(bits, v);
}

/**
 * Element-wise reduction of the ranks' inputs. Floating types: float64 math (avg = sum / p).
 * Integers: exact, wrapping in the type's width for sum and prod (two's complement), avg = the
 * wrapped sum divided by p truncated toward zero, as NCCL and the local backend define them.
 */
export function reduce(op: RefOp, dtype: RefDType, inputs: ArrayLike<number | bigint>[]): (number | bigint)[] {
  const p = inputs.length, n = inputs[0].length;
  const out: (number | bigint)[] = new Array(n);
  if (dtype in INT_BITS) {
    for (let i = 0; i < n; i++) {
      let acc = BigInt(inputs[0][i]);
      for (let s = 1; s < p; s++) {
        const x = BigInt(inputs[s][i]);
        switch (op) {
          case 'sum': case 'avg': acc = wrap(acc + x, dtype); break;
          case 'prod': acc = wrap(acc * x, dtype); break;
          case 'max': acc = x > acc ? x : acc; break;
          case 'min': acc = x < acc ? x : acc; break;
        }
      }
      if (op === 'avg') acc = acc / BigInt(p); // BigInt division truncates toward zero
      out[i] = dtype === 'int64' ? acc : Number(acc);
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    let acc = Number(inputs[0][i]);
    for (let s = 1; s < p; s++) {
      const x = Number(inputs[s][i]);
      switch (op) {
        case 'sum': case 'avg': acc += x; break;
        case 'prod': acc *= x; break;
        case 'max': acc = max(acc, x); break;
        case 'min': acc = min(acc, x); break;
      }
    }
    out[i] = op === 'avg' ? acc / p : acc;
  }
  return out;
}

/** Concatenation of the ranks' inputs in rank order. */
export function allGather(inputs: ArrayLike<number | bigint>[]): (number | bigint)[] {
  const out: (number | bigint)[] = [];
  for (const x of inputs) for (let i = 0; i < x.length; i++) out.push(x[i]);
  return out;
}

/** Chunk `rank` of the reduction. */
export function reduceScatter(op: RefOp, dtype: RefDType, inputs: ArrayLike<number | bigint>[], rank: number): (number | bigint)[] {
  const r = reduce(op, dtype, inputs);
  const m = r.length / inputs.length;
  return r.slice(rank * m, (rank + 1) * m);
}

/** y[M,N] = x[M,K] · W[N,K]ᵀ + b[N], in float64. */
export function linear(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, M: number, N: number, K: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = b ? Number(b[n]) : 0;
      for (let k = 0; k < K; k++) acc += Number(x[m * K + k]) * Number(w[n * K + k]);
      y[m * N + n] = acc;
    }
  }
  return y;
}

/** ‖a − b‖ / ‖b‖ (‖a − b‖ when b = 0). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Number(a[i]) - Number(b[i]);
    num += d * d;
    den += Number(b[i]) * Number(b[i]);
  }
  return den === 0 ? sqrt(num) : sqrt(num / den);
}

/** Seeded generator for test inputs (mulberry32, shared with the other suites). */
export { rng } from './random';

export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = max(r(), 1e-12), v = r();
    out[i] = scale * sqrt(-2 * log(u)) * cos(2 * PI * v);
  }
  return out;
}

/** Random values covering the whole range of an integer type (so that sum and prod wrap). */
export function randInt(r: () => number, dtype: RefDType, n: number): Int8Array | Uint8Array | Int32Array | BigInt64Array {
  switch (dtype) {
    case 'int8': return Int8Array.from({ length: n }, () => floor(r() * 256) - 128);
    case 'uint8': return Uint8Array.from({ length: n }, () => floor(r() * 256));
    case 'int32': return Int32Array.from({ length: n }, () => (floor(r() * 4294967296) | 0));
    default: return BigInt64Array.from({ length: n }, () => BigInt.asIntN(64, (BigInt(floor(r() * 4294967296)) << 32n) | BigInt(floor(r() * 4294967296))));
  }
}
