// quant.matmul({ compute: 'int8' }) against the float64 references: the exact product x·dequant(W)ᵀ within
// the documented error bound, and the int8 algorithm itself (reference/quant_int8.ts) within float32
// rounding, for every CPU kernel variant (LLMK_CPU_INT4_ISA forces the lesser ones; unsupported ones fall
// back to the best the CPU has, so every value is safe on every machine). The default 'float' mode is
// checked on the same variants for its usual tolerance.
import { tensor, type DType } from '../ts';
import * as quant from '../ts/quant';
import { describeDevices, expectCode, randnArray, relL2, rng, SEED, setEnv, tol } from './helpers';
import { roundBF16, roundF16 } from './reference/half';
import { dequantRef, linearRef, unpackCanonical } from './reference/quant';
import { int8Block, int8LinearRef } from './reference/quant_int8';

const roundTo = (dtype: DType, v: number): number =>
  dtype === 'float16' ? roundF16(v) : dtype === 'bfloat16' ? roundBF16(v) : Math.fround(v);
const unitRound = (dtype: DType): number => (dtype === 'float16' ? 2 ** -11 : dtype === 'bfloat16' ? 2 ** -8 : 0);

const ISAS = ['', 'avx512bw', 'avx2', 'generic'];

async function parts(w: quant.Int4Weight): Promise<{ codes: Uint8Array; scales: Float32Array; zeros: Uint8Array | null }> {
  const q = (await w.qweight.toArray()) as Uint8Array;
  const scales = (await w.scales.toArray()) as Float32Array;
  const zeros = w.zeros ? ((await w.zeros.toArray()) as Uint8Array) : null;
  return { codes: unpackCanonical(q, w.n, w.k), scales, zeros };
}

function withIsa(isa: string, fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const saved = process.env.LLMK_CPU_INT4_ISA;
    setEnv('LLMK_CPU_INT4_ISA', isa || undefined);
    try { await fn(); } finally {
      setEnv('LLMK_CPU_INT4_ISA', saved);
    }
  };
}

/** One case: int8 mode within the bounds, float mode within tol, and the two modes not identical. */
async function check(M: number, N: number, K: number, g: number, sym: boolean, xdt: DType, sdt: DType, withBias: boolean,
  permute = false): Promise<void> {
  const device = 'cpu';
  const r = rng(SEED + M * 977 + N * 31 + K * 3 + g);
  using w = tensor(randnArray(N * K, r), { shape: [N, K], device });
  using qw0 = quant.quantize(w, { groupSize: g, symmetric: sym, scaleDtype: sdt });
  const { codes, scales, zeros } = await parts(qw0);
  const perm = new Int32Array(K).map((_, i) => i);
  if (permute) for (let i = K - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  using pt = tensor(perm, { device });
  using qw = permute ? await quant.fromCanonical({ qweight: qw0.qweight, scales: qw0.scales, zeros: qw0.zeros, perm: pt }) : qw0;
  // a spread of magnitudes per row, so blocks get different activation scales
  const xv = randnArray(M * K, r).map((v, i) => v * (1 + 3 * ((i * 7919) % 13 === 0 ? 1 : 0)));
  const bv = randnArray(N, r);
  using x = tensor(xv, { shape: [M, K], dtype: xdt, device });
  using bias = tensor(bv, { device });
  const xr = Array.from(xv, (v) => roundTo(xdt, v));
  const xk = new Float64Array(M * K);
  for (let m = 0; m < M; m++) for (let j = 0; j < K; j++) xk[m * K + j] = xr[m * K + perm[j]];
  const W = dequantRef(codes, scales, zeros, N, K, g);
  const exact = linearRef(xk, W, M, N, K, withBias ? bv : null);
  const ref = int8LinearRef(xk, codes, scales, zeros, M, N, K, g, withBias ? bv : null);
  const u = unitRound(xdt);
  const opts = withBias ? { bias } : {};
  // the canonical weight, and the prepared one where its layout differs (the quads: N % 4 == 0, K % 128 == 0)
  using pw = quant.prepare(qw, device);
  for (const weight of N % 4 === 0 && K % 128 === 0 ? [qw, pw] : [qw]) {
    using y8 = quant.matmul(x, weight, { ...opts, compute: 'int8' });
    using yf = quant.matmul(x, weight, opts);
    expect(y8.shape).toEqual([M, N]);
    expect(y8.dtype).toBe(xdt);
    const got = (await y8.toArray()) as Float32Array, gotF = (await yf.toArray()) as Float32Array;
    const where = `(seed ${SEED}, M ${M}, ${N}x${K} g ${g} sym ${sym}, x ${xdt}, scales ${sdt}, perm ${permute}, ${weight.layout}, ISA ${process.env.LLMK_CPU_INT4_ISA ?? 'best'})`;
    let differs = false;
    for (let i = 0; i < M * N; i++) {
      const outRound = u * (Math.abs(exact[i]) + ref.quantBound[i] + ref.roundBound[i]);
      const eAlg = Math.abs(got[i] - ref.y[i]), eExact = Math.abs(got[i] - exact[i]);
      if (!(eAlg <= ref.roundBound[i] + outRound + 1e-30)) {
        throw new Error(`int8 algorithm: |y − ref| = ${eAlg} > ${ref.roundBound[i] + outRound} at ${i} ${where}`);
      }
      if (!(eExact <= ref.quantBound[i] * (1 + 1e-5) + ref.roundBound[i] + outRound)) {
        throw new Error(`int8 vs x·Wᵀ: ${eExact} > bound ${ref.quantBound[i]} at ${i} ${where}`);
      }
      if (Math.abs(got[i] - gotF[i]) > 1e-4 * (Math.abs(exact[i]) + 1)) differs = true;
    }
    // the int8 mode really quantises x (a float path would pass the bound too)
    expect(differs).toBe(true);
    const errF = relL2(gotF, exact);
    if (!(errF < tol(xdt))) throw new Error(`float mode: rel L2 ${errF} ${where}`);
  }
}

describeDevices(`quant.matmul compute 'int8' (seed ${SEED})`, (device) => {
  if (device !== 'cpu') {
    it('is ERR_LLMK_UNAVAILABLE on a GPU (the float mode is the GPU kernel)', async () => {
      using w = tensor(randnArray(32 * 64, rng(SEED)), { shape: [32, 64], device });
      using qw = quant.quantize(w, { groupSize: 64 });
      using x = tensor(randnArray(2 * 64, rng(SEED + 1)), { shape: [2, 64], device });
      expectCode(() => quant.matmul(x, qw, { compute: 'int8' }), 'ERR_LLMK_UNAVAILABLE');
    });
    return;
  }
  // [N, K, groupSize, symmetric]: activation blocks of 128/256 (AVX-512 chunks), 64 (AVX2 64-k chunks), 32
  // (AVX2 32-k chunks), and groupSize = K with blocks of 32 (K = 96) or 16 (K = 48: the portable loop only);
  // K = 2304: 18 blocks per row, more than one 16-block step of the AVX-512 set-up (whole vector + tail).
  // N % 4 == 0 and K % 128 == 0: also the prepared weight (the CPU's quads), with row tiles of 4 and 6 rows
  // that start inside a quad and a last tile past the weight's end.
  const shapes: [number, number, number, boolean][] = [
    [13, 512, 128, true], [10, 512, 256, false], [11, 384, 64, false], [9, 160, 32, true],
    [9, 384, 384, false], [6, 96, 96, true], [7, 48, 48, false], [22, 256, 128, false], [5, 2304, 128, false],
    [12, 512, 128, false], [20, 256, 256, true], [8, 384, 64, false], [28, 128, 32, true], [4, 2304, 128, true],
  ];
  for (const isa of ISAS) {
    const name = isa || 'best';
    it(`ISA ${name}: M = 1, 2, 3, 17: every shape within the bound (float32)`, withIsa(isa, async () => {
      for (const [N, K, g, sym] of shapes)
        for (const M of [1, 2, 3, 17]) await check(M, N, K, g, sym, 'float32', 'float32', M % 2 === 1);
    }));
    it(`ISA ${name}: x and scale dtypes, act-order, M = 64, 65 and 260`, withIsa(isa, async () => {
      for (const xdt of ['float16', 'bfloat16'] as const)
        for (const sdt of ['float32', 'float16', 'bfloat16'] as const) await check(4, 19, 256, 128, false, xdt, sdt, true);
      await check(3, 19, 256, 64, false, 'float32', 'float32', true, true);
      await check(64, 9, 128, 32, true, 'float32', 'float32', false);  // the last M of the tiled float kernels
      await check(65, 6, 192, 64, false, 'float32', 'float32', true);
      await check(65, 8, 256, 64, false, 'float32', 'float32', true);  // prepared, through the float tiles and the blocked path
      await check(3, 20, 256, 128, false, 'float32', 'float16', true, true);  // prepared with act-order
      await check(260, 5, 256, 128, false, 'float32', 'float16', true);
    }));
  }

  it('activation block length follows the group (the largest power of two ≤ 256 dividing it)', () => {
    expect([32, 64, 128, 256, 96, 48, 384, 1024].map(int8Block)).toEqual([32, 64, 128, 256, 32, 16, 128, 256]);
  });

  for (const isa of ISAS) {
    it(`ISA ${isa || 'best'}: Inf / NaN in x give what the float mode gives, other rows unaffected`, withIsa(isa, async () => {
      const N = 13, K = 256, g = 128, M = 4;
      using w = tensor(randnArray(N * K, rng(SEED + 41)), { shape: [N, K], device });
      using qw = quant.quantize(w, { groupSize: g, symmetric: false });
      const xv = randnArray(M * K, rng(SEED + 43));
      xv[7] = Infinity;               // row 0: ±Inf (NaN where the weight is 0)
      xv[K + 3] = NaN;                // row 1: NaN
      xv[2 * K + 1] = Infinity; xv[2 * K + K - 2] = -Infinity;  // row 2: Inf − Inf or ±Inf
      using x = tensor(xv, { shape: [M, K], device });
      using y8 = quant.matmul(x, qw, { compute: 'int8' });
      using yf = quant.matmul(x, qw);
      const got = (await y8.toArray()) as Float32Array, want = (await yf.toArray()) as Float32Array;
      for (let i = 0; i < 3 * N; i++) {
        if (Number.isNaN(want[i])) expect(Number.isNaN(got[i])).toBe(true);
        else expect(got[i]).toBe(want[i]);
      }
      for (let i = 3 * N; i < M * N; i++) expect(Number.isFinite(got[i])).toBe(true);
    }));
  }

  it('all-zero rows and blocks give exact zeros (+ bias); M = 0 is empty', async () => {
    const N = 8, K = 256;
    using w = tensor(randnArray(N * K, rng(SEED + 5)), { shape: [N, K], device });
    using qw = quant.quantize(w, { groupSize: 128 });
    using x = tensor(new Float32Array(2 * K), { shape: [2, K], device });
    using y = quant.matmul(x, qw, { compute: 'int8' });
    expect(Array.from((await y.toArray()) as Float32Array)).toEqual(new Array(2 * N).fill(0));
    using x0 = tensor(new Float32Array(0), { shape: [0, K], device });
    using y0 = quant.matmul(x0, qw, { compute: 'int8' });
    expect(y0.shape).toEqual([0, N]);
  });

  it('compute must be float or int8', () => {
    using w = tensor(randnArray(16 * 64, rng(SEED)), { shape: [16, 64], device });
    using qw = quant.quantize(w, { groupSize: 64 });
    using x = tensor(randnArray(64, rng(SEED)), { shape: [1, 64], device });
    expectCode(() => quant.matmul(x, qw, { compute: 'int4' as 'int8' }), 'ERR_LLMK_ARG');
    expectCode(() => quant.matmul(x, qw, { compute: 8 as unknown as 'int8' }), 'ERR_LLMK_ARG');
  });
});
