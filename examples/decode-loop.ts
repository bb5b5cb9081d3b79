/**
 * A small continuous-batching loop over a paged KV cache: sequences of different lengths arrive (with a
 * prompt) and finish at different steps; their pages come from a free list and go back to it; each step
 * appends the new tokens' K/V (`KvCache.append`) and runs `attention.paged` for all live sequences at once —
 * prompts as chunked prefill, the others as decode (one query each). Every step is checked against
 * recomputing each sequence from scratch with `attention.blockSparse` on its keys laid out contiguously.
 *
 *   node -r <any TS runner> examples/decode-loop.ts [steps]
 * (or compile: npx tsc --outDir lib-examples --module commonjs --target es2022 examples/decode-loop.ts)
 */
import { tensor, type Tensor } from '../ts/index';
import * as attention from '../ts/attention';

const Hq = 8, Hkv = 2, D = 64, PAGE = 16, NUM_PAGES = 64;
const WINDOW = 48;  // a sliding-window model: keys older than 48 tokens are not read

let seed = 12345;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
const randn = (n: number) => Float32Array.from({ length: n }, () => 2 * rand() - 1);

interface Seq { id: number; pages: number[]; k: Float32Array[]; v: Float32Array[]; left: number; prompt: number }

/** Recompute one sequence's attention for its last nq queries from scratch, keys contiguous, with blockSparse. */
function fromScratch(s: Seq, q: Float32Array, nq: number): Float32Array {
  const nk = s.k.length;
  const cat = (rows: Float32Array[]) => { const a = new Float32Array(nk * Hkv * D); rows.forEach((r, i) => a.set(r, i * Hkv * D)); return a; };
  const qt = tensor(q, { shape: [1, nq, Hq, D] }), kt = tensor(cat(s.k), { shape: [1, nk, Hkv, D] }), vt = tensor(cat(s.v), { shape: [1, nk, Hkv, D] });
  const layout = attention.BlockLayout.dense({ qLen: nq, kLen: nk, blockSize: 64 });
  const r = attention.blockSparse(qt, kt, vt, layout, { causal: true, window: { left: WINDOW, right: 0 } });
  const out = r.out.toArraySync() as Float32Array;
  r[Symbol.dispose](); qt.dispose(); kt.dispose(); vt.dispose();
  return out;
}

function run(steps: number): number {
  const cache = new attention.KvCache({ numPages: NUM_PAGES, pageSize: PAGE, kvHeads: Hkv, headDim: D });
  const free = Array.from({ length: NUM_PAGES }, (_, i) => NUM_PAGES - 1 - i);
  const live: Seq[] = [];
  let nextId = 0, worst = 0, served = 0;
  for (let step = 0; step < steps; step++) {
    // Arrivals: a new sequence with a prompt of 5–60 tokens that will generate 3–40 more, while pages last.
    if (live.length < 6 && rand() < 0.5) {
      const prompt = 5 + Math.floor(rand() * 56);
      const need = Math.ceil((prompt + 40) / PAGE);
      if (free.length >= need) live.push({ id: nextId++, pages: [], k: [], v: [], left: 3 + Math.floor(rand() * 38), prompt });
    }
    if (live.length === 0) continue;
    // New tokens of this step: the whole prompt for a sequence that just arrived, else one token.
    const newTok = live.map((s) => (s.k.length === 0 ? s.prompt : 1));
    const slots: number[] = [], kNew: number[] = [], vNew: number[] = [], qAll: Float32Array[] = [];
    live.forEach((s, b) => {
      for (let t = 0; t < newTok[b]; t++) {
        const pos = s.k.length;
        if (pos % PAGE === 0) s.pages.push(free.pop()!);  // a new page from the free list
        const k = randn(Hkv * D), v = randn(Hkv * D);
        s.k.push(k); s.v.push(v);
        kNew.push(...k); vNew.push(...v);
        slots.push(s.pages[Math.floor(pos / PAGE)] * PAGE + (pos % PAGE));
      }
      qAll.push(randn(newTok[b] * Hq * D));
    });
    const n = slots.length;
    const kt = tensor(Float32Array.from(kNew), { shape: [n, Hkv, D] }), vt = tensor(Float32Array.from(vNew), { shape: [n, Hkv, D] });
    const sm = tensor(Int32Array.from(slots), { dtype: 'int32' });
    cache.append(kt, vt, sm);
    // One paged call for everyone: block tables padded with page 0 (entries past a sequence's length are not read).
    const maxPages = Math.max(...live.map((s) => s.pages.length));
    const bt = tensor(Int32Array.from(live.flatMap((s) => [...s.pages, ...Array(maxPages - s.pages.length).fill(0)])),
      { dtype: 'int32', shape: [live.length, maxPages] });
    const sl = tensor(Int32Array.from(live.map((s) => s.k.length)), { dtype: 'int32' });
    const cu = tensor(Int32Array.from(newTok.reduce((a, x) => [...a, a[a.length - 1] + x], [0])), { dtype: 'int32' });
    const q = new Float32Array(n * Hq * D);
    let at = 0;
    for (const x of qAll) { q.set(x, at); at += x.length; }
    const qt = tensor(q, { shape: [n, Hq, D] });
    const res = attention.paged(qt, cache, { blockTables: bt, seqLens: sl, cuSeqlensQ: cu, causal: true, window: { left: WINDOW, right: 0 } });
    const out = res.out.toArraySync() as Float32Array;
    res[Symbol.dispose]();
    ([kt, vt, sm, bt, sl, cu, qt] as Tensor[]).forEach((t) => t.dispose());
    // Check every sequence against recomputing it from scratch.
    at = 0;
    live.forEach((s, b) => {
      const len = newTok[b] * Hq * D;
      const ref = fromScratch(s, qAll[b], newTok[b]);
      for (let i = 0; i < len; i++) worst = Math.max(worst, Math.abs(out[at + i] - ref[i]));
      at += len;
    });
    // Finished sequences give their pages back.
    for (let b = live.length - 1; b >= 0; b--) {
      if (newTok[b] === 1 && --live[b].left === 0) { free.push(...live[b].pages); live.splice(b, 1); served++; }
    }
  }
  cache.dispose();
  console.log(`decode-loop: ${steps} steps, ${nextId} sequences (${served} finished), ${free.length} of ${NUM_PAGES} pages free, ` +
    `max |paged − blockSparse from scratch| = ${worst.toExponential(2)}`);
  return worst;
}

const worst = run(Number(process.argv[2] ?? 60));
if (!(worst < 1e-5)) {
  console.error('decode-loop: paged attention disagrees with blockSparse');
  process.exit(1);
}
