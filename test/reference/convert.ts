// Element conversion between dtypes, written from the definitions (exact BigInt arithmetic for
// integers): one round-to-nearest-even to floating types, truncation + saturation to integers
// (NaN -> 0), saturation between integer types.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { abs, fround, sign, trunc } = Math;
const isNaNum = Number.isNaN;
const INF = Infinity;
import { roundF16, roundBF16 } from './half';

export const INT_RANGE: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  int8: [-128n, 127n],
  uint8: [0n, 255n],
};

export const isIntDType = (d: string): boolean => d in INT_RANGE;

/** An integer rounded to nearest-even with `bits` significant bits (exact, any size). */
function roundIntToBits(v: bigint, bits: number): number {
  const neg = v < 0n;
  let a = neg ? -v : v;
  const len = a.toString(2).length;
  if (len > bits) {
    const shift = BigInt(len - bits);
    const q = a >> shift, rem = a - (q << shift), half = 1n << (shift - 1n);
    const up = rem > half || (rem === half && (q & 1n) === 1n);
    a = (q + (up ? 1n : 0n)) << shift;
  }
  const x = Number(a); // exact: at most `bits` (<= 24) significant bits
  return neg ? -x : x;
}

function saturate(v: bigint, dtype: string): bigint {
  const [lo, hi] = INT_RANGE[dtype];
  return v < lo ? lo : v > hi ? hi : v;
}

/** Value of `x` (a number for floating sources, a bigint for integer ones) converted to `to`. */
export function convertValue(x: number | bigint, to: string): number | bigint {
  if (typeof x === 'bigint') {
    if (isIntDType(to)) return saturate(x, to);
    if (to === 'float16') { const r = roundIntToBits(x, 11); return abs(r) >= 65520 ? sign(r) * INF : r; }
    return roundIntToBits(x, to === 'bfloat16' ? 8 : 24); // never overflows float32/bfloat16
  }
  if (isIntDType(to)) return isNaNum(x) ? 0n : saturate(clampToBigInt(x), to);
  if (to === 'float16') return roundF16(x);
  if (to === 'bfloat16') return roundBF16(x);
  return fround(x);
}

function clampToBigInt(x: number): bigint {
  if (x === INF) return 2n ** 64n;
  if (x === -INF) return -(2n ** 64n);
  return BigInt(trunc(x));
}

/** Integer addition with two's-complement wrap-around in `dtype`. */
export function addWrapping(a: bigint, b: bigint, dtype: string): bigint {
  const [lo, hi] = INT_RANGE[dtype];
  const m = hi - lo + 1n;
  return ((((a + b - lo) % m) + m) % m) + lo;
}
