import { add, empty, full, matmul, rand, randn, tensor, zeros, Stream, withStream, synchronize, backends, devices, DTYPES } from '../ts';
import { describeDevices, rng, randnArray, SEED } from './helpers';
import { roundBF16, roundF16 } from './reference/half';

describe('backends', () => {
  it('reports the CPU and says why CUDA is unavailable when it is', () => {
    const b = backends();
    expect(b.cpu.available).toBe(true);
    expect(b.cpu.threads).toBeGreaterThanOrEqual(1);
    if (!b.cuda.available) {
      expect(typeof b.cuda.reason).toBe('string');
      expect(b.cuda.reason!.length).toBeGreaterThan(5);
      expect(devices()).toEqual(['cpu']);
    } else {
      expect(devices().length).toBe(1 + b.cuda.deviceCount);
    }
  });
});

describeDevices(`tensor runtime (seed ${SEED})`, (device) => {
  it('round-trips every dtype', async () => {
    const r = rng(SEED);
    const n = 37;
    const f = Float32Array.from({ length: n }, () => r() * 200 - 100);
    using a = tensor(f, { device });
    expect(Array.from((await a.toArray()) as ArrayLike<number>)).toEqual(Array.from(f));
    const i32 = Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 31) * (r() < 0.5 ? -1 : 1));
    using b = tensor(i32, { device, shape: [n] });
    expect(Array.from((await b.toArray()) as ArrayLike<number>)).toEqual(Array.from(i32));
    const i64 = BigInt64Array.from({ length: n }, (_, k) => BigInt(k) * 123456789012345n - 7n);
    using c = tensor(i64, { device });
    expect(Array.from(await c.toArray())).toEqual(Array.from(i64));
    using d = tensor(Int8Array.from([-128, -1, 0, 1, 127]), { device });
    expect(Array.from(d.toArraySync() as ArrayLike<number>)).toEqual([-128, -1, 0, 1, 127]);
    using e = tensor(Uint8Array.from([0, 1, 255]), { device });
    expect(Array.from(e.toArraySync() as ArrayLike<number>)).toEqual([0, 1, 255]);
    expect(DTYPES.length).toBe(7);
  });

  it('converts float16/bfloat16 with round-to-nearest-even, keeping NaN and Inf', async () => {
    const r = rng(SEED + 1);
    const vals = [0, -0, 1, -1, 65504, 65519, 65520, 1e-8, 6e-8, 3e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN,
      ...Array.from(randnArray(200, r, 1000)), ...Array.from(randnArray(50, r, 1e-5))];
    const f = Float32Array.from(vals);
    for (const [dtype, round] of [['float16', roundF16], ['bfloat16', roundBF16]] as const) {
      using t = tensor(f, { dtype, device });
      const back = await t.toArray();
      for (let i = 0; i < f.length; i++) {
        const want = round(f[i]);
        if (Number.isNaN(want)) expect(Number.isNaN(back[i] as number)).toBe(true);
        else expect(back[i]).toBe(want);
      }
      const raw = await t.toArray({ raw: true });
      expect(raw).toBeInstanceOf(Uint16Array);
      using u = tensor(raw as Uint16Array, { dtype, device });
      expect(Array.from((await u.toArray({ raw: true })) as ArrayLike<number>)).toEqual(Array.from(raw as Uint16Array));
    }
  });

  it('creates from nested arrays and fills', async () => {
    using t = tensor([[1, 2, 3], [4, 5, 6]], { device });
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from((await t.toArray()) as ArrayLike<number>)).toEqual([1, 2, 3, 4, 5, 6]);
    using z = zeros([3, 4], { device, dtype: 'bfloat16' });
    expect(Array.from((await z.toArray()) as ArrayLike<number>)).toEqual(new Array(12).fill(0));
    using o = full([5], 2.5, { device, dtype: 'int32' });
    expect(Array.from((await o.toArray()) as ArrayLike<number>)).toEqual([2, 2, 2, 2, 2]);
    using e = empty([0, 7], { device });
    expect(e.numel).toBe(0);
    expect((await e.toArray()).length).toBe(0);
  });

  it('rand/randn are seeded, device independent and have the right moments', async () => {
    using a = rand([10000], { seed: 42, device });
    using b = rand([10000], { seed: 42, device: 'cpu' });
    const av = await a.toArray(), bv = await b.toArray();
    expect(Array.from(av as Float32Array)).toEqual(Array.from(bv as Float32Array));
    let mean = 0;
    for (const x of av as Float32Array) { expect(x).toBeGreaterThanOrEqual(0); expect(x).toBeLessThan(1); mean += x; }
    expect(Math.abs(mean / 10000 - 0.5)).toBeLessThan(0.02);
    using n = randn([20000], { seed: 7, device });
    const nv = (await n.toArray()) as Float32Array;
    let m = 0, s = 0;
    for (const x of nv) { m += x; s += x * x; }
    m /= nv.length; s = s / nv.length - m * m;
    expect(Math.abs(m)).toBeLessThan(0.03);
    expect(Math.abs(s - 1)).toBeLessThan(0.05);
    using c = rand([100], { seed: 43, device });
    expect(Array.from((await c.toArray()) as ArrayLike<number>)).not.toEqual(Array.from((av as Float32Array).slice(0, 100)));
  });

  it('reshape and narrow are views sharing storage', async () => {
    using t = tensor(Float32Array.from({ length: 24 }, (_, i) => i), { shape: [6, 4], device });
    using r = t.reshape([4, 6]);
    expect(r.shape).toEqual([4, 6]);
    expect(Array.from((await r.toArray()) as ArrayLike<number>)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    using n = t.narrow(0, 2, 3);
    expect(n.shape).toEqual([3, 4]);
    expect(Array.from((await n.toArray()) as ArrayLike<number>)).toEqual(Array.from({ length: 12 }, (_, i) => i + 8));
    t.dispose();
    // the view keeps the storage alive after its base is disposed
    expect(Array.from((await n.toArray()) as ArrayLike<number>)).toEqual(Array.from({ length: 12 }, (_, i) => i + 8));
  });

  it('casts between dtypes and copies between devices', async () => {
    using t = tensor(Float32Array.from([1.7, -2.5, 300, -300, NaN, 1e10]), { device });
    using i8 = t.cast('int8');
    expect(Array.from((await i8.toArray()) as ArrayLike<number>)).toEqual([1, -2, 127, -128, 0, 127]);
    using u8 = t.cast('uint8');
    expect(Array.from((await u8.toArray()) as ArrayLike<number>)).toEqual([1, 0, 255, 0, 0, 255]);
    using i32 = t.cast('int32');
    expect(Array.from((await i32.toArray()) as ArrayLike<number>)).toEqual([1, -2, 300, -300, 0, 2147483647]);
    using back = i32.cast('float32');
    expect(Array.from((await back.toArray()) as ArrayLike<number>)).toEqual([1, -2, 300, -300, 0, Math.fround(2147483647)]);
    using c = t.to('cpu');
    expect(c.device).toBe('cpu');
    using d = c.to(device);
    expect(d.device).toBe(device === 'cpu' ? 'cpu' : device);
    expect(Array.from((await d.toArray()) as ArrayLike<number>).slice(0, 4)).toEqual([1.7, -2.5, 300, -300].map(Math.fround));
  });

  it('keeps stream order when a tiny op follows a long one (tiny ops may run inline on an idle stream)', async () => {
    const K = 256;
    using a = full([256, K], 1, { device }), b = full([K, 256], 1, { device });
    for (let i = 0; i < 5; i++) {
      using c = matmul(a, b);                 // long: queued on the worker
      using first = c.reshape([256 * 256]).narrow(0, 0, 4);
      using one = full([4], 1, { device });   // tiny: must not overtake the matmul
      using d = add(first, one);
      expect(Array.from((await d.toArray()) as ArrayLike<number>)).toEqual([K + 1, K + 1, K + 1, K + 1]);
    }
  });

  it('runs ops on an extra stream, in order, and synchronizes', async () => {
    const s = new Stream(device);
    const x = withStream(s, () => {
      const a = full([1000], 1, { device });
      return a;
    });
    s.synchronizeSync();
    await synchronize(device);
    expect(Array.from((await x.toArray()) as ArrayLike<number>).every((v) => v === 1)).toBe(true);
    x.dispose();
  });
});
