import { add, matmul, tensor } from '../ts';
import { describeDevices, relL2, rng, randnArray, SEED, tol } from './helpers';
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

describeDevices(`matmul (seed ${SEED})`, (device) => {
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [64, 64, 64], [65, 33, 130], [17, 300, 513], [0, 4, 4], [4, 0, 4], [4, 4, 0]];
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it.each(shapes)(`${dtype} M=%d N=%d K=%d matches the float64 reference`, async (M, N, K) => {
      const r = rng(SEED + M * 7 + N * 13 + K);
      const a = randnArray(M * K, r), b = randnArray(K * N, r);
      using ta = tensor(a, { dtype, device, shape: [M, K] }), tb = tensor(b, { dtype, device, shape: [K, N] });
      using out = matmul(ta, tb);
      expect(out.shape).toEqual([M, N]);
      const got = await out.toArray();
      const ref = matmulRef(a.map((x) => roundTo(dtype, x)), b.map((x) => roundTo(dtype, x)), M, N, K);
      expect(relL2(got as Float32Array, ref)).toBeLessThan(tol(dtype));
    });
  }
});
