// moe.experts (and quant.stackExperts) against the float64 reference of test/reference/moe_experts.ts:
// every activation and gate layout, dense weights in every dtype mix, stacked INT4 weights, biases,
// expertMap, and the hostile inputs of issue 14. Seeded random inputs; sizes that are not multiples of
// the kernels' tiles.
import { backends, tensor, type DType, type DeviceName, type Tensor } from '../ts';
import * as moe from '../ts/moe';
import * as quant from '../ts/quant';
import { describeDevices, expectCode, randnArray, relL2, rng, SEED, tol } from './helpers';
import { roundTo } from './reference/half';
import { expertsRef, isGated, type Activation, type GateLayout } from './reference/moe_experts';
import { dequantRef, unpackCanonical } from './reference/quant';

const ACTS: Activation[] = ['swiglu', 'swigluOai', 'geglu', 'gelu', 'relu'];

interface Routing { weights: number[]; ids: number[]; k: number }

/** Random routing: ids in [0, E) (repeats allowed), weights in (0, 1). */
function randomRouting(T: number, k: number, E: number, r: () => number): Routing {
  const ids: number[] = [], weights: number[] = [];
  for (let i = 0; i < T * k; i++) { ids.push(Math.floor(r() * E)); weights.push(Math.fround(0.1 + 0.9 * r())); }
  return { ids, weights, k };
}

/** Values rounded to dtype, scaled so activations stay in the interesting range. */
function values(n: number, r: () => number, dtype: DType, scale: number): number[] {
  return Array.from(randnArray(n, r, scale), (v) => roundTo(dtype, v));
}

async function nums(t: Tensor): Promise<number[]> { return Array.from((await t.toArray()) as Float32Array); }

describeDevices(`moe.experts dense (seed ${SEED})`, (device) => {
  interface Case { T: number; E: number; H: number; I: number; k: number; act: Activation; layout: GateLayout;
    xdt: DType; wdt: DType; bias: boolean }
  async function run(c: Case) {
    const r = rng(SEED + c.T * 131 + c.H * 7 + c.I + ACTS.indexOf(c.act) * 17 + (c.bias ? 1 : 0));
    const rows = isGated(c.act) ? 2 * c.I : c.I;
    const x = values(c.T * c.H, r, c.xdt, 1);
    const gu = values(c.E * rows * c.H, r, c.wdt, 1 / Math.sqrt(c.H));
    const dn = values(c.E * c.H * c.I, r, c.wdt, 1 / Math.sqrt(c.I));
    const b1 = c.bias ? values(c.E * rows, r, 'float32', 0.5) : null;
    const b2 = c.bias ? values(c.E * c.H, r, 'float32', 0.5) : null;
    const rt = randomRouting(c.T, c.k, c.E, r);
    using xt = tensor(x, { shape: [c.T, c.H], dtype: c.xdt, device });
    using gut = tensor(gu, { shape: [c.E, rows, c.H], dtype: c.wdt, device });
    using dnt = tensor(dn, { shape: [c.E, c.H, c.I], dtype: c.wdt, device });
    using b1t = b1 ? tensor(Float32Array.from(b1), { shape: [c.E, rows], device }) : null;
    using b2t = b2 ? tensor(Float32Array.from(b2), { shape: [c.E, c.H], device }) : null;
    using wt = tensor(Float32Array.from(rt.weights), { shape: [c.T, c.k], device });
    using it = tensor(Int32Array.from(rt.ids), { shape: [c.T, c.k], device });
    using y = moe.experts(xt, { weights: wt, ids: it }, { gateUp: gut, down: dnt, gateUpBias: b1t, downBias: b2t },
      { activation: c.act, layout: c.layout });
    expect(y.shape).toEqual([c.T, c.H]);
    expect(y.dtype).toBe(c.xdt);
    const ref = expertsRef({ x, T: c.T, H: c.H, I: c.I, weights: rt.weights, ids: rt.ids, k: c.k, gateUp: gu, down: dn,
      gateUpBias: b1, downBias: b2, activation: c.act, layout: c.layout, dtype: c.xdt });
    const got = await nums(y);
    const halfs = c.xdt !== 'float32' || c.wdt !== 'float32';
    expect(relL2(got, ref)).toBeLessThan(halfs ? tol('float16') : 2e-5);
  }

  const base = { E: 4, H: 40, I: 24, k: 2, xdt: 'float32' as DType, wdt: 'float32' as DType };
  const actCases: [Activation, GateLayout, boolean][] = [];
  for (const act of ACTS) {
    actCases.push([act, 'concat', false], [act, 'concat', true]);
    if (isGated(act)) actCases.push([act, 'interleaved', true]);
  }
  it.each(actCases)('%s %s bias=%s, float32', async (act, layout, bias) => {
    await run({ ...base, T: 9, act, layout, bias });
  });

  const mixes: [DType, DType][] = [['float16', 'float16'], ['bfloat16', 'bfloat16'], ['float32', 'bfloat16'],
    ['float16', 'float32'], ['bfloat16', 'float16']];
  it.each(mixes)('x %s, weights %s (intermediate rounded to x)', async (xdt, wdt) => {
    await run({ ...base, T: 7, act: 'swiglu', layout: 'concat', bias: true, xdt, wdt });
  });

  it.each([1, 2, 33, 70])('T=%d (one token up to several full tiles per expert; dot-product and packed paths)', async (T) => {
    await run({ ...base, T, E: 3, H: 136, I: 72, act: 'swiglu', layout: 'interleaved', bias: false });
  });

  it('300 tokens for one expert (tokens packed once, the register-blocked path)', async () => {
    await run({ ...base, T: 300, E: 1, k: 1, act: 'swiglu', layout: 'concat', bias: true });
    await run({ ...base, T: 300, E: 1, k: 1, act: 'gelu', layout: 'concat', bias: false, xdt: 'bfloat16', wdt: 'float16' });
  });

  it('one token, odd H and I (decode path: weight rows not a multiple of the 8 in flight)', async () => {
    await run({ ...base, T: 1, E: 3, H: 37, I: 13, act: 'swiglu', layout: 'concat', bias: true });
    await run({ ...base, T: 1, E: 3, H: 37, I: 13, act: 'geglu', layout: 'interleaved', bias: false, wdt: 'bfloat16' });
  });

  it('35 tokens for one expert, odd I (packed path: a tail panel narrower than the micro-kernel, rows not a multiple of it)', async () => {
    await run({ ...base, T: 35, E: 1, k: 1, H: 40, I: 29, act: 'swiglu', layout: 'interleaved', bias: true });
    await run({ ...base, T: 35, E: 1, k: 1, H: 40, I: 29, act: 'relu', layout: 'concat', bias: false });
  });

  it('k = 3 with repeated experts in a row, E = 1', async () => {
    await run({ ...base, T: 5, E: 1, k: 3, act: 'geglu', layout: 'concat', bias: true });
  });

  it('expertMap: slots of experts on other ranks are skipped, ids checked against E_global', async () => {
    const r = rng(SEED + 99);
    const T = 11, H = 24, I = 16, k = 3, Eg = 7, map = [2, -1, 0, -1, 1, -1, -1], El = 3;
    const x = values(T * H, r, 'float32', 1);
    const gu = values(El * 2 * I * H, r, 'float32', 0.3), dn = values(El * H * I, r, 'float32', 0.3);
    const rt = randomRouting(T, k, Eg, r);
    using xt = tensor(x, { shape: [T, H], device });
    using gut = tensor(gu, { shape: [El, 2 * I, H], device });
    using dnt = tensor(dn, { shape: [El, H, I], device });
    using mt = tensor(Int32Array.from(map), { device });
    using wt = tensor(Float32Array.from(rt.weights), { shape: [T, k], device });
    using it2 = tensor(Int32Array.from(rt.ids), { shape: [T, k], device });
    using y = moe.experts(xt, { weights: wt, ids: it2 }, { gateUp: gut, down: dnt }, { expertMap: mt });
    const ref = expertsRef({ x, T, H, I, weights: rt.weights, ids: rt.ids, k, gateUp: gu, down: dn, expertMap: map, dtype: 'float32' });
    expect(relL2(await nums(y), ref)).toBeLessThan(2e-5);
  });

  it('with a TopkResult as routing', async () => {
    const r = rng(SEED + 5);
    const T = 6, E = 5, H = 16, I = 8;
    using logits = tensor(randnArray(T * E, r), { shape: [T, E], device });
    using routing = moe.topk(logits, { k: 2 });
    const gu = values(E * 2 * I * H, r, 'float32', 0.3), dn = values(E * H * I, r, 'float32', 0.3), x = values(T * H, r, 'float32', 1);
    using xt = tensor(x, { shape: [T, H], device });
    using gut = tensor(gu, { shape: [E, 2 * I, H], device });
    using dnt = tensor(dn, { shape: [E, H, I], device });
    using y = moe.experts(xt, routing, { gateUp: gut, down: dnt });
    const ids = Array.from((await routing.ids.toArray()) as Int32Array), w = await nums(routing.weights);
    const ref = expertsRef({ x, T, H, I, weights: w, ids, k: 2, gateUp: gu, down: dn, dtype: 'float32' });
    expect(relL2(await nums(y), ref)).toBeLessThan(2e-5);
  });
});

describeDevices(`moe.experts INT4 (seed ${SEED})`, (device) => {
  /** E per-expert quantised weights [n, kk], stacked and prepared; plus their dequantised values. */
  async function stacked(E: number, n: number, kk: number, g: number, sym: boolean, r: () => number) {
    const per: quant.Int4Weight[] = [];
    const deq: number[] = [];
    for (let e = 0; e < E; e++) {
      using w = tensor(randnArray(n * kk, r, 0.2), { shape: [n, kk] });
      const q = quant.quantize(w, { groupSize: g, symmetric: sym, scaleDtype: 'float16' });
      per.push(q);
      const codes = unpackCanonical((await q.qweight.toArray()) as Uint8Array, n, kk);
      const sc = (await q.scales.toArray()) as Float32Array;
      const z = q.zeros ? ((await q.zeros.toArray()) as Uint8Array) : null;
      deq.push(...dequantRef(codes, sc, z, n, kk, g));
    }
    using st = quant.stackExperts(per);
    for (const p of per) p.dispose();
    expect(st.experts).toBe(E);
    expect(st.n).toBe(E * n);
    const prepared = quant.prepare(st, device);
    expect(prepared.experts).toBe(E);
    return { w: prepared, deq };
  }

  it.each([[1, 'swiglu', true], [5, 'swigluOai', false], [40, 'geglu', true], [3, 'relu', false], [600, 'swiglu', false]] as [number, Activation, boolean][])(
    'T=%d %s symmetric=%s (dense x float32 and bfloat16)', async (T, act, sym) => {
      const r = rng(SEED + T * 3 + ACTS.indexOf(act));
      const E = 3, H = 64, I = 32, k = 2, rows = isGated(act) ? 2 * I : I;
      const gu = await stacked(E, rows, H, 32, sym, r), dn = await stacked(E, H, I, 32, sym, r);
      try {
        for (const xdt of ['float32', 'bfloat16'] as DType[]) {
          const x = values(T * H, r, xdt, 1);
          const rt = randomRouting(T, k, E, r);
          using xt = tensor(x, { shape: [T, H], dtype: xdt, device });
          using wt = tensor(Float32Array.from(rt.weights), { shape: [T, k], device });
          using it2 = tensor(Int32Array.from(rt.ids), { shape: [T, k], device });
          using y = moe.experts(xt, { weights: wt, ids: it2 }, { gateUp: gu.w, down: dn.w }, { activation: act, layout: 'interleaved' });
          const ref = expertsRef({ x, T, H, I, weights: rt.weights, ids: rt.ids, k, gateUp: gu.deq, down: dn.deq,
            activation: act, layout: 'interleaved', dtype: xdt });
          expect(relL2(await nums(y), ref)).toBeLessThan(xdt === 'float32' ? 2e-5 : tol(xdt));
        }
      } finally {
        gu.w.dispose(); dn.w.dispose();
      }
    });

  // H % 128 == 0: on the CPU the prepared gate/up weight is in quads (README data formats) while each expert
  // has I = 6 rows (relu: not gated), so experts and work items start inside a quad. T = 3: int4_matmul on the
  // item's rows; T = 40: the rows dequantised, with groups of 256 codes spanning two 64-byte chunks.
  it.each([[3, true, 128, 64], [40, false, 256, 256]] as [number, boolean, number, number][])(
    'T=%d relu, experts starting inside a prepared quad (symmetric=%s, H=%d, groupSize=%d)', async (T, sym, H, g) => {
    const r = rng(SEED + 7 * T);
    const E = 2, I = 6, k = 2;
    const gu = await stacked(E, I, H, g, sym, r), dn = await stacked(E, H, I, I, sym, r);
    try {
      const x = values(T * H, r, 'float32', 1);
      const rt = randomRouting(T, k, E, r);
      using xt = tensor(x, { shape: [T, H], device });
      using wt = tensor(Float32Array.from(rt.weights), { shape: [T, k], device });
      using it2 = tensor(Int32Array.from(rt.ids), { shape: [T, k], device });
      using y = moe.experts(xt, { weights: wt, ids: it2 }, { gateUp: gu.w, down: dn.w }, { activation: 'relu' });
      const ref = expertsRef({ x, T, H, I, weights: rt.weights, ids: rt.ids, k, gateUp: gu.deq, down: dn.deq,
        activation: 'relu', layout: 'interleaved', dtype: 'float32' });
      expect(relL2(await nums(y), ref)).toBeLessThan(2e-5);
    } finally {
      gu.w.dispose(); dn.w.dispose();
    }
  });
});

describeDevices('moe.experts hostile inputs', (device) => {
  const T = 4, H = 16, I = 8, E = 3, k = 2;
  const mk = (shape: number[], dtype: DType = 'float32', d: DeviceName = device) =>
    tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.1), { shape, dtype, device: d });
  function setup(ids: number[] = [0, 1, 2, 0, 1, 1, 2, 2]) {
    return {
      x: mk([T, H]), gu: mk([E, 2 * I, H]), dn: mk([E, H, I]),
      routing: { weights: mk([T, k]), ids: tensor(Int32Array.from(ids), { shape: [T, k], device }) },
    };
  }

  it('E/H/I mismatches and bad shapes or dtypes are coded errors', () => {
    const s = setup();
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: mk([E, 2 * I, H + 1]), down: s.dn }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: mk([E, H, I + 1]) }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: mk([E + 1, 2 * I, H]), down: s.dn }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { activation: 'relu' }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn, gateUpBias: mk([E, I]) }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn, downBias: mk([E, H + 1]) }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(mk([T, H, 1]), s.routing, { gateUp: s.gu, down: s.dn }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, { weights: mk([T, k + 1]), ids: s.routing.ids }, { gateUp: s.gu, down: s.dn }), 'ERR_LLMK_SHAPE');
    expectCode(() => moe.experts(s.x, { weights: s.routing.weights, ids: s.routing.weights }, { gateUp: s.gu, down: s.dn }), 'ERR_LLMK_DTYPE');
    using xi = tensor(new Int32Array(T * H), { shape: [T, H], device });
    expectCode(() => moe.experts(xi, s.routing, { gateUp: s.gu, down: s.dn }), 'ERR_LLMK_DTYPE');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { activation: 'tanh' as Activation }), 'ERR_LLMK_ARG');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { layout: 'rows' as GateLayout }), 'ERR_LLMK_ARG');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { bogus: 1 } as never), 'ERR_LLMK_ARG');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: 3 as never, down: s.dn }), 'ERR_LLMK_ARG');
  });

  it('ids outside [0, E) and bad expertMap entries raise ERR_LLMK_INDEX at the next sync', async () => {
    for (const bad of [[0, 1, 2, 3, 0, 0, 1, 1], [0, -1, 0, 0, 0, 0, 0, 0], [0, 1, 2, 1 << 30, 0, 0, 0, 0]]) {
      const s = setup(bad);
      using y = moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn });
      await expect(y.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
    }
    const s = setup([0, 1, 2, 4, 0, 0, 1, 1]);
    using m1 = tensor(Int32Array.from([0, 1, 2, -1, 5]), { device });  // entry 5 >= E_local
    using y1 = moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { expertMap: m1 });
    await expect(y1.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
    using m2 = tensor(Int32Array.from([0, 1, 2, -1]), { device });  // id 4 >= E_global
    using y2 = moe.experts(s.x, s.routing, { gateUp: s.gu, down: s.dn }, { expertMap: m2 });
    await expect(y2.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
  });

  it('k = 0 gives zeros, T = 0 an empty result', async () => {
    const s = setup();
    using w0 = tensor(new Float32Array(0), { shape: [T, 0], device });
    using i0 = tensor(new Int32Array(0), { shape: [T, 0], device });
    using y = moe.experts(s.x, { weights: w0, ids: i0 }, { gateUp: s.gu, down: s.dn });
    expect(Array.from((await y.toArray()) as Float32Array)).toEqual(new Array(T * H).fill(0));
    using xe = tensor(new Float32Array(0), { shape: [0, H], device });
    using we = tensor(new Float32Array(0), { shape: [0, k], device });
    using ie = tensor(new Int32Array(0), { shape: [0, k], device });
    using ye = moe.experts(xe, { weights: we, ids: ie }, { gateUp: s.gu, down: s.dn });
    expect(ye.shape).toEqual([0, H]);
  });

  it('NaN in x propagates to its own token only', async () => {
    const r = rng(SEED + 7);
    const x = values(T * H, r, 'float32', 1);
    x[1 * H + 3] = NaN;
    using xt = tensor(x, { shape: [T, H], device });
    using gut = tensor(values(E * 2 * I * H, r, 'float32', 0.3), { shape: [E, 2 * I, H], device });
    using dnt = tensor(values(E * H * I, r, 'float32', 0.3), { shape: [E, H, I], device });
    const s = setup();
    using y = moe.experts(xt, s.routing, { gateUp: gut, down: dnt });
    const got = await nums(y);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < H; c++) expect(Number.isNaN(got[t * H + c])).toBe(t === 1);
  });

  it('an unstacked Int4Weight, or experts with mismatched group sizes, are refused', () => {
    const s = setup();
    using w = mk([2 * I, H]);
    using q = quant.quantize(w, { groupSize: H });
    using d = quant.quantize(mk([H, I]), { groupSize: I });
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: q, down: d }), 'ERR_LLMK_ARG');
    using a = quant.quantize(mk([8, 64]), { groupSize: 32 });
    using b = quant.quantize(mk([8, 64]), { groupSize: 64 });
    expectCode(() => quant.stackExperts([a, b]), 'ERR_LLMK_SHAPE');
    using c8 = quant.quantize(mk([8, 64]), { groupSize: 32, symmetric: false });
    expectCode(() => quant.stackExperts([a, c8]), 'ERR_LLMK_ARG');
    using c16 = quant.quantize(mk([8, 64]), { groupSize: 32, scaleDtype: 'float16' });
    expectCode(() => quant.stackExperts([a, c16]), 'ERR_LLMK_DTYPE');
    expectCode(() => quant.stackExperts([]), 'ERR_LLMK_ARG');
    using st = quant.stackExperts([a, a]);
    expectCode(() => quant.stackExperts([st]), 'ERR_LLMK_ARG');
    // stacked, but the wrong number of experts for down
    using gq = quant.stackExperts([q, q, q]);
    using dq = quant.stackExperts([d, d]);
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: gq, down: dq }), 'ERR_LLMK_SHAPE');
  });

  const cuda = backends().cuda.available;
  (cuda && device === 'cpu' ? it : it.skip)('a weight on another device is refused (needs a CUDA device)', () => {
    const s = setup();
    using g2 = mk([E, 2 * I, H], 'float32', 'cuda:0');
    expectCode(() => moe.experts(s.x, s.routing, { gateUp: g2, down: s.dn }), 'ERR_LLMK_DEVICE');
  });
});
