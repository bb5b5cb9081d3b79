// float16 / bfloat16 rounding written from IEEE 754 (round to nearest, ties to even), in float64.

// Bound once: under Jest each read of a global (Math, Number) costs ~0.3 µs, and these run per element.
const { abs, sign, max, floor, log2, fround } = Math;
const { isNaN: isNaNum, isFinite: isFiniteNum } = Number;
const INF = Infinity;

/** Value of the float16 nearest to x (ties to even); ±Inf past the largest finite half; NaN stays NaN. */
export function roundF16(x: number): number {
  if (isNaNum(x) || !isFiniteNum(x) || x === 0) return x;
  const a = abs(x);
  if (a >= 65520) return sign(x) * INF;
  // quantum: 2^(e-10) for normals (e >= -14), 2^-24 for subnormals
  const q = 2 ** (max(exponent(a), -14) - 10);
  return sign(x) * roundTiesEven(a / q) * q;
}

/** Value of the bfloat16 nearest to x (8-bit significand, float32 exponent range), rounded once from x. */
export function roundBF16(x: number): number {
  if (isNaNum(x) || !isFiniteNum(x) || x === 0) return x;
  const a = abs(x);
  if (a >= 2 ** 128 - 2 ** 119) return sign(x) * INF; // max bf16 + half an ulp rounds to even: Inf
  const q = 2 ** (max(exponent(a), -126) - 7);
  return sign(x) * roundTiesEven(a / q) * q;
}

/** floor(log2(a)) exactly (Math.log2 can be off by one near powers of two). */
function exponent(a: number): number {
  let e = floor(log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

function roundTiesEven(v: number): number {
  const f = floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function roundTo(dtype: string, x: number): number {
  if (dtype === 'float16') return roundF16(x);
  if (dtype === 'bfloat16') return roundBF16(x);
  if (dtype === 'float32') return fround(x);
  return x;
}
