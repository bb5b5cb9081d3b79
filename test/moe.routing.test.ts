// moe.align / permute / combine / expertCounts / loadBalancingLoss against the float64 references on
// every available device, plus their argument errors and out-of-range ids (ERR_LLMK_INDEX at sync).
import { synchronize, tensor, zeros, type DType, type Tensor } from '../ts';
import * as moe from '../ts/moe';
import { describeDevices, expectCode, randnArray, relL2, rng, SEED, tol } from './helpers';
import { roundTo } from './reference/half';
import { alignRef, combineRef, countsRef, lbLossRef, permuteRef } from './reference/moe';

/** A tensor's values as numbers (int32 / float32 / half as float32). */
async function nums(t: Tensor): Promise<number[]> { return Array.from((await t.toArray()) as Float32Array); }

function randIds(n: number, E: number, r: () => number, skew = false): Int32Array {
  return Int32Array.from({ length: n }, () => (skew && r() < 0.5 ? 0 : Math.floor(r() * E)));
}

async function expectIndexError(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'LlmkError', code: 'ERR_LLMK_INDEX' });
}

describeDevices(`moe routing (seed ${SEED})`, (device) => {
  const alignCases: [number, number, number, number, boolean][] = [
    // T, k, E, blockSize, skewed
    [1, 1, 1, 1, false], [1, 2, 8, 16, false], [7, 8, 64, 16, false], [512, 8, 256, 64, false],
    [600, 8, 256, 64, true], [1025, 4, 1024, 128, false], [9000, 2, 8, 16, true], [3000, 6, 60, 1, false],
  ];
  it.each(alignCases)('align T=%d k=%d E=%d blockSize=%d (skewed %s) equals the reference exactly', async (T, k, E, bs, skew) => {
    const ids = randIds(T * k, E, rng(SEED + T + E), skew);
    using it = tensor(ids, { device, shape: [T, k] });
    using r = moe.align(it, { numExperts: E, blockSize: bs });
    const ref = alignRef(ids, E, bs);
    expect(r.sortedIds.shape).toEqual([T * k + Math.min(E, T * k) * (bs - 1)]);
    expect(r.blockExperts.shape).toEqual([Math.floor(r.sortedIds.shape[0] / bs)]);
    expect(await nums(r.sortedIds)).toEqual(Array.from(ref.sortedIds));
    expect(await nums(r.blockExperts)).toEqual(Array.from(ref.blockExperts));
    expect(await nums(r.numPadded)).toEqual([ref.numPadded]);
  });
  it('align with T = 0 gives empty outputs and numPadded 0', async () => {
    using it = tensor(new Int32Array(0), { device, shape: [0, 8] });
    using r = moe.align(it, { numExperts: 64, blockSize: 16 });
    expect(r.sortedIds.shape).toEqual([0]);
    expect(await nums(r.numPadded)).toEqual([0]);
  });

  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it.each([[1, 2, 8, 16], [37, 8, 64, 100], [300, 8, 256, 64], [0, 4, 8, 8], [5, 3, 4, 7]])(
      `${dtype} permute / combine T=%d k=%d E=%d H=%d equal the reference`, async (T, k, E, H) => {
        const r = rng(SEED + T * 3 + H);
        const x = Array.from(randnArray(T * H, r)).map((v) => roundTo(dtype, v));
        const ids = randIds(T * k, E, r);
        using xt = tensor(x, { dtype: dtype as DType, device, shape: [T, H] });
        using it = tensor(ids, { device, shape: [T, k] });
        using p = moe.permute(xt, it, { numExperts: E });
        const ref = permuteRef(x, T, H, ids, k, E);
        expect(p.out.shape).toEqual([T * k, H]);
        expect(await nums(p.out)).toEqual(Array.from(ref.out));
        expect(await nums(p.rowMap)).toEqual(Array.from(ref.rowMap));
        expect(await nums(p.expertOffsets)).toEqual(Array.from(ref.offsets));
        // identity experts: combine(permute(x)) = Σ_j w · x
        const w = randnArray(T * k, r);
        using wt = tensor(w, { device, shape: [T, k] });
        using c = moe.combine(p.out, wt, p.rowMap);
        expect(c.shape).toEqual([T, H]);
        expect(c.dtype).toBe(dtype);
        const cref = combineRef(ref.out, H, w, ref.rowMap, T, k).map((v) => roundTo(dtype, v));
        expect(relL2(await c.toArray() as Float32Array, cref)).toBeLessThan(tol(dtype));
      });
  }

  it.each([[1, 1, 1], [100, 2, 8], [2000, 8, 256], [0, 8, 64]])('expertCounts and loadBalancingLoss T=%d k=%d E=%d equal the reference', async (T, k, E) => {
    const r = rng(SEED + T + k);
    const ids = randIds(T * k, E, r, true);
    const probs = Array.from(randnArray(T * E, r)).map(Math.abs);
    using it = tensor(ids, { device, shape: [T, k] });
    using pt = tensor(probs, { device, shape: [T, E] });
    using c = moe.expertCounts(it, E);
    expect(await nums(c)).toEqual(Array.from(countsRef(ids, E)));
    using l = moe.loadBalancingLoss(pt, it, E);
    expect(l.shape).toEqual([1]);
    const ref = lbLossRef(probs.map(Math.fround), T, E, ids, k);
    const got = (await nums(l))[0];
    if (ref === 0) expect(got).toBe(0); else expect(Math.abs(got - ref) / ref).toBeLessThan(1e-5);
  });
  it('loadBalancingLoss is 1 for perfectly uniform routing', async () => {
    const T = 64, E = 8, k = 2;
    const ids = Int32Array.from({ length: T * k }, (_, i) => i % E);
    using it = tensor(ids, { device, shape: [T, k] });
    using pt = tensor(new Float32Array(T * E).fill(1 / E), { device, shape: [T, E] });
    using l = moe.loadBalancingLoss(pt, it, E);
    expect((await nums(l))[0]).toBeCloseTo(1, 6);
  });

  // ---- out-of-range ids: ERR_LLMK_INDEX at the next synchronisation, never a crash ----
  it.each([-1, 64, 2 ** 31 - 1])('an id of %d raises ERR_LLMK_INDEX at sync (align, permute, expertCounts, loss)', async (bad) => {
    for (const n of [6, 6000]) {
      const ids = randIds(n * 2, 64, rng(SEED));
      ids[n] = bad;
      using it = tensor(ids, { device, shape: [n, 2] });
      {
        using r = moe.align(it, { numExperts: 64, blockSize: 16 });
        await expectIndexError(r.numPadded.toArray());
      }
      using x = zeros([n, 8], { device });
      {
        using p = moe.permute(x, it, { numExperts: 64 });
        await expectIndexError(p.out.toArray());
      }
      {
        using c = moe.expertCounts(it, 64);
        await expectIndexError(c.toArray());
      }
      using probs = zeros([n, 64], { device });
      {
        using l = moe.loadBalancingLoss(probs, it, 64);
        await expectIndexError(l.toArray());
      }
      await synchronize(device);  // the stream is usable again
    }
  });
  it('a rowMap entry outside [0, R) raises ERR_LLMK_INDEX at sync (combine)', async () => {
    using y = zeros([4, 8], { device });
    using w = zeros([2, 2], { device });
    using rm = tensor(Int32Array.from([0, 1, 2, 4]), { device, shape: [2, 2] });
    using c = moe.combine(y, w, rm);
    await expectIndexError(c.toArray());
    using rm2 = tensor(Int32Array.from([0, 1, -1, 3]), { device, shape: [2, 2] });
    using c2 = moe.combine(y, w, rm2);
    await expectIndexError(c2.toArray());
  });

  it('rejects bad arguments with clear LlmkErrors', () => {
    using ids = zeros([4, 2], { device, dtype: 'int32' });
    using ids1 = zeros([8], { device, dtype: 'int32' });
    using idsF = zeros([4, 2], { device });
    using x = zeros([4, 16], { device });
    using x5 = zeros([5, 16], { device });
    using w = zeros([4, 2], { device });
    using w3 = zeros([4, 3], { device });
    using probs = zeros([4, 8], { device });
    expectCode(() => moe.align(ids, { numExperts: 8, blockSize: 0 }), 'ERR_LLMK_ARG');
    expectCode(() => moe.align(ids, { numExperts: 8, blockSize: 1.5 }), 'ERR_LLMK_ARG');
    expectCode(() => moe.align(ids, { numExperts: 0, blockSize: 16 }), 'ERR_LLMK_ARG');
    expectCode(() => moe.align(ids, { numExperts: 1025, blockSize: 16 }), 'ERR_LLMK_ARG');
    expectCode(() => moe.align(ids, undefined as never), 'ERR_LLMK_ARG');
    expectCode(() => moe.align(ids1, { numExperts: 8, blockSize: 16 }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.align(idsF, { numExperts: 8, blockSize: 16 }), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.permute(x5, ids, { numExperts: 8 }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.permute(x, ids1, { numExperts: 8 }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.permute(x, ids, { numExperts: -3 }), 'ERR_LLMK_ARG');
    expectCode(() => moe.combine(x, w3, ids), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.combine(x, ids as never, ids), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.combine(x, w, w), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.combine(ids, w, ids), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.expertCounts(idsF, 8), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.expertCounts(ids, 0), 'ERR_LLMK_ARG');
    expectCode(() => moe.loadBalancingLoss(probs, ids, 16), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.loadBalancingLoss(probs, ids1, 8), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.loadBalancingLoss(ids, ids, 2), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.align('ids' as never, { numExperts: 8, blockSize: 16 }), 'ERR_LLMK_ARG');
    // the contract is checked once, natively: messages name the op, the argument, expected and actual
    expect(() => moe.align(ids1, { numExperts: 8, blockSize: 16 })).toThrow('moe.align: ids must be 2-D [T, k], got [8]');
    expect(() => moe.align(ids, { numExperts: 1025, blockSize: 16 })).toThrow('moe.align: numExperts must be an integer in [1, 1024], got 1025');
    expect(() => moe.permute(x5, ids, { numExperts: 8 })).toThrow('moe.permute: ids must have one row per token of x (x is [5, 16], ids is [4, 2])');
    expect(() => moe.combine(x, w, w)).toThrow('moe.combine: rowMap must be int32, got float32');
    expect(() => moe.loadBalancingLoss(probs, ids, 16)).toThrow('moe.loadBalancingLoss: probs must be [T, 16] (numExperts columns), got [4, 8]');
  });
});
