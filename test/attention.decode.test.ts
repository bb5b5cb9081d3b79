// The CPU decode shapes of serving (GQA 32/8 and 16/16, D 64 and 128, float32, one or two queries per
// sequence: 1, 4 or 8 rows per KV head, every KV head of a sequence in one task) against the float64 reference,
// through paged (shuffled pages) and varlen, with every mask, split into chunks or not, and a row max that moves
// in a late tile. Run on the ISA in use (the suite is run with LLMK_CPU_ATTN_ISA=generic / avx2 too).
import * as attention from '../ts/attention';
import { tensor } from '../ts/tensor';
import { randnArray, relL2, rng, SEED, withSplitKeys } from './helpers';
import { attentionRef, RefOptions } from './reference/attention';

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
const offsets = (a: number[]) => a.map((_, i) => sum(a.slice(0, i)));
const i32 = (a: number[], shape?: number[]) => tensor(Int32Array.from(a), { dtype: 'int32', shape });

interface Seqs { lensQ: number[]; lensK: number[]; Hq: number; Hkv: number; D: number; q: Float32Array; k: Float32Array; v: Float32Array }

let seedNo = 0;
/** Random sequences; the last key of each sequence 8× larger, so that its logits move the row max late. */
function makeSeqs(lensQ: number[], lensK: number[], Hq: number, Hkv: number, D: number): Seqs {
  const r = rng(SEED + 4409 * ++seedNo);
  const s = { lensQ, lensK, Hq, Hkv, D, q: randnArray(sum(lensQ) * Hq * D, r), k: randnArray(sum(lensK) * Hkv * D, r), v: randnArray(sum(lensK) * Hkv * D, r) };
  offsets(lensK).forEach((k0, b) => {
    if (lensK[b] > 0) for (let i = (k0 + lensK[b] - 1) * Hkv * D; i < (k0 + lensK[b]) * Hkv * D; i++) s.k[i] *= 8;
  });
  return s;
}

/** Checks out [totalQ, Hq, D] and lse [Hq, totalQ] against the reference, one sequence at a time. */
function check(s: Seqs, o: RefOptions, out: Float32Array, lse: Float32Array, ctx: string): void {
  const { Hq, Hkv, D } = s, totalQ = sum(s.lensQ), q0 = offsets(s.lensQ), k0 = offsets(s.lensK);
  const refOut = new Float64Array(out.length), refLse = new Float64Array(lse.length);
  s.lensQ.forEach((nq, b) => {
    const nk = s.lensK[b];
    const dense = { blockQ: nq, blockK: Math.max(nk, 1), heads: 1, perHead: false, rowPtr: Int32Array.of(0, 1), colIdx: Int32Array.of(0) };
    const r = attentionRef(s.q.subarray(q0[b] * Hq * D, (q0[b] + nq) * Hq * D), s.k.subarray(k0[b] * Hkv * D, (k0[b] + nk) * Hkv * D),
      s.v.subarray(k0[b] * Hkv * D, (k0[b] + nk) * Hkv * D), 1, nq, nk, Hq, Hkv, D, dense, o);
    refOut.set(r.out, q0[b] * Hq * D);
    for (let h = 0; h < Hq; h++) for (let i = 0; i < nq; i++) refLse[h * totalQ + q0[b] + i] = r.lse[h * nq + i];
  });
  const e = relL2(out, refOut);
  if (!(e < 1e-5)) throw new Error(`${ctx} (seed ${SEED}): out rel L2 ${e}`);
  for (let i = 0; i < lse.length; i++) {
    const inf = refLse[i] === -Infinity;
    if (inf !== (lse[i] === -Infinity) || (!inf && Math.abs(lse[i] - refLse[i]) > 1e-4 * Math.max(1, Math.abs(refLse[i]))))
      throw new Error(`${ctx} (seed ${SEED}): lse[${i}] = ${lse[i]}, reference ${refLse[i]}`);
  }
}

const MASKS: { name: string; o: RefOptions }[] = [
  { name: 'no mask', o: {} },
  { name: 'causal', o: { causal: true } },
  { name: 'causal + window 100', o: { causal: true, window: { left: 100, right: 0 } } },
  { name: 'window 300/3 + softcap 4', o: { window: { left: 300, right: 3 }, softcap: 4 } },
];

describe('attention decode, serving shapes (cpu)', () => {
  test('paged over shuffled pages, GQA 32/8, D 128, one query per sequence, every mask, chunks of 16 keys or the own', async () => {
    const lensK = [700, 1, 17, 33, 250], B = lensK.length, Hq = 32, Hkv = 8, D = 128, ps = 16;
    const s = makeSeqs(lensK.map(() => 1), lensK, Hq, Hkv, D);
    const pagesOf = lensK.map((l) => Math.ceil(l / ps)), numPages = sum(pagesOf) + 2, maxPages = Math.max(...pagesOf);
    const order = Array.from({ length: numPages }, (_, i) => (i * 31) % numPages);  // 31 prime, numPages not a multiple
    const table: number[] = [], slots: number[] = [];
    let next = 0;
    for (const l of lensK) {
      const pages = Array.from({ length: Math.ceil(l / ps) }, () => order[next++]);
      table.push(...pages, ...Array(maxPages - pages.length).fill(0));
      for (let j = 0; j < l; j++) slots.push(pages[Math.floor(j / ps)] * ps + (j % ps));
    }
    const cache = new attention.KvCache({ numPages, pageSize: ps, kvHeads: Hkv, headDim: D });
    const k = tensor(s.k, { shape: [sum(lensK), Hkv, D] }), v = tensor(s.v, { shape: [sum(lensK), Hkv, D] });
    const sm = i32(slots), bt = i32(table, [B, maxPages]), sl = i32(lensK), cq = i32(Array.from({ length: B + 1 }, (_, i) => i));
    const q = tensor(s.q, { shape: [B, Hq, D] });
    try {
      cache.append(k, v, sm);
      for (const m of MASKS) {
        for (const chunk of [undefined, 16]) {
          const [out, lse] = await withSplitKeys(chunk, async () => {
            const r = attention.paged(q, cache, { ...m.o, blockTables: bt, seqLens: sl, cuSeqlensQ: cq, returnLse: true });
            const got = await Promise.all([r.out.toArray(), r.lse!.toArray()]) as Float32Array[];
            r[Symbol.dispose]();
            return got;
          });
          check(s, m.o, out, lse, `paged 32/8, chunk ${chunk}, ${m.name}`);
        }
      }
    } finally {
      [k, v, sm, bt, sl, cq, q].forEach((t) => t.dispose());
      cache.dispose();
    }
  });

  // [Hq, Hkv, D, queries per sequence]: 1 row per KV head over 16 KV heads; 8 rows per KV head (two queries of 4 heads);
  // 4 rows; 2 rows per KV head with D 32 (decode's prefetch then runs 64 rows ahead); more KV heads than one task
  // takes (32 = 2 tasks of 16, 24 = 2 of 12; 17: one task per KV head); 16 rows per KV head (4 heads × 4 queries;
  // 16 queries of 1 head): tasks over every KV head with GEMM scores per head; 9 rows per KV head (3 heads × 3
  // queries): one task per KV head, their key chunks run interleaved
  for (const [Hq, Hkv, D, nq] of [[16, 16, 64, 1], [32, 8, 128, 2], [32, 8, 64, 1], [16, 8, 32, 1], [32, 32, 32, 1],
    [48, 24, 32, 2], [34, 17, 32, 1], [32, 8, 64, 4], [8, 8, 32, 16], [24, 8, 32, 3]] as const) {
    test(`varlen, GQA ${Hq}/${Hkv}, D ${D}, ${nq} queries per sequence, every mask, chunks of 16 keys or the own`, async () => {
      const lensK = [0, 2, 16, 47, 400, 130, 600];
      const s = makeSeqs(lensK.map(() => nq), lensK.map((l) => l + nq - 1), Hq, Hkv, D);
      const q = tensor(s.q, { shape: [sum(s.lensQ), Hq, D] });
      const k = tensor(s.k, { shape: [sum(s.lensK), Hkv, D] }), v = tensor(s.v, { shape: [sum(s.lensK), Hkv, D] });
      const cq = i32([...offsets(s.lensQ), sum(s.lensQ)]), ck = i32([...offsets(s.lensK), sum(s.lensK)]);
      try {
        for (const m of MASKS) {
          for (const chunk of [undefined, 16]) {
            const r = await withSplitKeys(chunk, async () => {
              const res = attention.varlen(q, k, v, { ...m.o, cuSeqlensQ: cq, cuSeqlensK: ck, returnLse: true });
              const got = await Promise.all([res.out.toArray(), res.lse!.toArray()]) as Float32Array[];
              res[Symbol.dispose]();
              return got;
            });
            check(s, m.o, r[0], r[1], `varlen ${Hq}/${Hkv} D ${D} nq ${nq}, chunk ${chunk}, ${m.name}`);
          }
        }
      } finally {
        [q, k, v, cq, ck].forEach((t) => t.dispose());
      }
    });
  }
  // A call whose K/V (26 MB) exceed the core's PREFETCH_MIN_BYTES: with AVX-512 the wide tasks (16 rows per KV
  // head) then prefetch a unit ahead. Prefetches cannot change a result; this runs that path's bookkeeping
  // (units over groups, tiles and chunk ends) on a call large enough to take it.
  test('varlen, GQA 32/8, D 128, 4 queries per sequence, causal, K/V beyond the prefetch threshold', async () => {
    const lensK = [3200, 5], nq = 4, Hq = 32, Hkv = 8, D = 128;
    const s = makeSeqs(lensK.map(() => nq), lensK, Hq, Hkv, D);
    const q = tensor(s.q, { shape: [sum(s.lensQ), Hq, D] });
    const k = tensor(s.k, { shape: [sum(s.lensK), Hkv, D] }), v = tensor(s.v, { shape: [sum(s.lensK), Hkv, D] });
    const cq = i32([...offsets(s.lensQ), sum(s.lensQ)]), ck = i32([...offsets(s.lensK), sum(s.lensK)]);
    try {
      const o: RefOptions = { causal: true };
      const res = attention.varlen(q, k, v, { ...o, cuSeqlensQ: cq, cuSeqlensK: ck, returnLse: true });
      const [out, lse] = await Promise.all([res.out.toArray(), res.lse!.toArray()]) as Float32Array[];
      res[Symbol.dispose]();
      check(s, o, out, lse, 'varlen 32/8 D 128 nq 4, 26 MB of K/V, causal');
    } finally {
      [q, k, v, cq, ck].forEach((t) => t.dispose());
    }
  });
});
