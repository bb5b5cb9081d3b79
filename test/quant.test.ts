import { tensor, backends, type DType, type DeviceName, type Tensor } from '../ts';
import * as quant from '../ts/quant';
import { describeDevices, expectCode, relL2, rng, randnArray, SEED, tol } from './helpers';
import { roundBF16, roundF16 } from './reference/half';
import {
  dequantRef, linearRef, maxErrOverScale, packAwq, packCanonical, packGptq, packMatMulNBits, quadsRef, unpackCanonical,
} from './reference/quant';

const roundTo = (dtype: DType, v: number): number =>
  dtype === 'float16' ? roundF16(v) : dtype === 'bfloat16' ? roundBF16(v) : Math.fround(v);

/** Host copy of a canonical weight's parts (scales as float32 values). */
async function hostParts(w: quant.Int4Weight): Promise<{ codes: Uint8Array; scales: Float32Array; zeros: Uint8Array | null }> {
  using c = w.toCanonical();
  const q = (await c.qweight.toArray()) as Uint8Array;
  const scales = (await c.scales.toArray()) as Float32Array;
  const zeros = c.zeros ? ((await c.zeros.toArray()) as Uint8Array) : null;
  return { codes: unpackCanonical(q, w.n, w.k), scales, zeros };
}

async function arr(t: Tensor): Promise<number[]> { return Array.from((await t.toArray()) as ArrayLike<number>); }

function randInts(n: number, r: () => number, lo: number, hi: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor(r() * (hi - lo + 1));
  return a;
}

const cudaAvailable = backends().cuda.available;

describeDevices(`quant.quantize / dequantize (seed ${SEED})`, (device) => {
  const cases: [number, number, number, boolean, DType][] = [
    [8, 64, 32, true, 'float32'], [5, 256, 64, false, 'float32'], [16, 256, 128, true, 'float16'],
    [3, 512, 256, false, 'bfloat16'], [7, 96, 96, true, 'float32'], [4, 100, 100, false, 'float16'],
  ];
  it.each(cases)('N=%d K=%d g=%d symmetric=%s %s: error within the RTN bound', async (n, k, g, sym, dtype) => {
    const r = rng(SEED + n * 31 + k + g);
    const wv = randnArray(n * k, r, 0.5).map((v, i) => (sym ? v : v + (i % 3) * 0.2));
    using w = tensor(wv, { shape: [n, k], dtype, device });
    using qw = quant.quantize(w, { groupSize: g, symmetric: sym });
    expect(qw.n).toBe(n); expect(qw.k).toBe(k); expect(qw.groupSize).toBe(g);
    expect(qw.symmetric).toBe(sym);
    expect(qw.scales.dtype).toBe(dtype);
    using deq = quant.dequantize(qw, { dtype: 'float32' });
    expect(deq.shape).toEqual([n, k]);
    const got = (await deq.toArray()) as Float32Array;
    const { codes, scales, zeros } = await hostParts(qw);
    const wr = Array.from(wv, (v) => roundTo(dtype, v));
    // within half a step of the (rounded) scale, with room for the scale's own rounding
    const slack = dtype === 'float32' ? 1e-5 : dtype === 'float16' ? 2e-2 : 0.1;
    expect(maxErrOverScale(wr, got, scales, n, k, g)).toBeLessThanOrEqual(0.5 * (1 + slack) + 1e-6);
    if (sym) expect(Math.max(...codes)).toBeLessThanOrEqual(15);
    // dequantize equals the float64 formula on the stored parts
    const ref = dequantRef(codes, scales, zeros, n, k, g);
    expect(relL2(got, ref)).toBeLessThan(1e-6);
  });

  it('scaleDtype option and an all-zero group', async () => {
    const wv = new Float32Array(2 * 64);
    for (let i = 64; i < 128; i++) wv[i] = (i % 7) - 3;
    using w = tensor(wv, { shape: [2, 64], device });
    using qw = quant.quantize(w, { groupSize: 32, scaleDtype: 'float16' });
    expect(qw.scales.dtype).toBe('float16');
    using deq = quant.dequantize(qw);
    expect(deq.dtype).toBe('float16');
    const got = (await deq.toArray()) as Float32Array;
    for (let i = 0; i < 64; i++) expect(got[i]).toBe(0);
    for (let i = 64; i < 128; i++) expect(Math.abs(got[i] - wv[i])).toBeLessThan(0.3);
  });
});

describeDevices(`quant.matmul (seed ${SEED})`, (device) => {
  // [M, N, K, groupSize, symmetric]: tiny, tails, fast-path shapes, general-path shapes (N % 16 != 0, K % 64 != 0)
  const shapes: [number, number, number, number, boolean][] = [
    [1, 16, 32, 32, true], [3, 48, 48, 48, false], [1, 64, 256, 128, true], [5, 100, 320, 64, false],
    [16, 96, 320, 32, true], [17, 40, 128, 128, false], [33, 80, 512, 256, true], [70, 32, 192, 64, false],
    [130, 48, 128, 128, true], [300, 16, 64, 32, false],
  ];
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it.each(shapes)(`${dtype} M=%d N=%d K=%d g=%d symmetric=%s equals x·dequant(W)ᵀ + bias`, async (M, N, K, g, sym) => {
      const r = rng(SEED + M * 1000 + N * 7 + K);
      using w = tensor(randnArray(N * K, r), { shape: [N, K], device });
      using qw = quant.quantize(w, { groupSize: g, symmetric: sym, scaleDtype: dtype === 'float32' ? 'float32' : dtype });
      using pw = quant.prepare(qw, device);
      expect(pw.layout).toBe('prepared');
      const xv = randnArray(M * K, r), bv = randnArray(N, r);
      using x = tensor(xv, { shape: [M, K], dtype, device });
      using bias = tensor(bv, { device });
      const { codes, scales, zeros } = await hostParts(qw);
      const W = dequantRef(codes, scales, zeros, N, K, g);
      const xr = Array.from(xv, (v) => roundTo(dtype, v));
      for (const [weight, withBias] of [[qw, true], [pw, false], [pw, true]] as const) {
        using y = quant.matmul(x, weight, withBias ? { bias } : {});
        expect(y.shape).toEqual([M, N]);
        expect(y.dtype).toBe(dtype);
        const got = (await y.toArray()) as Float32Array;
        const ref = linearRef(xr, W, M, N, K, withBias ? bv : null);
        const err = relL2(got, ref);
        if (!(err < tol(dtype))) throw new Error(`rel L2 ${err} (seed ${SEED}, path ${quant.matmulPath(x, weight)})`);
      }
    });
  }

  it('M = 0 gives an empty [0, N] result', async () => {
    using w = tensor(randnArray(32 * 64, rng(SEED)), { shape: [32, 64], device });
    using qw = quant.quantize(w, { groupSize: 64 });
    using pw = quant.prepare(qw, device);
    using x = tensor(new Float32Array(0), { shape: [0, 64], dtype: 'float16', device });
    using y = quant.matmul(x, pw);
    expect(y.shape).toEqual([0, 32]);
    expect((await y.toArray()).length).toBe(0);
  });

  it('NaN in x propagates to its row only', async () => {
    const M = 3, N = 32, K = 128;
    using w = tensor(randnArray(N * K, rng(SEED + 1)), { shape: [N, K], device });
    using qw = quant.quantize(w, { groupSize: 128 });
    using pw = quant.prepare(qw, device);
    const xv = randnArray(M * K, rng(SEED + 2));
    xv[K + 5] = NaN;
    for (const dtype of ['float32', 'float16'] as const) {
      using x = tensor(xv, { shape: [M, K], dtype, device });
      using y = quant.matmul(x, pw);
      const got = (await y.toArray()) as Float32Array;
      for (let j = 0; j < N; j++) {
        expect(Number.isNaN(got[N + j])).toBe(true);
        expect(Number.isFinite(got[j])).toBe(true);
        expect(Number.isFinite(got[2 * N + j])).toBe(true);
      }
    }
  });

  it('no overflow to Inf for |x| up to 65504 (float32 accumulation)', async () => {
    const M = 2, N = 16, K = 256;
    // every weight 1 (codes 9, scale 1): partial sums reach 128 · 65504 ≫ 65504; the results are 0 and 65504
    const codes = new Uint8Array(N * K).fill(9);
    using qwt = tensor(packCanonical(codes, N, K), { shape: [N, K / 2], device });
    using sc = tensor(new Float32Array(N * 2).fill(1), { shape: [N, 2], dtype: 'float16', device });
    using qw = await quant.fromCanonical({ qweight: qwt, scales: sc });
    using pw = quant.prepare(qw, device);
    const xv = new Float32Array(M * K);
    for (let i = 0; i < K; i++) { xv[i] = i < K / 2 ? 65504 : -65504; xv[K + i] = i === 0 ? 0 : i % 2 ? 65504 : -65504; }
    for (const dtype of ['float16', 'bfloat16'] as const) {
      using x = tensor(xv, { shape: [M, K], dtype, device });
      using y = quant.matmul(x, pw);
      const got = (await y.toArray()) as Float32Array;
      const xr = Array.from(xv, (v) => roundTo(dtype, v));
      const ref = linearRef(xr, new Float64Array(N * K).fill(1), M, N, K);
      for (let i = 0; i < M * N; i++) {
        expect(Number.isFinite(got[i])).toBe(true);
        expect(got[i]).toBeCloseTo(roundTo(dtype, ref[i]), 0);
      }
    }
  });

  it('Inf in x gives ±Inf in its row (NaN only where the math has Inf·0), like x·dequant(W)ᵀ', async () => {
    // The CPU kernels apply the zero point once per group, scale·(Σx·q − zero·Σx); with an Inf in x that
    // was Inf − Inf = NaN for every column. Both M regimes of each backend.
    const N = 32, K = 128, g = 64;
    using w = tensor(randnArray(N * K, rng(SEED + 11)), { shape: [N, K], device });
    using qw = quant.quantize(w, { groupSize: g });
    using pw = quant.prepare(qw, device);
    const { codes, scales, zeros } = await hostParts(qw);
    const W = dequantRef(codes, scales, zeros, N, K, g);
    for (const M of [3, 20]) {
      const xv = randnArray(M * K, rng(SEED + 12 + M));
      xv[5] = Infinity; xv[K + 70] = -Infinity;  // rows 0 and 1; the others stay finite
      for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
        using x = tensor(xv, { shape: [M, K], dtype, device });
        using y = quant.matmul(x, pw);
        const got = (await y.toArray()) as Float32Array;
        const ref = linearRef(Array.from(xv, (v) => roundTo(dtype, v)), W, M, N, K);
        for (let i = 0; i < 2 * N; i++) {
          if (Number.isNaN(ref[i])) expect(Number.isNaN(got[i])).toBe(true);
          else expect(got[i]).toBe(ref[i]);  // ±Infinity
        }
        const err = relL2(got.subarray(2 * N), ref.subarray(2 * N));
        if (!(err < tol(dtype))) throw new Error(`finite rows: rel L2 ${err} (seed ${SEED}, M ${M}, ${dtype})`);
      }
    }
  });

  it('huge float32 x (|x| = 1e37) with a finite x·dequant(W)ᵀ does not overflow', async () => {
    // Σx·q reaches 1e37·9·64 > FLT_MAX although every x·w term and the result are finite.
    const N = 16, K = 64;
    const codes = new Uint8Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codes[n * K + k] = n % 2 === 0 || k % 2 === 0 ? 9 : 7;
    using qwt = tensor(packCanonical(codes, N, K), { shape: [N, K / 2], device });
    using sc = tensor(new Float32Array(N).fill(0.01), { shape: [N, 1], dtype: 'float32', device });
    using qw = await quant.fromCanonical({ qweight: qwt, scales: sc });
    using pw = quant.prepare(qw, device);
    const W = dequantRef(codes, new Float32Array(N).fill(0.01), null, N, K, K);
    // M = 1 too: the AVX2 M = 1 kernel keeps some lanes' sums scaled by up to 16³ (int4_avx2_gemv.cpp).
    for (const M of [1, 2, 18]) {
      const xv = new Float32Array(M * K);
      for (let i = 0; i < M * K; i++) xv[i] = Math.floor(i / K) % 2 === 0 ? 1e37 : (i % 3 === 0 ? -1e37 : 1e37);
      using x = tensor(xv, { shape: [M, K], dtype: 'float32', device });
      for (const weight of [qw, pw]) {
        using y = quant.matmul(x, weight);
        const got = (await y.toArray()) as Float32Array;
        const ref = linearRef(xv, W, M, N, K);
        for (let i = 0; i < M * N; i++) expect(Number.isFinite(got[i])).toBe(true);
        const err = relL2(got, ref);
        if (!(err < 1e-5)) throw new Error(`rel L2 ${err} (M ${M})`);
      }
    }
  });

  it('x as a view at an odd element offset (narrow of a flat tensor) gives the same result', async () => {
    // On CUDA such an x is not 16-byte aligned: the matmul must take the general path, not fault.
    const M = 5, N = 64, K = 256, g = 64;
    using w = tensor(randnArray(N * K, rng(SEED + 21)), { shape: [N, K], device });
    using qw = quant.quantize(w, { groupSize: g, symmetric: false });
    using pw = quant.prepare(qw, device);
    const { codes, scales, zeros } = await hostParts(qw);
    const W = dequantRef(codes, scales, zeros, N, K, g);
    const flat = randnArray(M * K + 1, rng(SEED + 22));
    for (const dtype of ['float16', 'bfloat16', 'float32'] as const) {
      using base = tensor(flat, { dtype, device });
      using view = base.narrow(0, 1, M * K);
      using x = view.reshape([M, K]);
      using y = quant.matmul(x, pw);
      const got = (await y.toArray()) as Float32Array;
      const ref = linearRef(Array.from(flat.subarray(1), (v) => roundTo(dtype, v)), W, M, N, K);
      const err = relL2(got, ref);
      if (!(err < tol(dtype))) throw new Error(`rel L2 ${err} (seed ${SEED}, ${dtype}, path ${quant.matmulPath(x, pw)})`);
    }
  });

  it('prepare / toCanonical round trip is exact', async () => {
    for (const [N, K, g, sym] of [[64, 256, 64, false], [48, 320, 32, true], [50, 128, 128, false]] as const) {
      using w = tensor(randnArray(N * K, rng(SEED + N)), { shape: [N, K], device });
      using qw = quant.quantize(w, { groupSize: g, symmetric: sym });
      using pw = quant.prepare(qw, device);
      using back = pw.toCanonical();
      expect(back.layout).toBe('canonical');
      expect(await arr(back.qweight)).toEqual(await arr(qw.qweight));
      expect(await arr(back.scales)).toEqual(await arr(qw.scales));
      if (!sym) expect(await arr(back.zeros!)).toEqual(await arr(qw.zeros!));
      using d1 = quant.dequantize(pw, { dtype: 'float32' });
      using d2 = quant.dequantize(qw, { dtype: 'float32' });
      expect(await arr(d1)).toEqual(await arr(d2));
    }
  });
});

describeDevices(`quant importers (seed ${SEED})`, (device: DeviceName) => {
  const N = 24, K = 128, gs = 32, G = K / gs;

  function source(seed: number): { codes: Uint8Array; zerosGN: Uint8Array; scalesGN: Float32Array } {
    const r = rng(seed);
    return { codes: randInts(N * K, r, 0, 15), zerosGN: randInts(G * N, r, 1, 15), scalesGN: Float32Array.from(randnArray(G * N, r, 0.05), (v) => Math.abs(v) + 0.01) };
  }
  /** W[n,k] = s[g(k), n] · (q[n,k] − z[g(k), n]) in float64, original column order. */
  function sourceW(codes: Uint8Array, zerosGN: Uint8Array, scalesGN: ArrayLike<number>, gIdx: (k: number) => number): Float64Array {
    const W = new Float64Array(N * K);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) W[n * K + k] = scalesGN[gIdx(k) * N + n] * (codes[n * K + k] - zerosGN[gIdx(k) * N + n]);
    return W;
  }
  async function expectWeight(w: quant.Int4Weight, W: Float64Array): Promise<void> {
    expect(w.n).toBe(N); expect(w.k).toBe(K);
    using d = quant.dequantize(w, { dtype: 'float32' });
    expect(relL2((await d.toArray()) as Float32Array, W)).toBeLessThan(1e-6);
    // and the matmul agrees with x · Wᵀ (act-order: per-call permutation of x)
    const M = 5, xv = randnArray(M * K, rng(SEED + 99));
    using x = tensor(xv, { shape: [M, K], device });
    for (const ww of [w, quant.prepare(w, device)]) {
      using y = quant.matmul(x, ww);
      expect(relL2((await y.toArray()) as Float32Array, linearRef(xv, W, M, N, K))).toBeLessThan(1e-5);
      if (ww !== w) ww.dispose();
    }
  }

  for (const format of ['v1', 'v2'] as const) {
    it(`GPTQ ${format} (contiguous groups)`, async () => {
      const { codes, zerosGN, scalesGN } = source(SEED + 1);
      const p = packGptq(codes, zerosGN, N, K, G, format);
      using qweight = tensor(p.qweight, { shape: [K / 8, N], device });
      using qzeros = tensor(p.qzeros, { shape: [G, N / 8], device });
      using scales = tensor(scalesGN, { shape: [G, N], device });
      using w = await quant.fromGptq({ qweight, qzeros, scales, format });
      expect(w.perm).toBeNull();
      await expectWeight(w, sourceW(codes, zerosGN, scalesGN, (k) => Math.floor(k / gs)));
    });
  }

  it('GPTQ act-order (desc_act, non-monotonic gIdx) via a K permutation', async () => {
    const { codes, zerosGN, scalesGN } = source(SEED + 2);
    const r = rng(SEED + 3);
    const pi = Array.from({ length: K }, (_, i) => i);
    for (let i = K - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [pi[i], pi[j]] = [pi[j], pi[i]]; }
    const gIdxArr = Int32Array.from(pi, (v) => Math.floor(v / gs));
    const p = packGptq(codes, zerosGN, N, K, G, 'v1');
    using qweight = tensor(p.qweight, { shape: [K / 8, N], device });
    using qzeros = tensor(p.qzeros, { shape: [G, N / 8], device });
    using scales = tensor(scalesGN, { shape: [G, N], dtype: 'float16', device });
    using gIdx = tensor(gIdxArr, { device });
    using w = await quant.fromGptq({ qweight, qzeros, scales, gIdx });
    expect(w.perm).not.toBeNull();
    const s16 = Float32Array.from(scalesGN, (v) => roundF16(v));
    await expectWeight(w, sourceW(codes, zerosGN, s16, (k) => gIdxArr[k]));
  });

  it('GPTQ with gIdx of unequal group sizes is refused', async () => {
    const p = packGptq(new Uint8Array(N * K), new Uint8Array(G * N).fill(8), N, K, G, 'v1');
    using qweight = tensor(p.qweight, { shape: [K / 8, N], device });
    using qzeros = tensor(p.qzeros, { shape: [G, N / 8], device });
    using scales = tensor(new Float32Array(G * N).fill(1), { shape: [G, N], device });
    using gIdx = tensor(new Int32Array(K).fill(0), { device });
    await expect(quant.fromGptq({ qweight, qzeros, scales, gIdx })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
  });

  it('AWQ (packed along N in order 0,2,4,6,1,3,5,7; exact zeros)', async () => {
    const { codes, zerosGN, scalesGN } = source(SEED + 4);
    const p = packAwq(codes, zerosGN, N, K, G);
    using qweight = tensor(p.qweight, { shape: [K, N / 8], device });
    using qzeros = tensor(p.qzeros, { shape: [G, N / 8], device });
    using scales = tensor(scalesGN, { shape: [G, N], device });
    using w = await quant.fromAwq({ qweight, qzeros, scales });
    await expectWeight(w, sourceW(codes, zerosGN, scalesGN, (k) => Math.floor(k / gs)));
  });

  for (const zp of ['none', 'packed', 'float'] as const) {
    it(`ONNX Runtime MatMulNBits (zero points: ${zp})`, async () => {
      const { codes, zerosGN, scalesGN } = source(SEED + 5);
      // MatMulNBits orders scales and zero points [N, blocks]
      const sNB = new Float32Array(N * G), zNB = new Uint8Array(N * G);
      for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) { sNB[n * G + g] = scalesGN[g * N + n]; zNB[n * G + g] = zerosGN[g * N + n]; }
      const p = packMatMulNBits(codes, zp === 'none' ? null : zNB, N, K, gs);
      using b = tensor(p.b, { shape: [N, G, gs / 2], device });
      using scales = tensor(sNB, { shape: [N * G], device });
      using zeroPoints = zp === 'packed' ? tensor(p.zeroPoints!, { device }) : zp === 'float' ? tensor(Float32Array.from(zNB), { device }) : null;
      using w = await quant.fromMatMulNBits({ b, scales, zeroPoints, k: K, n: N, blockSize: gs });
      const z8 = new Uint8Array(G * N).fill(8);
      await expectWeight(w, sourceW(codes, zp === 'none' ? z8 : zerosGN, scalesGN, (k) => Math.floor(k / gs)));
    });
  }
});

describeDevices('quant hostile input', (device) => {
  const mk = (n: number, k: number, dtype: DType = 'float32'): Tensor => tensor(randnArray(n * k, rng(SEED + 7)), { shape: [n, k], dtype, device });

  it('K not a multiple of groupSize: ERR_LLMK_SHAPE', () => {
    using w = mk(4, 100);
    expectCode(() => quant.quantize(w, { groupSize: 32 }), 'ERR_LLMK_SHAPE');
  });
  it('group sizes that are not allowed: ERR_LLMK_ARG', () => {
    using w = mk(4, 96);
    expectCode(() => quant.quantize(w, { groupSize: 48 }), 'ERR_LLMK_ARG');
    expectCode(() => quant.quantize(w, { groupSize: 16 }), 'ERR_LLMK_ARG');
    expectCode(() => quant.quantize(w, { groupSize: 0 }), 'ERR_LLMK_ARG');
  });
  it('non-finite weights: ERR_LLMK_ARG, for every weight dtype and scale dtype', () => {
    for (const bad of [Infinity, -Infinity, NaN])
      for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
        const wv = randnArray(4 * 64, rng(SEED + 9));
        wv[2 * 64 + 17] = bad;
        using w = tensor(wv, { shape: [4, 64], dtype, device });
        for (const symmetric of [true, false]) expectCode(() => quant.quantize(w, { groupSize: 32, symmetric }), 'ERR_LLMK_ARG');
      }
  });
  it('scales that overflow their dtype: ERR_LLMK_ARG (float16 above max|w| ≈ 4.6e5 symmetric, 9.8e5 range asymmetric; max − min beyond float32)', async () => {
    const wv = randnArray(2 * 64, rng(SEED + 10));
    wv[64 + 5] = 5e5;  // 5e5 / 7 > 65504
    using w = tensor(wv, { shape: [2, 64], device });
    expectCode(() => quant.quantize(w, { groupSize: 64, scaleDtype: 'float16' }), 'ERR_LLMK_ARG');
    using qa = quant.quantize(w, { groupSize: 64, symmetric: false, scaleDtype: 'float16' });  // (max − min)/15 fits
    expect(((await qa.scales.toArray()) as Float32Array).every(Number.isFinite)).toBe(true);
    wv[64 + 5] = 1.2e6;  // asymmetric: (max − min) / 15 > 65504
    using wa = tensor(wv, { shape: [2, 64], device });
    expectCode(() => quant.quantize(wa, { groupSize: 64, symmetric: false, scaleDtype: 'float16' }), 'ERR_LLMK_ARG');
    wv[64 + 5] = 5e5;
    // the same weight fits float32 and bfloat16 scales
    for (const scaleDtype of ['float32', 'bfloat16'] as const) {
      using qw = quant.quantize(w, { groupSize: 64, scaleDtype });
      const sc = (await qw.scales.toArray()) as Float32Array;
      expect(sc.every(Number.isFinite)).toBe(true);
    }
    // just below the float16 limit (65504 · 7 = 458528) still works
    wv[64 + 5] = 4.5e5;
    using w2 = tensor(wv, { shape: [2, 64], device });
    using q2 = quant.quantize(w2, { groupSize: 64, scaleDtype: 'float16' });
    expect(((await q2.scales.toArray()) as Float32Array).every(Number.isFinite)).toBe(true);
    // max − min overflows float32 in the asymmetric scale
    wv[64 + 5] = 3e38; wv[64 + 6] = -3e38;
    using w3 = tensor(wv, { shape: [2, 64], device });
    expectCode(() => quant.quantize(w3, { groupSize: 64, symmetric: false }), 'ERR_LLMK_ARG');
    using q3 = quant.quantize(w3, { groupSize: 64 });  // symmetric: 3e38 / 7 fits
    expect(((await q3.scales.toArray()) as Float32Array).every(Number.isFinite)).toBe(true);
  });
  it('odd K with groupSize = K: ERR_LLMK_SHAPE', () => {
    using w = mk(4, 33);
    expectCode(() => quant.quantize(w, { groupSize: 33 }), 'ERR_LLMK_SHAPE');
  });
  const rejectsWith = (p: Promise<unknown>, code: string, message?: RegExp) =>
    expect(p).rejects.toMatchObject({ name: 'LlmkError', code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  it('mismatched scales / zeros shapes: ERR_LLMK_SHAPE, naming the op, the argument, the expected and actual shape', async () => {
    using q = tensor(new Uint8Array(8 * 32), { shape: [8, 32], device });
    using s = tensor(new Float32Array(8 * 3), { shape: [8, 3], device });
    using s2 = tensor(new Float32Array(7 * 2), { shape: [7, 2], device });
    using sOk = tensor(new Float32Array(8 * 2), { shape: [8, 2], device });
    using z = tensor(new Uint8Array(8 * 3), { shape: [8, 3], device });
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: s }), 'ERR_LLMK_SHAPE',
      /^quant\.fromCanonical: k = 64 is not a multiple of scales\.shape\[1\] = 3/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: s2 }), 'ERR_LLMK_SHAPE',
      /^quant\.fromCanonical: scales must have shape \[8, K\/groupSize\], got \[7, 2\]/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: sOk, zeros: z }), 'ERR_LLMK_SHAPE',
      /^quant\.fromCanonical: zeros must have shape \[8, 2\], got \[8, 3\]/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: sOk, groupSize: 64 }), 'ERR_LLMK_SHAPE',
      /^quant\.fromCanonical: scales must have shape \[8, 1\], got \[8, 2\]/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: sOk, groupSize: 1.5 }), 'ERR_LLMK_ARG',
      /^quant\.fromCanonical: groupSize must be an integer .*got 1\.5/);
  });
  it('wrong dtypes: ERR_LLMK_DTYPE', async () => {
    using qf = tensor(new Float32Array(8 * 32), { shape: [8, 32], device });
    using q = tensor(new Uint8Array(8 * 32), { shape: [8, 32], device });
    using si = tensor(new Int32Array(8 * 2), { shape: [8, 2], device });
    using s = tensor(new Float32Array(8 * 2).fill(1), { shape: [8, 2], device });
    using zf = tensor(new Float32Array(8 * 2), { shape: [8, 2], device });
    await rejectsWith(quant.fromCanonical({ qweight: qf, scales: s }), 'ERR_LLMK_DTYPE',
      /^quant\.fromCanonical: qweight must be uint8, got float32/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: si }), 'ERR_LLMK_DTYPE',
      /^quant\.fromCanonical: scales must be float32, float16 or bfloat16, got int32/);
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: s, zeros: zf }), 'ERR_LLMK_DTYPE',
      /^quant\.fromCanonical: zeros must be uint8, got float32/);
    using wi = tensor(new Int32Array(4 * 64), { shape: [4, 64], device });
    expectCode(() => quant.quantize(wi, { groupSize: 64 }), 'ERR_LLMK_DTYPE');
    using w = await quant.fromCanonical({ qweight: q, scales: s });
    using xi = tensor(new Int32Array(2 * 64), { shape: [2, 64], device });
    expectCode(() => quant.matmul(xi, w), 'ERR_LLMK_DTYPE');
    using x = tensor(new Float32Array(2 * 64), { shape: [2, 64], device });
    using bi = tensor(new Int32Array(8), { device });
    expectCode(() => quant.matmul(x, w, { bias: bi }), 'ERR_LLMK_DTYPE');
  });
  it("x with K' ≠ K and a bias of the wrong length: ERR_LLMK_SHAPE", () => {
    using w0 = mk(16, 64);
    using w = quant.quantize(w0, { groupSize: 32 });
    using x = mk(2, 63);
    expectCode(() => quant.matmul(x, w), 'ERR_LLMK_SHAPE');
    expect(() => quant.matmul(x, w)).toThrow(/^quant\.matmul: x has 63 columns but the weight has k = 64$/);
    using x3 = tensor(new Float32Array(64), { shape: [1, 1, 64], device });
    expectCode(() => quant.matmul(x3, w), 'ERR_LLMK_SHAPE');
    using xok = mk(2, 64);
    using b = tensor(new Float32Array(15), { device });
    expectCode(() => quant.matmul(xok, w, { bias: b }), 'ERR_LLMK_SHAPE');
  });
  it('the native layer checks the contract (never trusts JS): a weight once, then x against it', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { native } = require('../ts/native');
    using w0 = mk(16, 64);
    using w = quant.quantize(w0, { groupSize: 32 });
    using x = mk(2, 48);
    const codeOf = (f: () => unknown): string | undefined => { try { f(); } catch (e) { return (e as { code?: string }).code; } return undefined; };
    expect(codeOf(() => native.int4.matmul(x.handle, w.handle, null, false))).toBe('ERR_LLMK_SHAPE');
    expect(codeOf(() => native.int4.matmul(x.handle, {}, null, false))).toBe('ERR_LLMK_ARG');
    // a weight is checked when it is made: shapes against n, k and the group size, whatever JS claims
    expect(codeOf(() => native.int4.weight(w.qweight.handle, w.scales.handle, null, null, null, 16, 64, 48, false))).toBe('ERR_LLMK_ARG');
    expect(codeOf(() => native.int4.weight(w.qweight.handle, w.scales.handle, null, null, null, 16, 64, 64, false))).toBe('ERR_LLMK_SHAPE');
    expect(codeOf(() => native.int4.weight(w.qweight.handle, w.scales.handle, null, null, null, 16, 2 ** 32 + 64, 32, false))).toBe('ERR_LLMK_ARG');
    expect(codeOf(() => native.int4.weight(w.qweight.handle, w.scales.handle, null, x.handle, null, 16, 64, 32, false))).toBe('ERR_LLMK_DTYPE');
    // a released weight is refused, not read
    const [h] = native.int4.weight(w.qweight.handle, w.scales.handle, null, null, null, null, null, null, false);
    native.int4.release(h);
    using xok = mk(2, 64);
    expect(codeOf(() => native.int4.matmul(xok.handle, h, null, false))).toBe('ERR_LLMK_DISPOSED');
  });
  it('a weight on another device: ERR_LLMK_DEVICE', () => {
    using w0 = mk(16, 64);
    using w = quant.quantize(w0, { groupSize: 32 });
    // an unknown device is refused when preparing
    expect(() => quant.prepare(w, 'cuda:99')).toThrow(expect.objectContaining({ name: 'LlmkError' }));
    if (!cudaAvailable) return;  // the cross-device case itself needs a GPU (run by gpu-check)
    const other: DeviceName = device === 'cpu' ? 'cuda:0' : 'cpu';
    using pw = quant.prepare(w, other);
    using x = mk(2, 64);
    expectCode(() => quant.matmul(x, pw), 'ERR_LLMK_DEVICE');
  });
  it('a disposed weight: ERR_LLMK_DISPOSED; a non-weight: ERR_LLMK_ARG; a bad permutation: ERR_LLMK_ARG', async () => {
    using w0 = mk(16, 64);
    const w = quant.quantize(w0, { groupSize: 32 });
    w.dispose();
    using x = mk(2, 64);
    expectCode(() => quant.matmul(x, w), 'ERR_LLMK_DISPOSED');
    expectCode(() => quant.matmul(x, {} as quant.Int4Weight), 'ERR_LLMK_ARG');
    using q = tensor(new Uint8Array(16 * 32), { shape: [16, 32], device });
    using s = tensor(new Float32Array(16 * 2), { shape: [16, 2], device });
    using p = tensor(new Int32Array(64).fill(3), { device });
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: s, perm: p }), 'ERR_LLMK_ARG', /perm is not a permutation/);
    using p2 = tensor(new Int32Array(63), { device });
    await rejectsWith(quant.fromCanonical({ qweight: q, scales: s, perm: p2 }), 'ERR_LLMK_SHAPE',
      /^quant\.fromCanonical: perm must have shape \[64\], got \[63\]/);
  });
});

describeDevices(`quant.matmul small M, every M ≤ 16 (seed ${SEED})`, (device) => {
  // The CPU's AVX-512 kernel (M ≤ 16, groupSize % 32 == 0) takes 8, 4 or 2 codes per 32-bit lane by
  // groupSize (% 128, % 64, % 32), one or several blocks per group, 4 weight rows (N % 4 tails) and tiles
  // of 4, 3, 2, 1 activation rows; machines without AVX-512 run the AVX2 / generic kernels on the same cases.
  // [N, K, groupSize, symmetric]
  const shapes: [number, number, number, boolean][] = [
    [37, 512, 128, true], [70, 512, 256, false], [45, 384, 64, false], [33, 160, 32, true],
    [9, 384, 384, false], [6, 96, 96, true], [130, 256, 128, false], [3, 64, 64, true],
    // N % 4 == 0, K % 128 == 0: also the prepared weight (on the CPU the quads of the README's data formats)
    [36, 512, 128, true], [64, 384, 32, false], [8, 256, 256, false], [12, 768, 64, true],
  ];
  const ms = Array.from({ length: 16 }, (_, i) => i + 1);

  async function check(M: number, N: number, K: number, g: number, sym: boolean, xdt: DType, sdt: DType, withBias: boolean,
    permute = false): Promise<void> {
    const r = rng(SEED + M * 977 + N * 31 + K + g);
    using w = tensor(randnArray(N * K, r), { shape: [N, K], device });
    using qw0 = quant.quantize(w, { groupSize: g, symmetric: sym, scaleDtype: sdt });
    const { codes, scales, zeros } = await hostParts(qw0);
    const perm = new Int32Array(K).map((_, i) => i);
    if (permute) for (let i = K - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [perm[i], perm[j]] = [perm[j], perm[i]]; }
    using pt = tensor(perm, { device });
    using qw = permute ? await quant.fromCanonical({ qweight: qw0.qweight, scales: qw0.scales, zeros: qw0.zeros, perm: pt }) : qw0;
    const W = dequantRef(codes, scales, zeros, N, K, g);
    const xv = randnArray(M * K, r), bv = randnArray(N, r);
    using x = tensor(xv, { shape: [M, K], dtype: xdt, device });
    using bias = tensor(bv, { device });
    const xr = Array.from(xv, (v) => roundTo(xdt, v));
    const xk = new Float64Array(M * K);
    for (let m = 0; m < M; m++) for (let j = 0; j < K; j++) xk[m * K + j] = xr[m * K + perm[j]];
    const ref = linearRef(xk, W, M, N, K, withBias ? bv : null);
    using pw = quant.prepare(qw, device);
    for (const weight of N % 4 === 0 && K % 128 === 0 ? [qw, pw] : [qw]) {
      using y = quant.matmul(x, weight, withBias ? { bias } : {});
      expect(y.shape).toEqual([M, N]);
      const err = relL2((await y.toArray()) as Float32Array, ref);
      if (!(err < tol(xdt))) {
        throw new Error(`rel L2 ${err} (seed ${SEED}, M ${M}, ${N}x${K} g ${g} sym ${sym}, x ${xdt}, scales ${sdt}, perm ${permute}, ${weight.layout})`);
      }
    }
  }

  it.each(shapes)('float32, M = 1..16: N=%d K=%d g=%d symmetric=%s equals x·dequant(W)ᵀ', async (N, K, g, sym) => {
    for (const M of ms) await check(M, N, K, g, sym, 'float32', 'float32', M % 2 === 1);
  });

  it('every x dtype × scale dtype (M = 1, 5, 16; g = 128 and 32)', async () => {
    for (const xdt of ['float32', 'float16', 'bfloat16'] as const)
      for (const sdt of ['float32', 'float16', 'bfloat16'] as const)
        for (const M of [1, 5, 16]) {
          await check(M, 21, 256, 128, false, xdt, sdt, true);
          await check(M, 14, 192, 32, true, xdt, sdt, false);
        }
  });

  it('act-order (perm) weights, M = 1..16', async () => {
    for (const M of ms) await check(M, 19, 256, 64, false, 'float32', 'float32', true, true);
  });

  it('Inf and NaN in x, M = 1..16: ±Inf / NaN exactly where x·dequant(W)ᵀ has them, other rows unaffected', async () => {
    for (const [N, K, g] of [[13, 256, 128], [10, 128, 32]] as const) {
      using w = tensor(randnArray(N * K, rng(SEED + 41 + g)), { shape: [N, K], device });
      using qw = quant.quantize(w, { groupSize: g, symmetric: false });
      const { codes, scales, zeros } = await hostParts(qw);
      const W = dequantRef(codes, scales, zeros, N, K, g);
      for (const M of ms) {
        const xv = randnArray(M * K, rng(SEED + 43 + M));
        xv[(M - 1) * K + 7] = Infinity;                  // last row: ±Inf, NaN where the weight is 0
        if (M > 1) xv[K + 3] = NaN;                       // row 1: NaN everywhere
        if (M > 2) { xv[2 * K + 1] = Infinity; xv[2 * K + K - 2] = -Infinity; }  // row 2: Inf − Inf or ±Inf
        for (const dtype of ['float32', 'bfloat16'] as const) {
          using x = tensor(xv, { shape: [M, K], dtype, device });
          using y = quant.matmul(x, qw);
          const got = (await y.toArray()) as Float32Array;
          const ref = linearRef(Array.from(xv, (v) => roundTo(dtype, v)), W, M, N, K);
          const finite: number[] = [], want: number[] = [];
          for (let i = 0; i < M * N; i++) {
            if (Number.isNaN(ref[i])) expect(Number.isNaN(got[i])).toBe(true);
            else if (!Number.isFinite(ref[i])) expect(got[i]).toBe(ref[i]);
            else { finite.push(got[i]); want.push(ref[i]); }
          }
          if (finite.length) {
            const err = relL2(finite, want);
            if (!(err < tol(dtype))) throw new Error(`finite entries: rel L2 ${err} (seed ${SEED}, M ${M}, g ${g}, ${dtype})`);
          }
        }
      }
    }
  });
});

describe(`quant.prepare on the CPU: the quads layout (seed ${SEED})`, () => {
  // [N, K, groupSize]: quads (N % 4 == 0, K % 128 == 0), and shapes that stay canonical
  it.each([[4, 128, 32], [12, 384, 128], [8, 1024, 256], [6, 256, 64], [8, 96, 32], [8, 192, 64]])(
    'N=%d K=%d g=%d: bytes as documented, toCanonical and dequantize exact', async (N, K, g) => {
      const r = rng(SEED + N * 31 + K);
      using w = tensor(randnArray(N * K, r), { shape: [N, K] });
      using qw = quant.quantize(w, { groupSize: g, symmetric: false });
      using pw = quant.prepare(qw, 'cpu');
      const canon = (await qw.qweight.toArray()) as Uint8Array;
      const quads = N % 4 === 0 && K % 128 === 0;
      expect(pw.layout).toBe('prepared');
      expect(pw.qweight.shape).toEqual([N, K / 2]);
      expect(Array.from((await pw.qweight.toArray()) as Uint8Array)).toEqual(Array.from(quads ? quadsRef(canon, N, K) : canon));
      using back = pw.toCanonical();
      expect(Array.from((await back.qweight.toArray()) as Uint8Array)).toEqual(Array.from(canon));
      expect(await arr(back.scales)).toEqual(await arr(qw.scales));
      expect(await arr(back.zeros!)).toEqual(await arr(qw.zeros!));
      using d0 = quant.dequantize(qw);
      using d1 = quant.dequantize(pw);
      expect(await arr(d1)).toEqual(await arr(d0));
    });

  it('stackExperts of prepared weights stacks their canonical codes', async () => {
    const r = rng(SEED + 99);
    using w1 = tensor(randnArray(8 * 256, r), { shape: [8, 256] });
    using w2 = tensor(randnArray(8 * 256, r), { shape: [8, 256] });
    using q1 = quant.quantize(w1, { groupSize: 128 });
    using q2 = quant.quantize(w2, { groupSize: 128 });
    using p1 = quant.prepare(q1, 'cpu');
    using p2 = quant.prepare(q2, 'cpu');
    using fromPrepared = quant.stackExperts([p1, p2]);
    const want = [...(await arr(q1.qweight)), ...(await arr(q2.qweight))];
    expect(fromPrepared.layout).toBe('canonical');
    expect(await arr(fromPrepared.qweight)).toEqual(want);
  });
});
