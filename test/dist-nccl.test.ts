// The NCCL loader: a missing library, stub libraries built here with g++ (missing a symbol, too old,
// complete), LLMK_NCCL_PATH, and what dist calls that need NCCL do without it.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nccl } from '../ts/dist';
import { testDevices } from './helpers';

const ROOT = path.join(__dirname, '..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-nccl-'));
const TS_HOOK = `
const __ts = require(${JSON.stringify(require.resolve('typescript'))});
const __fs = require('fs');
require.extensions['.ts'] = (m, f) => m._compile(__ts.transpileModule(__fs.readFileSync(f, 'utf8'),
  { compilerOptions: { module: __ts.ModuleKind.CommonJS, target: __ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: f }).outputText, f);
`;

const ALL = ['ncclGetVersion', 'ncclGetUniqueId', 'ncclCommInitRank', 'ncclCommFinalize', 'ncclCommDestroy', 'ncclCommAbort',
  'ncclCommGetAsyncError', 'ncclCommCount', 'ncclCommUserRank', 'ncclGetErrorString', 'ncclGetLastError', 'ncclAllReduce',
  'ncclAllGather', 'ncclReduceScatter', 'ncclBroadcast', 'ncclSend', 'ncclRecv', 'ncclGroupStart', 'ncclGroupEnd'];

const gxx = spawnSync('sh', ['-c', 'command -v g++ || command -v c++'], { encoding: 'utf8' }).stdout.trim();

// A fake libnccl: the listed symbols, ncclGetVersion reporting `version`.
function stub(name: string, symbols: string[], version: number): string {
  const lines = ['#include <string.h>', 'extern "C" {'];
  for (const s of symbols) {
    if (s === 'ncclGetVersion') lines.push(`int ncclGetVersion(int* v) { *v = ${version}; return 0; }`);
    else if (s === 'ncclGetUniqueId') lines.push('int ncclGetUniqueId(char* id) { memset(id, 0x42, 128); return 0; }');
    else if (s === 'ncclGetErrorString' || s === 'ncclGetLastError') lines.push(`const char* ${s}(long) { return "stub"; }`);
    else lines.push(`int ${s}() { return 0; }`);
  }
  lines.push('}');
  const src = path.join(TMP, `${name}.cpp`), so = path.join(TMP, `${name}.so`);
  fs.writeFileSync(src, lines.join('\n'));
  const r = spawnSync(gxx, ['-shared', '-fPIC', '-o', so, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`g++ failed: ${r.stderr}`);
  return so;
}

function child(code: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', TS_HOOK + code], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const DIST = JSON.stringify(path.join(ROOT, 'ts/dist.ts'));
// Prints one JSON line: nccl.info() and what uniqueId/init do.
const PROBE = `
const dist = require(${DIST});
(async () => {
  const out = { info: dist.nccl.info() };
  try { out.id = Array.from(dist.uniqueId({ backend: 'nccl' }).slice(0, 4)); } catch (e) { out.idError = { code: e.code, message: e.message }; }
  try { await dist.init({ backend: 'nccl', rank: 0, worldSize: 1, uniqueId: new Uint8Array(128) }); out.init = 'ok'; }
  catch (e) { out.initError = { code: e.code, message: e.message }; }
  console.log(JSON.stringify(out));
})();
`;

// The loader tests are CPU-side; gpu-check (LLMK_TEST_DEVICES=cuda) keeps only the first one.
const CPU_RUN = !process.env.LLMK_TEST_DEVICES || process.env.LLMK_TEST_DEVICES === 'cpu';
const cpuTest = CPU_RUN ? test : test.skip;

describe('NCCL loader', () => {
  test('nccl.info() never throws and says where NCCL is or why it is not', () => {
    const i = nccl.info();
    expect(typeof i.available).toBe('boolean');
    expect(i.searched.length).toBeGreaterThan(0);
    if (i.available) {
      expect(i.versionCode).toBeGreaterThanOrEqual(21800);
      expect(i.version).toMatch(/^2\.\d+\.\d+$/);
      expect(i.path).toBeTruthy();
    } else {
      expect(i.reason).toMatch(/NCCL is unavailable/);
      expect(i.reason).toMatch(/Searched: /);
      expect(i.reason).toMatch(/LLMK_NCCL_PATH/);
    }
  });

  cpuTest('a missing library is a clear error', () => {
    const i = nccl.probe('/nonexistent/dir/libnccl.so.2');
    expect(i.available).toBe(false);
    expect(i.reason).toMatch(/cannot open \/nonexistent\/dir\/libnccl\.so\.2/);
    const notLib = path.join(TMP, 'not-a-library.so');
    fs.writeFileSync(notLib, 'hello');
    expect(nccl.probe(notLib).reason).toMatch(/cannot open .*not-a-library\.so/);
    expect(() => nccl.probe('')).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
  });

  const withGxx = gxx && CPU_RUN ? test : test.skip;

  withGxx('a stub library missing a symbol is refused, naming the symbol', () => {
    const so = stub('missing', ALL.filter((s) => s !== 'ncclCommGetAsyncError' && s !== 'ncclSend'), 22105);
    const i = nccl.probe(so);
    expect(i.available).toBe(false);
    expect(i.reason).toMatch(/is missing NCCL symbol\(s\): ncclCommGetAsyncError, ncclSend/);
  });

  withGxx('an NCCL older than 2.18 is refused; a complete one is accepted', () => {
    const old = nccl.probe(stub('old', ALL, 21703));
    expect(old.available).toBe(false);
    expect(old.reason).toMatch(/is NCCL 2\.17\.3; llm-kernels needs NCCL 2\.18 or newer/);
    const ok = nccl.probe(stub('ok', ALL, 22105));
    expect(ok).toMatchObject({ available: true, version: '2.21.5', versionCode: 22105, reason: null });
  });

  cpuTest('LLMK_NCCL_PATH to a missing file: only it is tried; calls that need NCCL fail with ERR_LLMK_UNAVAILABLE', async () => {
    const r = await child(PROBE, { LLMK_NCCL_PATH: '/nonexistent/libnccl.so.2' });
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout);
    expect(o.info.available).toBe(false);
    expect(o.info.searched).toHaveLength(1);
    expect(o.info.searched[0]).toMatch(/^\/nonexistent\/libnccl\.so\.2 \(not loadable/);
    expect(o.idError).toMatchObject({ code: 'ERR_LLMK_UNAVAILABLE', message: expect.stringMatching(/cannot open \/nonexistent\/libnccl\.so\.2.*Searched/) });
    expect(o.initError).toMatchObject({ code: 'ERR_LLMK_UNAVAILABLE', message: expect.stringMatching(/NCCL is unavailable/) });
  });

  withGxx('LLMK_NCCL_PATH to a stub missing a symbol: ERR_LLMK_UNAVAILABLE naming it', async () => {
    const so = stub('missing2', ALL.filter((s) => s !== 'ncclGroupEnd'), 22105);
    const o = JSON.parse((await child(PROBE, { LLMK_NCCL_PATH: so })).stdout);
    expect(o.idError).toMatchObject({ code: 'ERR_LLMK_UNAVAILABLE', message: expect.stringMatching(/missing NCCL symbol\(s\): ncclGroupEnd/) });
  });

  withGxx('LLMK_NCCL_PATH to a complete stub: the unique id comes from the dlopened library', async () => {
    const so = stub('ok2', ALL, 21805);
    const o = JSON.parse((await child(PROBE, { LLMK_NCCL_PATH: so })).stdout);
    expect(o.info).toMatchObject({ available: true, version: '2.18.5', path: so });
    expect(o.id).toEqual([0x42, 0x42, 0x42, 0x42]);
    // No GPU here: init reports the device problem, not NCCL's.
    if (o.initError) expect(['ERR_LLMK_UNAVAILABLE', 'ERR_LLMK_DEVICE', 'ERR_LLMK_NCCL']).toContain(o.initError.code);
  });

  cpuTest('`llm-kernels nccl-info` prints the search and exits 1 without NCCL', async () => {
    const r = await child(`require(${JSON.stringify(path.join(ROOT, 'ts/cli.ts'))}).main(['nccl-info']).then((c) => { process.exitCode = c; });`,
      { LLMK_NCCL_PATH: '/nonexistent/libnccl.so.2' });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ available: false, reason: expect.stringMatching(/nonexistent/) });
  });
});

afterAll(() => { fs.rmSync(TMP, { recursive: true, force: true }); });

// ---------------------------------------------------------------------------------------------
// The NCCL backend from Node on each CUDA device (world size 1: one GPU cannot host two NCCL ranks).
// Multi-GPU semantics are covered by the local backend; this proves the NCCL path end to end.
const CUDA_DEVICES = testDevices().filter((d) => d.device !== 'cpu');
const ncclSkip = nccl.info().available ? null : `NCCL unavailable: ${nccl.info().reason}`;
for (const d of CUDA_DEVICES) {
  const skip = d.skip ?? ncclSkip;
  (skip ? describe.skip : describe)(`dist nccl backend [${d.device}]${skip ? ` (skipped: ${skip.slice(0, 120)})` : ''}`, () => {
    test('world size 1: init, every collective and dtype, group, barrier, timing, destroy', async () => {
      const { init, uniqueId } = await import('../ts/dist');
      const { tensor: mk, empty } = await import('../ts/tensor');
      const comm = await init({ backend: 'nccl', rank: 0, worldSize: 1, device: d.device, uniqueId: uniqueId({ backend: 'nccl' }), timeoutMs: 60000 });
      expect([comm.backend, comm.rank, comm.worldSize, comm.device]).toEqual(['nccl', 0, 1, d.device]);
      const data: Record<string, any> = {
        float32: Float32Array.from([1.5, -2, 3, 0.25, 7]), float16: Float32Array.from([1.5, -2, 3, 0.25, 7]),
        bfloat16: Float32Array.from([1.5, -2, 3, 0.25, 7]), int32: Int32Array.from([1, -2, 3, 2 ** 30, 7]),
        int64: BigInt64Array.from([1n, -2n, 3n, 2n ** 40n, 7n]), int8: Int8Array.from([1, -2, 3, 127, -128]), uint8: Uint8Array.from([1, 2, 3, 255, 0]),
      };
      for (const [dtype, arr] of Object.entries(data)) {
        const want = Array.from(arr as ArrayLike<number | bigint>);
        const x = () => mk(arr, { dtype: dtype as any, device: d.device });
        for (const op of ['sum', 'prod', 'max', 'min', 'avg'] as const) {
          expect([dtype, op, Array.from(await comm.allReduce(x(), { op }).toArray() as ArrayLike<number | bigint>)]).toEqual([dtype, op, want]);
          const out = empty([5], { dtype: dtype as any, device: d.device });
          expect(Array.from(await comm.allReduce(x(), { op, out }).toArray() as ArrayLike<number | bigint>)).toEqual(want);
        }
        expect(Array.from(await comm.allGather(x()).toArray() as ArrayLike<number | bigint>)).toEqual(want);
        expect(Array.from(await comm.reduceScatter(x()).toArray() as ArrayLike<number | bigint>)).toEqual(want);
        expect(Array.from(await comm.broadcast(x(), { root: 0, out: empty([5], { dtype: dtype as any, device: d.device }) }).toArray() as ArrayLike<number | bigint>)).toEqual(want);
        const r = empty([5], { dtype: dtype as any, device: d.device });
        const s = x();
        comm.group(() => { comm.send(s, 0); comm.recv(r, 0); });
        expect(Array.from(await r.toArray() as ArrayLike<number | bigint>)).toEqual(want);
      }
      await comm.barrier();
      // Contract checks before NCCL sees anything.
      expect(() => comm.allReduce(mk(new Float32Array(4)))).toThrow(expect.objectContaining({ code: 'ERR_LLMK_DEVICE' }));
      // Per-call cost of allReduce from JS (N-API + checks + enqueue), float32, 1 and 1M elements.
      for (const n of [1, 1 << 20]) {
        const t = empty([n], { device: d.device });
        for (let i = 0; i < 50; i++) comm.allReduce(t);
        await comm.synchronize();
        const iters = n === 1 ? 5000 : 500;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < iters; i++) comm.allReduce(t);
        const t1 = process.hrtime.bigint();
        await comm.synchronize();
        const t2 = process.hrtime.bigint();
        console.log(JSON.stringify({ case: `node_allreduce_f32_${n}`, enqueue_us: Number(t1 - t0) / 1e3 / iters, wall_us_per_call: Number(t2 - t0) / 1e3 / iters }));
        t.dispose();
      }
      await comm.destroy();
      expect(() => comm.allReduce(empty([1], { device: d.device }))).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    });

    test('the local backend refuses CUDA tensors', async () => {
      const { init, uniqueId } = await import('../ts/dist');
      const { empty } = await import('../ts/tensor');
      const c = await init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: uniqueId({ backend: 'local' }) });
      expect(() => c.allReduce(empty([4], { device: d.device }))).toThrow(expect.objectContaining({ code: 'ERR_LLMK_DEVICE' }));
      await c.destroy();
    });
  });
}
