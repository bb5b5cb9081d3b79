// cast / full / add element semantics on every device against the exact reference in
// test/reference/convert.ts: every (from, to) dtype pair, seeded random values plus the edge cases
// (NaN, ±Inf, saturation bounds, integers that need more bits than the destination, rounding ties
// that a conversion through float32 or float64 would round twice).
import { add, full, tensor, DTYPES, type DType, type DeviceName, type Tensor } from '../ts';
import { describeDevices, rng, SEED } from './helpers';
import { addWrapping, convertValue, INT_RANGE, isIntDType } from './reference/convert';

const P = (e: number): bigint => 2n ** BigInt(e);

/** Integers whose conversion is easy to get wrong, plus seeded random ones of every magnitude. */
function intValues(r: () => number): bigint[] {
  const v: bigint[] = [0n, 1n, -1n, 127n, 128n, -129n, 255n, 256n, 65504n, 65519n, 65520n, -65520n,
    P(24) + 1n, P(24) + 3n * P(16) - 1n, -(P(24) + 3n * P(16) - 1n), P(31) - 1n, -P(31), P(31), -P(31) - 1n,
    P(53) + 1n, P(62) + P(38) + 1n, -(P(62) + P(38) + 1n), P(63) - 1n, -P(63), P(63) - P(39), P(63) - P(39) - 1n];
  for (let i = 0; i < 200; i++) {
    const bits = 1 + Math.floor(r() * 63);
    let x = 0n;
    for (let b = 0; b < bits; b += 16) x = (x << 16n) | BigInt(Math.floor(r() * 65536));
    x &= P(bits) - 1n;
    v.push(r() < 0.5 ? -x : x);
  }
  return v;
}

function floatValues(r: () => number): number[] {
  const v = [0, -0, 0.7, -0.7, 1.5, -2.5, 127.9, -128.9, 255.5, 256, -1, 65504, 65519, 65520, 1 + 2 ** -11,
    1 + 3 * 2 ** -11, 2 ** 31 - 128, 2 ** 31, -(2 ** 31), -(2 ** 31) - 256, 2 ** 63, -(2 ** 63), 2 ** 63 - 2 ** 39,
    3e38, -3.4e38, 1e-40, -1e-45, 6e-8, 2 ** -25, NaN, Infinity, -Infinity];
  for (let i = 0; i < 200; i++) v.push((r() - 0.5) * 2 ** (Math.floor(r() * 140) - 70));
  return v;
}

/** A source tensor of `dtype` holding (a rounding of) the candidate values, and its exact values. */
function source(dtype: DType, r: () => number, device: DeviceName): { t: Tensor; vals: Array<number | bigint> } {
  if (isIntDType(dtype)) {
    const vals = intValues(r).map((x) => convertValue(x, dtype) as bigint);
    const arr = dtype === 'int64' ? BigInt64Array.from(vals)
      : dtype === 'int32' ? Int32Array.from(vals, Number) : dtype === 'int8' ? Int8Array.from(vals, Number) : Uint8Array.from(vals, Number);
    return { t: tensor(arr, { device }), vals };
  }
  const t = tensor(Float32Array.from(floatValues(r)), { dtype, device });
  return { t, vals: Array.from(t.toArraySync() as Float32Array) };
}

function same(got: number | bigint, want: number | bigint): boolean {
  if (typeof want === 'bigint') return BigInt(got) === want;
  return Object.is(got, want) || (Number.isNaN(got as number) && Number.isNaN(want));
}

function expectValues(t: Tensor, want: Array<number | bigint>, what: string): void {
  const got = Array.from(t.toArraySync() as ArrayLike<number | bigint>);
  const bad: string[] = [];
  want.forEach((w, i) => { if (!same(got[i], w)) bad.push(`#${i}: got ${got[i]} want ${w}`); });
  expect({ what, bad: bad.slice(0, 5), count: bad.length }).toEqual({ what, bad: [], count: 0 });
}

describeDevices(`element conversion (seed ${SEED})`, (device) => {
  for (const from of DTYPES) {
    it(`cast from ${from} to every dtype`, () => {
      const { t, vals } = source(from, rng(SEED + from.length), device);
      try {
        for (const to of DTYPES) {
          using c = t.cast(to);
          expectValues(c, vals.map((x) => convertValue(x, to)), `${from} -> ${to}`);
        }
      } finally { t.dispose(); }
    });
  }

  it('full() rounds its value once, saturates integers and maps NaN to 0', () => {
    const values = [1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -30, 2 ** 24 + 1, -(2 ** 24 + 3), 65519.99, 1e300, -1e300,
      3e9, -3e9, 1e20, -1e20, 2.9, -2.9, 1e-300, NaN, Infinity, -Infinity];
    for (const dtype of DTYPES) {
      for (const v of values) {
        using f = full([3], v, { dtype, device });
        expectValues(f, [0, 1, 2].map(() => convertValue(v, dtype)), `full(${v}) ${dtype}`);
      }
    }
  });

  it('tensor() from plain numbers truncates toward zero for integer dtypes', () => {
    const v = [2.9, -2.9, 0.5, -0.5, 127, -128, 2 ** 53];
    for (const dtype of ['int64', 'int32', 'int8'] as const) {
      const vals = dtype === 'int64' ? v : v.slice(0, 6);
      using t = tensor(vals, { dtype, device });
      expectValues(t, vals.map((x) => BigInt(Math.trunc(x))), `tensor(numbers) ${dtype}`);
    }
  });

  it('integer add wraps around', () => {
    const r = rng(SEED + 99);
    for (const dtype of Object.keys(INT_RANGE) as DType[]) {
      const [lo, hi] = INT_RANGE[dtype];
      const pool = intValues(r);
      const pick = (): bigint => convertValue(pool[Math.floor(r() * pool.length)], dtype) as bigint;
      const a = [hi, lo, hi, lo, 0n, ...Array.from({ length: 300 }, pick)];
      const b = [1n, -1n, hi, lo, 0n, ...Array.from({ length: 300 }, pick)];
      if (dtype === 'uint8') { b[1] = 255n; b[3] = 0n; }
      const make = (v: bigint[]): Tensor => tensor(dtype === 'int64' ? BigInt64Array.from(v) : dtype === 'int32' ? Int32Array.from(v, Number)
        : dtype === 'int8' ? Int8Array.from(v, Number) : Uint8Array.from(v, Number), { device });
      using ta = make(a), tb = make(b), s = add(ta, tb);
      expectValues(s, a.map((x, i) => addWrapping(x, b[i], dtype)), `add ${dtype}`);
    }
  });
});
