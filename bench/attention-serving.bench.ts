// Serving attention (issue 15) on the CPU: decode (one query per sequence) over a paged KV cache, B sequences
// of mixed lengths, GQA 32/8, D = 128, page 16, float32, full and sliding-window; the same batch through
// varlen on a contiguous cache (what paging costs); and chunked prefill of 512-token chunks. Bytes are the
// K/V the kernel must read (the window's keys only), so GB/s compares with the copy-bandwidth ceiling.
// Sizes are scaled to a 2-core machine: lengths 512–4096 (the issue's 1k–32k) and window 1024 (its 4096).
import { empty, synchronizeSync, tensor, type DeviceName, type Tensor } from '../ts';
import * as attention from '../ts/attention';
import type { BenchCase, Result, Suite } from './harness';
import { wallMs } from './onnx';

const Hq = 32, Hkv = 8, D = 128, PAGE = 16, WINDOW = 1024;

/** Deterministic mixed lengths in [lo, hi]. */
function lengths(B: number, lo: number, hi: number): number[] {
  return Array.from({ length: B }, (_, i) => lo + Math.floor(((i * 2654435761) % 1000) / 1000 * (hi - lo)));
}

const i32 = (a: number[], shape?: number[]) => tensor(Int32Array.from(a), { dtype: 'int32', shape });

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; a[i] = x / 2 ** 31 - 1; }
  return a;
}

interface Setup { cache: attention.KvCache; bt: Tensor; sl: Tensor; kc: Tensor; vc: Tensor; cuK: Tensor; lens: number[]; free: () => void }

/** A paged cache holding the sequences (pages in shuffled order) and the same keys laid out contiguously. */
function setup(lens: number[]): Setup {
  const total = lens.reduce((a, b) => a + b, 0);
  const pagesOf = lens.map((l) => Math.ceil(l / PAGE));
  const numPages = pagesOf.reduce((a, b) => a + b, 0);
  const order = Array.from({ length: numPages }, (_, i) => (i * 7919) % numPages);  // 7919 is prime: a permutation
  const cache = new attention.KvCache({ numPages, pageSize: PAGE, kvHeads: Hkv, headDim: D });
  const kd = fill(total * Hkv * D, 1), vd = fill(total * Hkv * D, 2);
  const kc = tensor(kd, { shape: [total, Hkv, D] }), vc = tensor(vd, { shape: [total, Hkv, D] });
  const maxPages = Math.max(...pagesOf);
  const table: number[] = [], slots: number[] = [];
  let next = 0;
  for (const l of lens) {
    const pages = Array.from({ length: Math.ceil(l / PAGE) }, () => order[next++]);
    table.push(...pages, ...Array(maxPages - pages.length).fill(0));
    for (let j = 0; j < l; j++) slots.push(pages[Math.floor(j / PAGE)] * PAGE + (j % PAGE));
  }
  const sm = i32(slots);
  cache.append(kc, vc, sm);
  sm.dispose();
  const cum = lens.reduce((a, l) => [...a, a[a.length - 1] + l], [0]);
  const bt = i32(table, [lens.length, maxPages]), sl = i32(lens), cuK = i32(cum);
  return { cache, bt, sl, kc, vc, cuK, lens, free: () => { cache.dispose(); [bt, sl, kc, vc, cuK].forEach((t) => t.dispose()); } };
}

function cases(device: DeviceName, quick: boolean): BenchCase[] {
  if (device !== 'cpu') return [];
  const out: BenchCase[] = [];
  for (const B of quick ? [1, 4] : [1, 4, 16]) {
    const lens = lengths(B, 512, 4096);
    let s: Setup | null = null;
    const get = () => (s ??= setup(lens));
    const q = tensor(fill(B * Hq * D, 3), { shape: [B, Hq, D] });
    const cuQ = i32(Array.from({ length: B + 1 }, (_, i) => i));
    for (const win of [false, true]) {
      const opts = { causal: true, window: win ? { left: WINDOW, right: 0 } : undefined };
      const keys = lens.reduce((a, l) => a + (win ? Math.min(l, WINDOW + 1) : l), 0);
      const bytes = keys * Hkv * D * 4 * 2;
      const tag = `B=${B} lens 512-4096 GQA 32/8 D=128 f32${win ? ` window ${WINDOW}` : ''}`;
      out.push({
        name: `cpu paged decode page ${PAGE} ${tag}`, bytes,
        run: () => { const x = get(); attention.paged(q, x.cache, { ...opts, blockTables: x.bt, seqLens: x.sl, cuSeqlensQ: cuQ }).out.dispose(); },
      });
      out.push({
        name: `cpu varlen (contiguous) decode ${tag}`, bytes,
        run: () => { const x = get(); attention.varlen(q, x.kc, x.vc, { ...opts, cuSeqlensQ: cuQ, cuSeqlensK: x.cuK }).out.dispose(); },
        teardown: win ? () => { s?.free(); s = null; q.dispose(); cuQ.dispose(); } : undefined,
      });
    }
  }
  // Chunked prefill: one 512-token chunk at the end of a 2048-token sequence, causal, through the pages.
  {
    const lens = [2048];
    let s: Setup | null = null;
    const q = tensor(fill(512 * Hq * D, 4), { shape: [512, Hq, D] });
    const cuQ = i32([0, 512]);
    out.push({
      name: 'cpu paged chunked prefill 512 of 2048 GQA 32/8 D=128 f32',
      flops: 4 * D * Hq * 512 * (2048 - 512 + 256.5),
      run: () => { const x = (s ??= setup(lens)); attention.paged(q, x.cache, { causal: true, blockTables: x.bt, seqLens: x.sl, cuSeqlensQ: cuQ }).out.dispose(); },
      teardown: () => { s?.free(); q.dispose(); cuQ.dispose(); },
    });
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Decode GB/s (K/V bytes read) over copy GB/s (read + write of a buffer of the same size, as the ceilings count
 * it), both timed on the wall clock, interleaved, repeated; the median of the ratios. The issue's goal is ≥ 70%.
 */
async function decodeVsCopy(device: DeviceName): Promise<Result[]> {
  if (device !== 'cpu') return [];
  const reps = Number(process.env.LLMK_BENCH_REPS ?? 5);
  const res: Result[] = [];
  for (const B of [4, 16]) {
    const lens = lengths(B, 512, 4096);
    const x = setup(lens);
    const q = tensor(fill(B * Hq * D, 3), { shape: [B, Hq, D] });
    const cuQ = i32(Array.from({ length: B + 1 }, (_, i) => i));
    const bytes = lens.reduce((a, l) => a + l, 0) * Hkv * D * 4 * 2;
    const src = empty([bytes / 4]);
    const dec = () => { attention.paged(q, x.cache, { causal: true, blockTables: x.bt, seqLens: x.sl, cuSeqlensQ: cuQ }).out.dispose(); synchronizeSync('cpu'); };
    const copy = () => { src.to('cpu').dispose(); synchronizeSync('cpu'); };
    const ratios: number[] = [], decMs: number[] = [], copyMs: number[] = [];
    for (let r = 0; r < reps; r++) {
      const a = await wallMs(dec, 300), c = await wallMs(copy, 300);
      decMs.push(a); copyMs.push(c);
      ratios.push((bytes / a) / ((2 * bytes) / c));
    }
    res.push({ suite: 'attention-serving', case: `cpu paged decode B=${B} page ${PAGE} GQA 32/8 D=128 f32: K/V GB/s over copy GB/s`, device,
      ms: median(decMs), gbs: bytes / median(decMs) / 1e6,
      note: `copy ${(2 * bytes / median(copyMs) / 1e6).toFixed(2)} GB/s; decode/copy ratios ${ratios.map((v) => v.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)}); ISA ${attention.cpuIsa()}` });
    x.free(); q.dispose(); cuQ.dispose(); src.dispose();
  }
  return res;
}

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = { name: 'attention-serving', cases, extra: decodeVsCopy };
export default suite;
