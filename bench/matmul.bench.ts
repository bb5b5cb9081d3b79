// Dense matmul (the in-library baseline for INT4): float32 on the CPU, float16/bfloat16 on a GPU.
// CPU peer: numpy (OpenBLAS) through bench/peers/matmul.py --serve, interleaved with ours round by round
// (paired.ts) at 512³, 1024³, 2048³ and the small-M shapes; LLMK_CPU_MATMUL_ISA picks our kernel,
// LLMK_BENCH_PEER_ISA=avx2|avx512 OpenBLAS's (its Haswell or SkylakeX kernels, OPENBLAS_CORETYPE).
import { spawn } from 'child_process';
import * as path from 'path';
import * as readline from 'readline';
import { matmul, randn, synchronizeSync, type DeviceName } from '../ts';
import type { Result, Suite } from './harness';
import { peerIsa } from './ort-isa';
import { cpuInfo, cpuTimeMode, pairedMs, timeMs, timingNote } from './paired';

const PEER_SHAPES: [number, number, number][] = [[512, 512, 512], [1024, 1024, 1024], [2048, 2048, 2048], [1, 4096, 4096], [16, 4096, 4096]];

/** OpenBLAS's kernel family for LLMK_BENCH_PEER_ISA (its OPENBLAS_CORETYPE switch), or its own choice. */
function openblasCore(): Record<string, string> {
  const isa = peerIsa();
  return isa ? { OPENBLAS_CORETYPE: isa === 'avx2' ? 'Haswell' : 'SkylakeX' } : {};
}

/** A running numpy peer: ask(M, N, K, budget) resolves to its ms per call. */
function startNumpy(): { info: Promise<string>; ask: (m: number, n: number, k: number, budget: number) => Promise<number>; close: () => void } {
  // In CPU-time mode numpy gets the same thread count as ours and reports its process CPU time.
  const threads = cpuTimeMode ? { OPENBLAS_NUM_THREADS: process.env.LLMK_NUM_THREADS ?? '', OMP_NUM_THREADS: process.env.LLMK_NUM_THREADS ?? '' } : {};
  const py = spawn('python3', [path.join(__dirname, '..', '..', 'bench', 'peers', 'matmul.py'), '--serve'],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...threads, ...openblasCore() } });
  const lines = readline.createInterface({ input: py.stdout });
  const waiting: { res: (l: string) => void; rej: (e: Error) => void }[] = [];
  lines.on('line', (l) => waiting.shift()?.res(l));
  py.once('exit', () => { for (const w of waiting.splice(0)) w.rej(new Error('numpy peer exited')); });
  const next = () => new Promise<string>((res, rej) => { waiting.push({ res, rej }); });
  const info = next();
  return {
    info,
    ask: async (m, n, k, budget) => {
      py.stdin.write(`${m} ${n} ${k} ${budget}\n`);
      const r = JSON.parse(await next());
      return cpuTimeMode ? r.cpu_ms : r.ms;
    },
    close: () => { py.stdin.end(); },
  };
}

async function cpuPeer(device: DeviceName): Promise<Result[]> {
  if (device !== 'cpu') return [];
  const res: Result[] = [];
  let np;
  try {
    np = startNumpy();
    const info = JSON.parse(await np.info);
    const isa = process.env.LLMK_CPU_MATMUL_ISA ?? 'best';
    const { model, isa: flags } = cpuInfo();
    for (const [M, N, K] of PEER_SHAPES) {
      const a = randn([M, K], { device, seed: 1 }), b = randn([K, N], { device, seed: 2 });
      const budget = M * N * K >= 2 ** 30 ? 600 : 250;
      const p = await pairedMs(() => timeMs(() => { matmul(a, b).dispose(); synchronizeSync('cpu'); }, budget),
        () => np!.ask(M, N, K, budget), 7);
      const gf = (ms: number) => (2 * M * N * K / ms / 1e6).toFixed(1);
      res.push({ suite: 'matmul', case: `float32 M=${M} N=${N} K=${K} vs numpy`, device, ms: p.ms, peer: `numpy ${info.numpy} (${info.blas})`,
        peerMs: p.peerMs, speedup: p.speedup, tflops: 2 * M * N * K / p.ms / 1e9,
        note: `ISA ${isa} (${flags.join(' ')}, ${model}); ${timingNote()}; ${gf(p.ms)} vs ${gf(p.peerMs)} GFLOP/s; median of ${p.rounds} interleaved ratios, range ${p.minSpeedup.toFixed(2)}–${p.maxSpeedup.toFixed(2)}` });
      a.dispose(); b.dispose();
    }
  } catch (e) {
    res.push({ suite: 'matmul', case: 'numpy peer', device, ms: NaN, note: `numpy peer failed: ${(e as Error).message}` });
  } finally {
    np?.close();
  }
  return res;
}

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = {
  name: 'matmul',
  cases(device, quick) {
    const gpu = device !== 'cpu';
    const dtypes = gpu ? (['float16', 'bfloat16'] as const) : (['float32'] as const);
    const shapes: [number, number, number][] = gpu
      ? [[1, 8192, 8192], [16, 8192, 8192], [4096, 4096, 4096], [8192, 8192, 8192]]
      : quick ? [[1, 4096, 4096], [256, 1024, 1024]] : [[1, 4096, 4096], [16, 4096, 4096], [256, 1024, 1024], [512, 512, 512]];
    const cases = [];
    for (const dtype of dtypes) {
      for (const [M, N, K] of shapes) {
        const a = randn([M, K], { device, dtype, seed: 1 }), b = randn([K, N], { device, dtype, seed: 2 });
        const es = dtype === 'float32' ? 4 : 2;
        cases.push({
          name: `${dtype} M=${M} N=${N} K=${K}`,
          run: () => matmul(a, b).dispose(),
          bytes: (M * K + K * N + M * N) * es,
          flops: 2 * M * N * K,
          teardown: () => { a.dispose(); b.dispose(); },
        });
      }
    }
    return cases;
  },
  extra: cpuPeer,
};
export default suite;
