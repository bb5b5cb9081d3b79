import { add, matmul, tensor, type DeviceName } from '../ts';
import { describeDevices, relL2, rng, randnArray, SEED, setEnv, tol } from './helpers';
import { roundTo } from './reference/half';
import { matmulRef } from './reference/matmul';

describeDevices(`add (seed ${SEED})`, (device) => {
  it.each(['float32', 'float16', 'bfloat16'] as const)('%s matches the float64 sum rounded to the dtype', async (dtype) => {
    const r = rng(SEED);
    const n = 10007;
    const a = randnArray(n, r), b = randnArray(n, r);
    using ta = tensor(a, { dtype, device }), tb = tensor(b, { dtype, device });
    using out = add(ta, tb);
    const got = await out.toArray();
    const ref = Array.from({ length: n }, (_, i) => roundTo(dtype, roundTo(dtype, a[i]) + roundTo(dtype, b[i])));
    expect(relL2(got as Float32Array, ref)).toBe(0);
  });
  it('adds integers exactly (int32 wraps like C)', async () => {
    using a = tensor(Int32Array.from([1, -5, 2147483647]), { device });
    using b = tensor(Int32Array.from([2, 5, 1]), { device });
    using c = add(a, b);
    expect(Array.from((await c.toArray()) as ArrayLike<number>)).toEqual([3, 0, -2147483648]);
  });
});

async function checkMatmul(device: DeviceName, dtype: 'float32' | 'float16' | 'bfloat16', M: number, N: number, K: number) {
  const r = rng(SEED + M * 7 + N * 13 + K);
  const a = randnArray(M * K, r), b = randnArray(K * N, r);
  using ta = tensor(a, { dtype, device, shape: [M, K] }), tb = tensor(b, { dtype, device, shape: [K, N] });
  using out = matmul(ta, tb);
  expect(out.shape).toEqual([M, N]);
  const got = await out.toArray();
  const ref = matmulRef(a.map((x) => roundTo(dtype, x)), b.map((x) => roundTo(dtype, x)), M, N, K);
  if (K === 0) expect(Array.from(got as Float32Array).every((x) => x === 0)).toBe(true);
  else expect(relL2(got as Float32Array, ref)).toBeLessThan(tol(dtype));
}

describeDevices(`matmul (seed ${SEED})`, (device) => {
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [64, 64, 64], [65, 33, 130], [17, 300, 513], [0, 4, 4], [4, 0, 4], [4, 4, 0]];
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it.each(shapes)(`${dtype} M=%d N=%d K=%d matches the float64 reference`, (M, N, K) => checkMatmul(device, dtype, M, N, K));
  }
});

// The CPU kernel's edges: streaming path (M <= 4: column tasks of N/threads capped at 4096, 8 rows of B per step, odd K and column
// tails), small-M path (M <= 16, slivers of 4 rows, 64-column tiles on AVX-512, 256-column tasks; float32 B read
// in place, or packed with AVX2), the 6x64 / 6x16 / 4x8 register tiles (row and column tails), A blocks of 128 rows (126 in
// slivers of 6), depth blocks of 256 (C accumulated in the output across them), column tasks of up to 2048 and
// row tasks split per thread (one past each), B packed (M >= 32) or read in place, K = 0, N = 1. Run for every
// instruction-set variant the CPU has (LLMK_CPU_MATMUL_ISA picks a lesser one; read per call).
const cpuShapes: [number, number, number][] = [
  [1, 4096, 64], [1, 300, 257], [2, 65, 129], [3, 64, 128], [4, 63, 300], [1, 1, 300], [1, 5, 0],
  [3, 47, 131], [2, 1030, 9], [4, 2049, 5], [1, 7, 3], [1, 8200, 3],
  [5, 33, 7], [8, 32, 128], [9, 31, 1], [13, 17, 129], [31, 100, 40], [32, 256, 128], [40, 70, 200],
  [16, 70, 129], [12, 530, 520], [7, 256, 300], [17, 65, 33], [21, 40, 20], [97, 257, 129], [129, 33, 130], [200, 520, 300], [40, 3, 0], [100, 1, 50],
  [127, 65, 257], [70, 130, 520], [33, 2113, 7], [150, 2049, 3],
];
for (const isa of ['', 'avx2', 'generic']) {
  describe(`cpu matmul kernel edges, ISA ${isa || 'best'} (seed ${SEED})`, () => {
    let saved: string | undefined;
    beforeAll(() => { saved = process.env.LLMK_CPU_MATMUL_ISA; if (isa) setEnv('LLMK_CPU_MATMUL_ISA', isa); });
    afterAll(() => setEnv('LLMK_CPU_MATMUL_ISA', saved));
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      it.each(cpuShapes)(`${dtype} M=%d N=%d K=%d matches the float64 reference`, (M, N, K) => checkMatmul('cpu', dtype, M, N, K));
    }
  });
}

// float16 <-> float32 in the x86 kernels uses F16C; it must round exactly like the portable scalar code
// (the generic variant): single products (exact in float32) over normal, subnormal and overflowing results.
describe(`cpu matmul float16 conversions match across ISA variants (seed ${SEED})`, () => {
  let saved: string | undefined;
  beforeAll(() => { saved = process.env.LLMK_CPU_MATMUL_ISA; });
  afterAll(() => setEnv('LLMK_CPU_MATMUL_ISA', saved));
  it('gives bit-identical float16 results', async () => {
    const r = rng(SEED);
    const N = 4099;
    const b = randnArray(N, r).map((x, i) => x * 2 ** ((i % 40) - 24));
    const run = async (isa: string) => {
      setEnv('LLMK_CPU_MATMUL_ISA', isa);
      using ta = tensor(Float32Array.from([1.3330078125, -0.7001953125]), { dtype: 'float16', device: 'cpu', shape: [2, 1] });
      using tb = tensor(b, { dtype: 'float16', device: 'cpu', shape: [1, N] });
      using out = matmul(ta, tb);
      return Array.from((await out.toArray()) as Float32Array);
    };
    const generic = await run('generic');
    expect(await run('')).toEqual(generic);
    expect(await run('avx2')).toEqual(generic);
  });
});
