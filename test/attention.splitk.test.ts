// Split-K of the CPU attention core (calls with at most 16 queries per sequence: each task's visible keys cut
// into chunks run on separate threads, merged by log-sum-exp) against the float64 reference: context lengths
// 0, 1, not a multiple of the chunk, many chunks, rows that see no key of a chunk or no key at all; through
// varlen, paged and blockSparse, on the ISA in use (the suite is run with LLMK_CPU_ATTN_ISA=generic / avx2 too).
// LLMK_CPU_ATTN_SPLIT_KEYS forces small chunks so that short contexts split into many.
import * as attention from '../ts/attention';
import { BlockLayout } from '../ts/attention';
import { tensor, type Tensor } from '../ts/tensor';
import type { DType } from '../ts/dtype';
import { randnArray, relL2, rng, SEED, tol, withSplitKeys } from './helpers';
import { attentionRef, RefOptions } from './reference/attention';

interface Seqs {
  lensQ: number[]; lensK: number[]; Hq: number; Hkv: number; D: number;
  q: Float32Array; k: Float32Array; v: Float32Array;  // packed [total, H, D]
}

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
const offsets = (a: number[]) => a.map((_, i) => sum(a.slice(0, i)));
const i32 = (a: number[], shape?: number[]) => tensor(Int32Array.from(a), { dtype: 'int32', shape });

let seedNo = 0;
function makeSeqs(lensQ: number[], lensK: number[], Hq: number, Hkv: number, D: number): Seqs & { seed: number } {
  const seed = SEED + 7727 * ++seedNo, r = rng(seed);
  return {
    seed, lensQ, lensK, Hq, Hkv, D,
    q: randnArray(sum(lensQ) * Hq * D, r), k: randnArray(sum(lensK) * Hkv * D, r), v: randnArray(sum(lensK) * Hkv * D, r),
  };
}

/** Checks out [totalQ, Hq, D] and lse [Hq, totalQ] against the reference, one sequence at a time. */
function check(s: Seqs, o: RefOptions, out: Float32Array, lse: Float32Array, ctx: string, kr = s.k, vr = s.v, tolOut = 1e-5): void {
  const { Hq, Hkv, D } = s, totalQ = sum(s.lensQ), q0 = offsets(s.lensQ), k0 = offsets(s.lensK);
  const refOut = new Float64Array(out.length), refLse = new Float64Array(lse.length);
  s.lensQ.forEach((nq, b) => {
    if (nq === 0) return;
    const nk = s.lensK[b];
    const dense = { blockQ: nq, blockK: Math.max(nk, 1), heads: 1, perHead: false, rowPtr: Int32Array.of(0, 1), colIdx: Int32Array.of(0) };
    const r = attentionRef(s.q.subarray(q0[b] * Hq * D, (q0[b] + nq) * Hq * D), kr.subarray(k0[b] * Hkv * D, (k0[b] + nk) * Hkv * D),
      vr.subarray(k0[b] * Hkv * D, (k0[b] + nk) * Hkv * D), 1, nq, nk, Hq, Hkv, D, dense, o);
    refOut.set(r.out, q0[b] * Hq * D);
    for (let h = 0; h < Hq; h++) for (let i = 0; i < nq; i++) refLse[h * totalQ + q0[b] + i] = r.lse[h * nq + i];
  });
  const e = relL2(out, refOut);
  if (!(e < tolOut)) throw new Error(`${ctx} (seed ${SEED}): out rel L2 ${e}`);
  for (let i = 0; i < lse.length; i++) {
    const inf = refLse[i] === -Infinity;
    if (inf !== (lse[i] === -Infinity) || (!inf && Math.abs(lse[i] - refLse[i]) > 1e-4 * Math.max(1, Math.abs(refLse[i]))))
      throw new Error(`${ctx} (seed ${SEED}): lse[${i}] = ${lse[i]}, reference ${refLse[i]}`);
  }
  for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) throw new Error(`${ctx}: NaN at ${i}`);
}

async function results(r: { out: Tensor; lse?: Tensor; [Symbol.dispose](): void }): Promise<{ out: Float32Array; lse: Float32Array }> {
  const out = await r.out.toArray() as Float32Array, lse = await r.lse!.toArray() as Float32Array;
  r[Symbol.dispose]();
  return { out, lse };
}

async function runVarlen(s: Seqs, o: RefOptions, dtype: DType = 'float32'): Promise<{ out: Float32Array; lse: Float32Array; kr: Float32Array; vr: Float32Array }> {
  const q = tensor(s.q, { dtype, shape: [sum(s.lensQ), s.Hq, s.D] });
  const k = tensor(s.k, { dtype, shape: [sum(s.lensK), s.Hkv, s.D] }), v = tensor(s.v, { dtype, shape: [sum(s.lensK), s.Hkv, s.D] });
  const cq = i32([...offsets(s.lensQ), sum(s.lensQ)]), ck = i32([...offsets(s.lensK), sum(s.lensK)]);
  try {
    const r = await results(attention.varlen(q, k, v, { ...o, cuSeqlensQ: cq, cuSeqlensK: ck, returnLse: true }));
    const [qr, kr, vr] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]) as Float32Array[];
    s.q.set(qr);  // the reference sees the dtype-rounded inputs
    return { ...r, kr, vr };
  } finally {
    [q, k, v, cq, ck].forEach((t) => t.dispose());
  }
}

const MASKS: { name: string; o: RefOptions }[] = [
  { name: 'no mask', o: {} },
  { name: 'causal', o: { causal: true } },
  { name: 'causal + window 300', o: { causal: true, window: { left: 300, right: 0 } } },
  { name: 'window 700/5 + softcap 4', o: { window: { left: 700, right: 5 }, softcap: 4 } },
];

describe('attention split-K (cpu)', () => {
  // contexts 0, 1, around a 256-key chunk, not a multiple of it, and long (many chunks at 16 keys)
  const lensK = [0, 1, 255, 257, 1300, 600];
  for (const chunk of [undefined, 64, 16]) {
    test(`decode batch, GQA 8:2, D 32, chunk ${chunk ?? 'auto'}: every mask`, async () => {
      const s = makeSeqs(lensK.map(() => 1), lensK, 8, 2, 32);
      for (const m of MASKS) {
        const r = await withSplitKeys(chunk, () => runVarlen(s, m.o));
        check(s, m.o, r.out, r.lse, `decode chunk ${chunk}, ${m.name}`);
      }
    });
  }

  test('16 queries per sequence, chunks of 16 keys: rows that see no key of a chunk, or none at all (nq > nk, nk = 0)', async () => {
    const s = makeSeqs([16, 16, 16, 3, 16], [5, 0, 700, 1100, 1], 4, 2, 16);
    for (const o of [{ causal: true }, { causal: true, window: { left: 100, right: 0 } }, { window: { left: 40, right: 20 } }] as RefOptions[]) {
      for (const chunk of [16, undefined]) {
        const r = await withSplitKeys(chunk, () => runVarlen(s, o));
        check(s, o, r.out, r.lse, `16 queries, chunk ${chunk}, ${JSON.stringify(o)}`);
      }
    }
  });

  test('one long sequence: MQA (one KV head per task), D 40 (rows not a multiple of the vector), float16', async () => {
    for (const [Hq, Hkv, D, dtype] of [[4, 1, 32, 'float32'], [4, 2, 40, 'float32'], [8, 2, 32, 'float16']] as const) {
      const s = makeSeqs([1], [2600], Hq, Hkv, D);
      const o: RefOptions = { causal: true };
      const r = await runVarlen(s, o, dtype);
      check(s, o, r.out, r.lse, `one sequence ${Hq}:${Hkv} D ${D} ${dtype}`, r.kr, r.vr, dtype === 'float32' ? 1e-5 : tol(dtype));
    }
  });

  test('paged decode over shuffled pages, long and short sequences (chunks cross pages)', async () => {
    const s = makeSeqs([1, 1, 1], [2000, 700, 17], 8, 2, 64);
    const ps = 16, pagesOf = s.lensK.map((l) => Math.ceil(l / ps)), numPages = sum(pagesOf) + 3;
    const cache = new attention.KvCache({ numPages, pageSize: ps, kvHeads: 2, headDim: 64 });
    const order = Array.from({ length: numPages }, (_, i) => (i * 211) % numPages);  // 211 prime, numPages not a multiple
    const maxPages = Math.max(...pagesOf);
    const table: number[] = [], slots: number[] = [];
    let next = 0;
    for (const l of s.lensK) {
      const pages = Array.from({ length: Math.ceil(l / ps) }, () => order[next++]);
      table.push(...pages, ...Array(maxPages - pages.length).fill(0));
      for (let j = 0; j < l; j++) slots.push(pages[Math.floor(j / ps)] * ps + (j % ps));
    }
    const k = tensor(s.k, { shape: [sum(s.lensK), 2, 64] }), v = tensor(s.v, { shape: [sum(s.lensK), 2, 64] });
    const sm = i32(slots), bt = i32(table, [3, maxPages]), sl = i32(s.lensK), cq = i32([0, 1, 2, 3]);
    const q = tensor(s.q, { shape: [3, 8, 64] });
    try {
      cache.append(k, v, sm);
      for (const m of MASKS) {
        for (const chunk of [undefined, 48]) {
          const r = await withSplitKeys(chunk, () => results(attention.paged(q, cache, { ...m.o, blockTables: bt, seqLens: sl, cuSeqlensQ: cq, returnLse: true })));
          check(s, m.o, r.out, r.lse, `paged, chunk ${chunk}, ${m.name}`);
        }
      }
    } finally {
      [k, v, sm, bt, sl, cq, q].forEach((t) => t.dispose());
      cache.dispose();
    }
  });

  test('blockSparse decode with a layout (kept blocks split across chunks), batch 2', async () => {
    const Nq = 4, Nk = 1024, bs = 64, nkb = Nk / bs, B = 2, Hq = 4, Hkv = 2, D = 32;
    const r = rng(SEED + 31);
    const L = BlockLayout.fromBlockMask([Array.from({ length: nkb }, (_, c) => c === 0 || c === nkb - 1 || r() < 0.4)],
      { blockSize: bs, qLen: Nq, kLen: Nk });
    const qd = randnArray(B * Nq * Hq * D, r), kd = randnArray(B * Nk * Hkv * D, r), vd = randnArray(B * Nk * Hkv * D, r);
    const q = tensor(qd, { shape: [B, Nq, Hq, D] }), k = tensor(kd, { shape: [B, Nk, Hkv, D] }), v = tensor(vd, { shape: [B, Nk, Hkv, D] });
    try {
      for (const chunk of [undefined, 128, 64]) {
        for (const o of [{}, { causal: true, window: { left: 500, right: 0 } }] as RefOptions[]) {
          const res = await withSplitKeys(chunk, () => results(attention.blockSparse(q, k, v, L, { ...o, returnLse: true })));
          const ref = attentionRef(qd, kd, vd, B, Nq, Nk, Hq, Hkv, D, L, o);
          const e = relL2(res.out, ref.out), el = relL2(res.lse.filter((x) => x !== -Infinity), ref.lse.filter((x) => x !== -Infinity));
          if (!(e < 1e-5 && el < 1e-5)) throw new Error(`blockSparse chunk ${chunk} ${JSON.stringify(o)} (seed ${SEED}): out ${e}, lse ${el}`);
        }
      }
    } finally {
      [q, k, v].forEach((t) => t.dispose());
    }
  });
});

// The decode tile: scores of a block of keys against 1, 2, 4 or 8 query rows per KV head reduced together
// (scores_block), other row counts by one dot product per key and row, more rows by the GEMM tile; blocks cut
// short by odd context lengths and page-sized ones; rows that see no key; a row max that moves in a late tile.
describe('attention decode tile (cpu)', () => {
  const lensK = [0, 1, 2, 3, 5, 15, 16, 17, 33, 100, 301];
  for (const G of [1, 2, 3, 4, 6, 8]) {
    test(`GQA ${2 * G}:2, one and two queries per sequence (rows per KV head ${G} and ${2 * G}), D 32`, async () => {
      for (const nq of [1, 2]) {
        const s = makeSeqs(lensK.map(() => nq), lensK.map((l) => l + nq - 1), 2 * G, 2, 32);
        const last = sum(s.lensK) - 1;  // the last key of the batch 8× larger: its logits move the row max late
        for (let i = last * 2 * 32; i < (last + 1) * 2 * 32; i++) s.k[i] *= 8;
        for (const m of [MASKS[1], MASKS[2], { name: 'window 0/0 (two queries: a row sees one key)', o: { window: { left: 0, right: 0 } } }]) {
          for (const chunk of [undefined, 16]) {
            const r = await withSplitKeys(chunk, () => runVarlen(s, m.o));
            check(s, m.o, r.out, r.lse, `G ${G}, ${nq} queries, chunk ${chunk}, ${m.name}`);
          }
        }
      }
    });
  }

  test('causal with more queries than keys: the first rows see no key (0 out, -Inf LSE)', async () => {
    for (const G of [1, 4, 3]) {
      const s = makeSeqs([2, 3, 2], [1, 2, 0], 2 * G, 2, 32);
      const r = await runVarlen(s, { causal: true });
      check(s, { causal: true }, r.out, r.lse, `G ${G}, nq > nk`);
      expect(r.lse[0]).toBe(-Infinity);  // head 0, row 0 of sequence 0 sees key ≤ -1
      expect(Array.from(r.out.subarray(0, 32)).every((x) => x === 0)).toBe(true);
    }
  });
});
