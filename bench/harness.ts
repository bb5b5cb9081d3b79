// Benchmark harness: device-timed cases with bytes/FLOPs counted by the case, ceilings measured once per
// run, peers merged by case name, a table on stdout and optional JSON. Suites live in bench/*.bench.ts.
import { Bench } from 'tinybench';
import { deviceTime, synchronizeSync, type DeviceName } from '../ts';

export interface BenchCase {
  /** Unique within the suite; peers (bench/peers/*.py) report the same name. */
  name: string;
  /** Enqueues one call of the kernel on the current stream and disposes what it created. */
  run: () => void;
  /** Bytes the kernel must move at least (inputs read once + outputs written once). */
  bytes?: number;
  /** Floating-point operations of one call. */
  flops?: number;
  /** Frees inputs after the case. */
  teardown?: () => void;
  /** Capture one call in a CUDA graph and time replays (for launch-bound small cases). */
  graph?: boolean;
}

export interface Suite {
  name: string;
  /** Builds the cases for a device (inputs allocated here); `quick` asks for a reduced set. */
  cases(device: DeviceName, quick: boolean): BenchCase[];
}

export interface Ceilings { bandwidthGBs: number; tflops: number; how: string }

export interface Result {
  suite: string; case: string; device: DeviceName; ms: number; gbs?: number; tflops?: number;
  pctCeiling?: number; peer?: string; peerMs?: number; speedup?: number; note?: string;
}

/** Median of several device-timed repetitions, each averaging enough calls to last ~targetMs. */
export function timeCase(device: DeviceName, c: BenchCase, targetMs = 50, reps = 5): number {
  const one = deviceTime(device, 1, c.run); // warm-up (and first estimate)
  const iters = Math.max(1, Math.min(10000, Math.round(targetMs / Math.max(one, 1e-4))));
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    try {
      samples.push(deviceTime(device, iters, c.run, { graph: Boolean(c.graph) }));
    } catch (e) {
      if (!c.graph) throw e;
      c.graph = false; // graph capture unsupported for this case: fall back to plain launches
      samples.push(deviceTime(device, iters, c.run));
    }
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

/** JS-visible latency (dispatch + kernel + sync) with tinybench. */
export async function jsLatency(name: string, device: DeviceName, fn: () => void, time = 300): Promise<{ medianUs: number; p99Us?: number }> {
  const bench = new Bench({ time, warmup: true });
  bench.add(name, () => { fn(); synchronizeSync(device); });
  await bench.run();
  const r = bench.tasks[0].result as unknown as { latency?: { p50?: number; p99?: number }; p50?: number; p99?: number };
  const p50 = r.latency?.p50 ?? r.p50 ?? NaN;
  return { medianUs: p50 * 1000, p99Us: (r.latency?.p99 ?? r.p99 ?? NaN) * 1000 };
}

export function withMetrics(base: Result, c: BenchCase, ceil: Ceilings | null): Result {
  const s = base.ms / 1e3;
  if (c.bytes) base.gbs = c.bytes / s / 1e9;
  if (c.flops) base.tflops = c.flops / s / 1e12;
  if (ceil) {
    const pb = base.gbs !== undefined ? (100 * base.gbs) / ceil.bandwidthGBs : 0;
    const pf = base.tflops !== undefined ? (100 * base.tflops) / ceil.tflops : 0;
    base.pctCeiling = Math.max(pb, pf);
  }
  return base;
}

export function fmtTable(rows: Result[]): string {
  const head = ['suite', 'case', 'device', 'time', 'GB/s', 'TFLOP/s', '%ceil', 'peer', 'vs peer'];
  const t = (ms: number) => (ms >= 1 ? `${ms.toFixed(3)} ms` : `${(ms * 1000).toFixed(2)} us`);
  const body = rows.map((r) => [r.suite, r.case, r.device, t(r.ms), r.gbs?.toFixed(1) ?? '', r.tflops?.toFixed(2) ?? '',
    r.pctCeiling !== undefined ? r.pctCeiling.toFixed(1) : '', r.peerMs !== undefined ? `${r.peer} ${t(r.peerMs)}` : (r.note ?? ''),
    r.speedup !== undefined ? `${r.speedup.toFixed(2)}x` : '']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), line(w.map((x) => '-'.repeat(x))), ...body.map(line)].join('\n');
}
