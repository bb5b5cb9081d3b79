// Interleaved, repeated timing of our kernel against a peer on a shared (noisy) machine: each round times
// ours then the peer (order alternating) for about budgetMs each; the figure is the median of the per-round
// ratios, with the medians of the times and the spread of the ratios.
import { wallMs } from './onnx';

export interface Paired { ms: number; peerMs: number; speedup: number; minSpeedup: number; maxSpeedup: number; rounds: number }

const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** Rounds of (our ms, peer ms) from two timers, order alternating; speedup = peer / ours (> 1: ours is faster). */
export async function pairedMs(ours: () => Promise<number>, peer: () => Promise<number>, rounds = 7): Promise<Paired> {
  const a: number[] = [], b: number[] = [], r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let o: number, p: number;
    if (i % 2 === 0) { o = await ours(); p = await peer(); } else { p = await peer(); o = await ours(); }
    a.push(o); b.push(p); r.push(p / o);
  }
  return { ms: median(a), peerMs: median(b), speedup: median(r), minSpeedup: Math.min(...r), maxSpeedup: Math.max(...r), rounds };
}

/**
 * LLMK_BENCH_CPU_TIME=1: time by this process's CPU time (all threads) instead of the wall clock — with
 * LLMK_NUM_THREADS=1 and a 1-thread peer, a measure of work per call that a loaded machine disturbs far less
 * (waiting for a descheduled thread costs wall time, not CPU time).
 */
export const cpuTimeMode = process.env.LLMK_BENCH_CPU_TIME === '1';

/** CPU milliseconds of this process per call of fn, over about budgetMs of CPU time. */
export async function cpuMs(fn: () => unknown | Promise<unknown>, budgetMs = 250): Promise<number> {
  await fn();
  const c0 = process.cpuUsage();
  let n = 0, used = 0;
  while (used < budgetMs * 1e3) { await fn(); n++; const c = process.cpuUsage(c0); used = c.user + c.system; }
  return used / 1e3 / n;
}

/** Our timer: wall clock, or CPU time in cpuTimeMode. */
export const timeMs = (fn: () => unknown | Promise<unknown>, budgetMs = 250): Promise<number> =>
  cpuTimeMode ? cpuMs(fn, budgetMs) : wallMs(fn, budgetMs);

/** pairedMs with both sides timed in this process (timeMs), about budgetMs per side per round. */
export function paired(ours: () => unknown, peer: () => unknown, rounds = 7, budgetMs = 250): Promise<Paired> {
  return pairedMs(() => timeMs(ours, budgetMs), () => timeMs(peer, budgetMs), rounds);
}

/** How the figures were timed, for the notes. */
export const timingNote = (): string => (cpuTimeMode
  ? `CPU time per call, ${process.env.LLMK_NUM_THREADS ?? 'all'} thread(s)`
  : 'wall clock per call');

/** The CPU this ran on (model name and the ISA flags that pick our kernels). */
export function cpuInfo(): { model: string; isa: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('fs') as typeof import('fs');
  let text = '';
  try { text = fs.readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux */ }
  // A VM's model name can be as bare as "AMD EPYC": family and model tell Zen 4 (25) from Zen 5 (26).
  const family = /cpu family\s*:\s*(\d+)/.exec(text)?.[1], number = /\nmodel\s*:\s*(\d+)/.exec(text)?.[1];
  const model = (/model name\s*:\s*(.*)/.exec(text)?.[1] ?? 'unknown') + (family ? ` (family ${family}, model ${number})` : '');
  const flags = new Set((/flags\s*:\s*(.*)/.exec(text)?.[1] ?? '').split(/\s+/));
  const isa = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni'].filter((f) => flags.has(f));
  return { model, isa };
}
