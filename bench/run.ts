// npm run bench [-- --filter NAME] [--device cpu|cuda:N] [--json FILE] [--quick] [--peers FILE.jsonl]
// Runs the suites on the best available device (CUDA when present), prints a table, writes JSON.
import * as fs from 'fs';
import * as path from 'path';
import { backends, devices, type DeviceName } from '../ts';
import { fmtTable, Result, Suite, timeCase, withMetrics, type Ceilings } from './harness';
import { measureCeilings } from './ceilings';
import { cpuInfo } from './paired';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Peer timings (JSON lines {suite, case, peer, ms}) produced by bench/peers/*.py in the same run. */
function loadPeers(file: string | undefined): Map<string, { peer: string; ms: number }> {
  const m = new Map<string, { peer: string; ms: number }>();
  if (!file || !fs.existsSync(file)) return m;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const r = JSON.parse(line);
      if (r.case && typeof r.ms === 'number') m.set(`${r.suite ?? ''}/${r.case}`, { peer: r.peer ?? 'peer', ms: r.ms });
    } catch { /* not a result line */ }
  }
  return m;
}

async function main(): Promise<void> {
  const filter = arg('filter');
  const quick = process.argv.includes('--quick');
  const device = (arg('device') ?? devices()[devices().length - 1]) as DeviceName;
  const peers = loadPeers(arg('peers'));
  const dir = __dirname;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.bench.js')).sort();
  const suites: Suite[] = [];
  for (const f of files) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(dir, f));
    const s: Suite | undefined = mod.default ?? mod.suite;
    if (s && (!filter || s.name.includes(filter) || f.includes(filter))) suites.push(s);
  }
  process.stderr.write(`llm-kernels bench on ${device} (${JSON.stringify(backends().cuda.available ? 'cuda' : backends().cuda.reason)}); suites: ${suites.map((s) => s.name).join(', ')}\n`);
  let ceil: Ceilings | null = null;
  try {
    ceil = measureCeilings(device);
    process.stderr.write(`ceilings: ${ceil.bandwidthGBs.toFixed(1)} GB/s copy, ${ceil.tflops.toFixed(2)} TFLOP/s (${ceil.how})\n`);
  } catch (e) {
    process.stderr.write(`ceilings not measured: ${(e as Error).message}\n`);
  }
  const results: Result[] = [];
  for (const s of suites) {
    let cases;
    try { cases = s.cases(device, quick); } catch (e) {
      process.stderr.write(`[${s.name}] setup failed: ${(e as Error).message}\n`);
      continue;
    }
    for (const [i, c] of cases.entries()) {
      process.stderr.write(`[${s.name} ${i + 1}/${cases.length}] ${c.name} ... `);
      try {
        const ms = timeCase(device, c, quick ? 20 : 50, quick ? 3 : 5);
        const r = withMetrics({ suite: s.name, case: c.name, device, ms }, c, ceil);
        const p = peers.get(`${s.name}/${c.name}`);
        if (p) { r.peer = p.peer; r.peerMs = p.ms; r.speedup = p.ms / ms; }
        results.push(r);
        process.stderr.write(`${ms.toFixed(4)} ms\n`);
      } catch (e) {
        results.push({ suite: s.name, case: c.name, device, ms: NaN, note: `error: ${(e as Error).message.split('\n')[0]}` });
        process.stderr.write(`error: ${(e as Error).message}\n`);
      } finally {
        c.teardown?.();
      }
    }
    const extra = (s as Suite & { extra?: (d: DeviceName) => Promise<Result[]> }).extra;
    if (extra) results.push(...(await extra(device)));
  }
  console.log(fmtTable(results));
  const out = arg('json');
  if (out) {
    fs.writeFileSync(out, JSON.stringify({
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`, date: new Date().toISOString(), device,
      cpu: { ...cpuInfo(), threads: process.env.LLMK_NUM_THREADS ?? 'all',
        forcedIsa: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^LLMK_CPU_.*_ISA$/.test(k))) },
      backends: backends(), ceilings: ceil, results,
    }, null, 2) + '\n');
    process.stderr.write(`wrote ${out}\n`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
