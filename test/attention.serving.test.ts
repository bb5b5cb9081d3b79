// attention.varlen / KvCache / attention.paged on the CPU against the float64 reference (each sequence on
// its own, dense mask), equality with blockSparse on the same data laid out contiguously, page sizes, GQA,
// pages a mask removes never read, and hostile input.
import * as attention from '../ts/attention';
import { BlockLayout } from '../ts/attention';
import { tensor, type Tensor } from '../ts/tensor';
import { backends } from '../ts/device';
import type { DType } from '../ts/dtype';
import { expectCode, randnArray, relL2, rng, SEED } from './helpers';
import { attentionRef, RefLayout, RefOptions } from './reference/attention';

type FDType = 'float32' | 'float16' | 'bfloat16';

/** A layout that keeps every block (one block covering the whole sequence), for the reference. */
const denseRef = (nq: number, nk: number): RefLayout =>
  ({ blockQ: Math.max(nq, 1), blockK: Math.max(nk, 1), heads: 1, perHead: false, rowPtr: Int32Array.of(0, 1), colIdx: Int32Array.of(0) });

const i32 = (a: number[]) => tensor(Int32Array.from(a), { dtype: 'int32' });

interface Batch {
  lensQ: number[]; lensK: number[]; Hq: number; Hkv: number; D: number;
  q: Float32Array; k: Float32Array; v: Float32Array;  // packed [total, H, D]
  cuQ: number[]; cuK: number[];
}

function makeBatch(seed: number, lensQ: number[], lensK: number[], Hq: number, Hkv: number, D: number): Batch {
  const r = rng(seed);
  const cum = (ls: number[]) => ls.reduce((a, l) => [...a, a[a.length - 1] + l], [0]);
  const cuQ = cum(lensQ), cuK = cum(lensK);
  return {
    lensQ, lensK, Hq, Hkv, D, cuQ, cuK,
    q: randnArray(cuQ[cuQ.length - 1] * Hq * D, r), k: randnArray(cuK[cuK.length - 1] * Hkv * D, r),
    v: randnArray(cuK[cuK.length - 1] * Hkv * D, r),
  };
}

/** Reference out [totalQ, Hq, D] and lse [Hq, totalQ], one sequence at a time. */
function refBatch(b: Batch, o: RefOptions): { out: Float64Array; lse: Float64Array } {
  const { Hq, Hkv, D } = b;
  const totalQ = b.cuQ[b.cuQ.length - 1];
  const out = new Float64Array(totalQ * Hq * D), lse = new Float64Array(Hq * totalQ);
  for (let s = 0; s < b.lensQ.length; s++) {
    const nq = b.lensQ[s], nk = b.lensK[s];
    if (nq === 0) continue;
    const q = b.q.subarray(b.cuQ[s] * Hq * D, b.cuQ[s + 1] * Hq * D);
    const k = b.k.subarray(b.cuK[s] * Hkv * D, b.cuK[s + 1] * Hkv * D), v = b.v.subarray(b.cuK[s] * Hkv * D, b.cuK[s + 1] * Hkv * D);
    const r = attentionRef(q, k, v, 1, nq, nk, Hq, Hkv, D, denseRef(nq, nk), o);
    out.set(r.out, b.cuQ[s] * Hq * D);
    for (let h = 0; h < Hq; h++) for (let i = 0; i < nq; i++) lse[h * totalQ + b.cuQ[s] + i] = r.lse[h * nq + i];
  }
  return { out, lse };
}

function expectClose(out: Float32Array, lse: Float32Array, ref: { out: Float64Array; lse: Float64Array }, ctx: string, tolOut = 1e-5): void {
  const e = relL2(out, ref.out);
  if (!(e < tolOut)) throw new Error(`${ctx}: out rel L2 ${e}`);
  const fin: number[] = [], finRef: number[] = [];
  for (let i = 0; i < lse.length; i++) {
    if ((ref.lse[i] === -Infinity) !== (lse[i] === -Infinity)) throw new Error(`${ctx}: lse[${i}] = ${lse[i]}, reference ${ref.lse[i]}`);
    if (ref.lse[i] !== -Infinity) { fin.push(lse[i]); finRef.push(ref.lse[i]); }
  }
  const el = relL2(fin, finRef);
  if (!(el < 1e-5)) throw new Error(`${ctx}: lse rel L2 ${el}`);
}

const MASKS: { name: string; o: RefOptions }[] = [
  { name: 'no mask', o: {} },
  { name: 'causal', o: { causal: true } },
  { name: 'causal + window 37', o: { causal: true, window: { left: 37, right: 0 } } },
  { name: 'two-sided window 20/9 + softcap 5', o: { window: { left: 20, right: 9 }, softcap: 5 } },
  { name: 'causal, scale 0.3', o: { causal: true, scale: 0.3 } },
];

let seedNo = 0;
const nextSeed = () => SEED + 104729 * ++seedNo;

async function runVarlen(b: Batch, o: RefOptions, dtype: FDType = 'float32'): Promise<{ out: Float32Array; lse: Float32Array; qr: Float32Array; kr: Float32Array; vr: Float32Array }> {
  const mk = (d: Float32Array, H: number) => tensor(d, { dtype: dtype as DType, shape: [d.length / (H * b.D), H, b.D] });
  const q = mk(b.q, b.Hq), k = mk(b.k, b.Hkv), v = mk(b.v, b.Hkv);
  const cq = i32(b.cuQ), ck = i32(b.cuK);
  try {
    const res = attention.varlen(q, k, v, { ...o, cuSeqlensQ: cq, cuSeqlensK: ck, returnLse: true });
    const out = await res.out.toArray() as Float32Array, lse = await res.lse!.toArray() as Float32Array;
    res[Symbol.dispose]();
    const [qr, kr, vr] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]) as Float32Array[];
    return { out, lse, qr, kr, vr };
  } finally {
    [q, k, v, cq, ck].forEach((t) => t.dispose());
  }
}

describe('attention.varlen (cpu)', () => {
  for (const m of MASKS) {
    test(`ragged batch with empty sequences, GQA 4:2, ${m.name}`, async () => {
      const seed = nextSeed();
      // chunked prefill (nq < nk), nq > nk, an empty query set, an empty key set, a long sequence
      const b = makeBatch(seed, [7, 40, 0, 5, 130], [19, 33, 12, 0, 130], 4, 2, 64);
      const r = await runVarlen(b, m.o);
      expectClose(r.out, r.lse, refBatch(b, m.o), `${m.name} (seed ${seed})`);
    });
  }

  for (const dtype of ['float16', 'bfloat16'] as const) {
    test(`${dtype}, causal, MQA 4:1, D 128`, async () => {
      const seed = nextSeed();
      const b = makeBatch(seed, [3, 70], [50, 70], 4, 1, 128);
      const r = await runVarlen(b, { causal: true }, dtype);
      const ref = refBatch({ ...b, q: r.qr, k: r.kr, v: r.vr }, { causal: true });
      const e = relL2(r.out, ref.out);
      expect(e).toBeLessThan(1e-2);
    });
  }

  test('equals blockSparse on equal-length sequences laid out as a batch, every mask', async () => {
    const N = 100, B = 3, Hq = 4, Hkv = 2, D = 32;
    for (const m of MASKS) {
      const b = makeBatch(nextSeed(), [N, N, N], [N, N, N], Hq, Hkv, D);
      const r = await runVarlen(b, m.o);
      const q = tensor(b.q, { shape: [B, N, Hq, D] }), k = tensor(b.k, { shape: [B, N, Hkv, D] }), v = tensor(b.v, { shape: [B, N, Hkv, D] });
      const bs = attention.blockSparse(q, k, v, BlockLayout.dense({ seqLen: N, blockSize: 64 }), { ...m.o, returnLse: true });
      const out = await bs.out.toArray() as Float32Array, lse = await bs.lse!.toArray() as Float32Array;
      bs[Symbol.dispose](); q.dispose(); k.dispose(); v.dispose();
      expect(relL2(r.out, out)).toBeLessThan(1e-6);
      // blockSparse's LSE is [B, Hq, N]; varlen's [Hq, B·N]
      for (let bi = 0; bi < B; bi++) for (let h = 0; h < Hq; h++) for (let i = 0; i < N; i++)
        expect(Math.abs(r.lse[h * B * N + bi * N + i] - lse[(bi * Hq + h) * N + i])).toBeLessThan(1e-5);
    }
  });

  test('B = 0 gives empty outputs', async () => {
    const q = tensor(new Float32Array(0), { shape: [0, 2, 8] }), k = tensor(new Float32Array(0), { shape: [0, 2, 8] });
    const cu = i32([0]);
    const r = attention.varlen(q, k, k, { cuSeqlensQ: cu, cuSeqlensK: cu, returnLse: true });
    expect(r.out.shape).toEqual([0, 2, 8]);
    expect((await r.out.toArray()).length).toBe(0);
    expect(r.lse!.shape).toEqual([2, 0]);
    r[Symbol.dispose](); q.dispose(); k.dispose(); cu.dispose();
  });

  describe('hostile input', () => {
    const q = () => tensor(new Float32Array(10 * 4 * 8), { shape: [10, 4, 8] });
    const kv = () => tensor(new Float32Array(12 * 2 * 8), { shape: [12, 2, 8] });
    async function atSync(cuQ: number[], cuK: number[]): Promise<unknown> {
      const [qq, k, cq, ck] = [q(), kv(), i32(cuQ), i32(cuK)];
      try {
        const r = attention.varlen(qq, k, k, { cuSeqlensQ: cq, cuSeqlensK: ck });
        try { await r.out.toArray(); return null; } catch (e) { return e; } finally { r.out.dispose(); }
      } finally { [qq, k, cq, ck].forEach((t) => t.dispose()); }
    }
    test('cu_seqlens not increasing, not ending at the total, not starting at 0 → ERR_LLMK_INDEX at sync', async () => {
      for (const [cq, ck] of [[[0, 6, 4, 10], [0, 4, 8, 12]], [[0, 4, 10], [0, 4, 11]], [[0, 4, 9], [0, 4, 12]], [[1, 4, 10], [0, 4, 12]]]) {
        const e = await atSync(cq, ck) as { code?: string };
        expect(e?.code).toBe('ERR_LLMK_INDEX');
      }
      expect(await atSync([0, 4, 10], [0, 0, 12])).toBeNull();
    });
    test('shape, dtype and option contracts → coded errors at the call', () => {
      const [qq, k] = [q(), kv()];
      const cq = i32([0, 10]), ck = i32([0, 12]), cbad = i32([0, 5, 12]);
      const k3 = tensor(new Float32Array(12 * 3 * 8), { shape: [12, 3, 8] });
      const kf16 = tensor(new Float32Array(12 * 2 * 8), { shape: [12, 2, 8], dtype: 'float16' });
      const cf = tensor(Float32Array.of(0, 10), {});
      expectCode(() => attention.varlen(qq, k3, k3, { cuSeqlensQ: cq, cuSeqlensK: ck }), 'ERR_LLMK_SHAPE');  // Hq % Hkv ≠ 0
      expectCode(() => attention.varlen(qq, kf16, kf16, { cuSeqlensQ: cq, cuSeqlensK: ck }), 'ERR_LLMK_DTYPE');
      expectCode(() => attention.varlen(qq, k, k, { cuSeqlensQ: cq, cuSeqlensK: cbad }), 'ERR_LLMK_SHAPE');  // B differs
      expectCode(() => attention.varlen(qq, k, k, { cuSeqlensQ: cf, cuSeqlensK: ck }), 'ERR_LLMK_DTYPE');
      expectCode(() => attention.varlen(qq, k, k, { cuSeqlensQ: cq, cuSeqlensK: ck, softcap: -1 }), 'ERR_LLMK_ARG');
      expectCode(() => attention.varlen(qq, k, k, { cuSeqlensQ: cq, cuSeqlensK: ck, window: { left: -2 } }), 'ERR_LLMK_ARG');
      expectCode(() => attention.varlen(qq, k, k, { cuSeqlensQ: cq } as never), 'ERR_LLMK_ARG');
      expectCode(() => attention.varlen(qq, k, k, null as never), 'ERR_LLMK_ARG');
      [qq, k, cq, ck, cbad, k3, kf16, cf].forEach((t) => t.dispose());
    });
  });
});

/** Fills a cache with each sequence's K/V at shuffled pages; returns the block table rows. */
async function fillCache(cache: attention.KvCache, b: Batch, seed: number, maxPages: number): Promise<number[][]> {
  const r = rng(seed);
  const ps = cache.pageSize;
  const free = Array.from({ length: cache.numPages }, (_, i) => i);
  for (let i = free.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [free[i], free[j]] = [free[j], free[i]]; }
  const tables: number[][] = [];
  const slots: number[] = [];
  for (let s = 0; s < b.lensK.length; s++) {
    const pages = Array.from({ length: Math.ceil(b.lensK[s] / ps) }, () => free.pop()!);
    tables.push([...pages, ...Array(maxPages - pages.length).fill(2 ** 30)]);  // padding past the length: never read
    for (let j = 0; j < b.lensK[s]; j++) slots.push(pages[Math.floor(j / ps)] * ps + (j % ps));
  }
  const total = slots.length;
  const k = tensor(b.k, { shape: [total, b.Hkv, b.D] }), v = tensor(b.v, { shape: [total, b.Hkv, b.D] }), sm = i32(slots);
  cache.append(k, v, sm);
  k.dispose(); v.dispose(); sm.dispose();
  return tables;
}

async function runPaged(cache: attention.KvCache, b: Batch, tables: number[][], o: RefOptions): Promise<{ out: Float32Array; lse: Float32Array }> {
  const q = tensor(b.q, { shape: [b.q.length / (b.Hq * b.D), b.Hq, b.D] });
  const bt = tensor(Int32Array.from(tables.flat()), { dtype: 'int32', shape: [tables.length, tables[0]?.length ?? 0] });
  const sl = i32(b.lensK), cq = i32(b.cuQ);
  try {
    const res = attention.paged(q, cache, { ...o, blockTables: bt, seqLens: sl, cuSeqlensQ: cq, returnLse: true });
    const out = await res.out.toArray() as Float32Array, lse = await res.lse!.toArray() as Float32Array;
    res[Symbol.dispose]();
    return { out, lse };
  } finally {
    [q, bt, sl, cq].forEach((t) => t.dispose());
  }
}

describe('attention.paged + KvCache (cpu)', () => {
  for (const pageSize of [16, 48, 256]) {
    test(`page size ${pageSize}: every mask against the reference and against varlen on contiguous data`, async () => {
      const seed = nextSeed();
      // decode (1 query), chunked prefill (9 of 300), a full prefill, an empty sequence, keys but no queries
      const b = makeBatch(seed, [1, 9, 70, 0, 0], [300, 300, 70, 0, 21], 8, 2, 64);
      const maxPages = Math.ceil(300 / pageSize) + 1;
      const cache = new attention.KvCache({ numPages: 5 * maxPages, pageSize, kvHeads: 2, headDim: 64 });
      try {
        const tables = await fillCache(cache, b, seed, maxPages);
        for (const m of MASKS) {
          const p = await runPaged(cache, b, tables, m.o);
          expectClose(p.out, p.lse, refBatch(b, m.o), `page ${pageSize}, ${m.name} (seed ${seed})`);
          const c = await runVarlen(b, m.o);
          expect(relL2(p.out, c.out)).toBeLessThan(1e-6);
        }
      } finally {
        cache.dispose();
      }
    });
  }

  test('decode batch (one query per sequence, every KV head per task): every mask against the reference', async () => {
    const seed = nextSeed(), pageSize = 16;
    const b = makeBatch(seed, [1, 1, 1, 1, 1, 2], [300, 1, 0, 77, 150, 64], 8, 2, 64);
    const cache = new attention.KvCache({ numPages: 64, pageSize, kvHeads: 2, headDim: 64 });
    try {
      const tables = await fillCache(cache, b, seed, 20);
      for (const m of MASKS) {
        const p = await runPaged(cache, b, tables, m.o);
        expectClose(p.out, p.lse, refBatch(b, m.o), `decode batch, ${m.name} (seed ${seed})`);
        const c = await runVarlen(b, m.o);
        expectClose(c.out, c.lse, refBatch(b, m.o), `decode batch varlen, ${m.name} (seed ${seed})`);
      }
    } finally {
      cache.dispose();
    }
  });

  test('decode: pages outside every window are not read (poisoned page ids there), one inside → ERR_LLMK_INDEX', async () => {
    const seed = nextSeed(), ps = 16, nk = 400;
    const b = makeBatch(seed, [1, 1], [nk, nk - 50], 4, 1, 32);
    const cache = new attention.KvCache({ numPages: 64, pageSize: ps, kvHeads: 1, headDim: 32 });
    try {
      const tables = await fillCache(cache, b, seed, 26);
      const o: RefOptions = { causal: true, window: { left: 40, right: 0 } };
      const poisoned = tables.map((row, s) => row.map((p, i) => ((i + 1) * ps - 1 < b.lensK[s] - 1 - 40 ? -7 : p)));
      const p = await runPaged(cache, b, poisoned, o);
      expectClose(p.out, p.lse, refBatch(b, o), `window decode (seed ${seed})`);
      const bad = tables.map((row) => [...row]);
      bad[0][Math.floor((nk - 1) / ps)] = 64;  // the page of the last key: read
      await expect(runPaged(cache, b, bad, o)).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
    } finally {
      cache.dispose();
    }
  });

  test('append: slot -1 is skipped; a slot outside the cache → ERR_LLMK_INDEX and nothing written', async () => {
    const cache = new attention.KvCache({ numPages: 2, pageSize: 16, kvHeads: 1, headDim: 8 });
    const k = tensor(Float32Array.from({ length: 24 }, (_, i) => i + 1), { shape: [3, 1, 8] });
    const sm = i32([5, -1, 31]);
    cache.append(k, k, sm);
    const kc = await cache.key.toArray() as Float32Array;
    expect(Array.from(kc.subarray(5 * 8, 6 * 8))).toEqual(Array.from({ length: 8 }, (_, i) => i + 1));
    expect(Array.from(kc.subarray(31 * 8, 32 * 8))).toEqual(Array.from({ length: 8 }, (_, i) => i + 17));
    expect(kc.filter((x) => x !== 0).length).toBe(16);
    const bad = i32([0, 1, 32]);
    cache.append(k, k, bad);
    await expect(cache.key.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
    expect((await cache.key.toArray() as Float32Array).filter((x) => x !== 0).length).toBe(16);
    const k16 = tensor(new Float32Array(8), { shape: [1, 1, 8], dtype: 'float16' });
    expectCode(() => cache.append(k16, k16, i32([0])), 'ERR_LLMK_DTYPE');
    expectCode(() => cache.append(k, k, i32([0])), 'ERR_LLMK_SHAPE');
    [k, sm, bad, k16].forEach((t) => t.dispose());
    cache.dispose();
  });

  describe('hostile input', () => {
    let cache: attention.KvCache;
    let q: Tensor;
    beforeAll(() => {
      cache = new attention.KvCache({ numPages: 4, pageSize: 16, kvHeads: 2, headDim: 8 });
      q = tensor(new Float32Array(2 * 4 * 8), { shape: [2, 4, 8] });
    });
    afterAll(() => { cache.dispose(); q.dispose(); });
    const call = (qq: Tensor, c: attention.KvCache, bt: number[][], sl: number[], cq: number[]) => {
      const tb = tensor(Int32Array.from(bt.flat()), { dtype: 'int32', shape: [bt.length, bt[0]?.length ?? 0] });
      const ts = i32(sl), tq = i32(cq);
      try { return attention.paged(qq, c, { blockTables: tb, seqLens: ts, cuSeqlensQ: tq }); } finally { [tb, ts, tq].forEach((t) => t.dispose()); }
    };
    test('seqLens beyond the block table, cu_seqlens wrong → ERR_LLMK_INDEX at sync', async () => {
      for (const [sl, cq] of [[[33, 5], [0, 1, 2]], [[-1, 5], [0, 1, 2]], [[5, 5], [0, 2, 1]], [[5, 5], [0, 1, 3]]]) {
        const r = call(q, cache, [[0, 1], [2, 3]], sl, cq);
        await expect(r.out.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_INDEX' });
        r.out.dispose();
      }
    });
    test('empty sequences give 0 and -Inf LSE; B = 0', async () => {
      const tb = tensor(Int32Array.of(0, 1), { dtype: 'int32', shape: [2, 1] }), sl = i32([0, 0]), cq = i32([0, 1, 2]);
      const r = attention.paged(q, cache, { blockTables: tb, seqLens: sl, cuSeqlensQ: cq, returnLse: true });
      expect(Array.from(await r.out.toArray() as Float32Array)).toEqual(Array(64).fill(0));
      expect(Array.from(await r.lse!.toArray() as Float32Array)).toEqual(Array(8).fill(-Infinity));
      r[Symbol.dispose](); tb.dispose(); sl.dispose(); cq.dispose();
      const q0 = tensor(new Float32Array(0), { shape: [0, 4, 8] });
      const r0 = call(q0, cache, [], [], [0]);
      expect(r0.out.shape).toEqual([0, 4, 8]);
      await r0.out.toArray();
      r0.out.dispose(); q0.dispose();
    });
    test('Hq % Hkv, cache dtype, shapes, options → coded errors at the call', () => {
      const q3 = tensor(new Float32Array(2 * 3 * 8), { shape: [2, 3, 8] });
      const qh = tensor(new Float32Array(2 * 4 * 8), { shape: [2, 4, 8], dtype: 'bfloat16' });
      expectCode(() => call(q3, cache, [[0], [1]], [1, 1], [0, 1, 2]), 'ERR_LLMK_SHAPE');
      expectCode(() => call(qh, cache, [[0], [1]], [1, 1], [0, 1, 2]), 'ERR_LLMK_DTYPE');
      expectCode(() => call(q, cache, [[0], [1]], [1], [0, 1, 2]), 'ERR_LLMK_SHAPE');
      expectCode(() => call(q, {} as never, [[0], [1]], [1, 1], [0, 1, 2]), 'ERR_LLMK_ARG');
      expectCode(() => new attention.KvCache({ numPages: 4, pageSize: 8, kvHeads: 2, headDim: 8 }), 'ERR_LLMK_ARG');
      expectCode(() => new attention.KvCache({ numPages: 4, pageSize: 16, kvHeads: 2, headDim: 8.5 }), 'ERR_LLMK_ARG');
      expectCode(() => new attention.KvCache(null as never), 'ERR_LLMK_ARG');
      expectCode(() => new attention.KvCache({ numPages: 4, pageSize: 16, kvHeads: 2, headDim: 12 }), 'ERR_LLMK_ARG');  // D % 8
      expectCode(() => new attention.KvCache({ numPages: 4, pageSize: 16, kvHeads: 2, headDim: 8, dtype: 'int32' }), 'ERR_LLMK_DTYPE');
      expectCode(() => new attention.KvCache({ numPages: 2 ** 28, pageSize: 16, kvHeads: 2, headDim: 8 }), 'ERR_LLMK_ARG');
      q3.dispose(); qh.dispose();
    });
    const cuda = backends().cuda.available;
    (cuda ? test : test.skip)('a cache on another device → ERR_LLMK_DEVICE', () => {
      const c = new attention.KvCache({ numPages: 1, pageSize: 16, kvHeads: 2, headDim: 8, device: 'cuda' });
      expectCode(() => call(q, c, [[0], [0]], [1, 1], [0, 1, 2]), 'ERR_LLMK_DEVICE');
      c.dispose();
    });
  });
});

test('examples/decode-loop.ts: continuous batching over pages matches blockSparse from scratch', () => {
  const ex = require('path').join(__dirname, '..', 'examples', 'decode-loop.ts');
  const code = `
    const ts = require(${JSON.stringify(require.resolve('typescript'))}), fs = require('fs');
    require.extensions['.ts'] = (m, f) => m._compile(ts.transpileModule(fs.readFileSync(f, 'utf8'),
      { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: f }).outputText, f);
    process.argv = [process.argv[0], ${JSON.stringify(ex)}, '30'];
    require(${JSON.stringify(ex)});`;
  const r = require('child_process').spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120000 });
  expect(r.stdout + r.stderr).toMatch(/decode-loop: 30 steps, \d+ sequences .* max \|paged − blockSparse from scratch\| = \d/);
  expect(r.status).toBe(0);
});

test('varlen, paged, KvCache and append under hostile arguments: LlmkError with a code, never anything else', async () => {
  const t = tensor(new Float32Array(6), { shape: [2, 3] });
  const stale = tensor(new Float32Array(1));
  stale.dispose();
  const cache = new attention.KvCache({ numPages: 2, pageSize: 16, kvHeads: 1, headDim: 8 });
  const cu = i32([0, 2]);
  const vals: unknown[] = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], t, stale, cu, cache, () => 0, true, Symbol('s'), 10n,
    { cuSeqlensQ: cu, cuSeqlensK: cu }, { cuSeqlensQ: stale, cuSeqlensK: cu }, { blockTables: cu, seqLens: cu, cuSeqlensQ: cu },
    { window: { left: Symbol('l') }, cuSeqlensQ: cu, cuSeqlensK: cu }, { scale: '1', cuSeqlensQ: cu, cuSeqlensK: cu },
    { numPages: 1, pageSize: 16, kvHeads: 1, headDim: 8, dtype: 'nope' }, { numPages: 2 ** 40, pageSize: 16, kvHeads: 1, headDim: 8 }];
  type Fn = (...a: unknown[]) => unknown;
  const targets: Array<[string, Fn]> = [
    ['varlen', attention.varlen as unknown as Fn], ['paged', attention.paged as unknown as Fn],
    ['new KvCache', (...a) => new (attention.KvCache as unknown as new (...x: unknown[]) => attention.KvCache)(...a)],
    ['KvCache.append', (...a) => (cache.append as unknown as Fn).apply(cache, a)],
  ];
  const wrong: string[] = [];
  for (const [name, fn] of targets) {
    for (let n = 0; n < 200; n++) {
      const args = Array.from({ length: 1 + (n % 4) }, (_, i) => vals[(n * 7 + i * 13 + name.length) % vals.length]);
      try {
        const r = fn(...args) as { dispose?: () => void; out?: Tensor } | undefined;
        r?.out?.dispose();
        if (r instanceof attention.KvCache) r.dispose();
      } catch (e) {
        if (!(e instanceof Error) || e.name !== 'LlmkError' || !(e as { code?: string }).code) wrong.push(`${name}: ${String(e)}`);
      }
    }
  }
  try { await cache.key.toArray(); } catch { /* an index error of a hostile append, reported here */ }
  expect(wrong).toEqual([]);
  [t, cu].forEach((x) => x.dispose());
  cache.dispose();
});
