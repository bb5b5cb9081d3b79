// The TCP store (rendezvous of 4 processes on loopback, a rank that never arrives, bad ids, bad
// clients), initFromEnv, and the launcher (exit codes, a failing rank tears the group down).
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { fetchUniqueId, rendezvous, TCPStoreServer, STORE_PROTO } from '../ts/dist/store';
import { parseLaunchArgs } from '../ts/dist/launch';

// CPU / local-backend suite: gpu-check's CUDA-only jest run (LLMK_TEST_DEVICES=cuda) leaves it to CI.
const CPU_RUN = !process.env.LLMK_TEST_DEVICES || process.env.LLMK_TEST_DEVICES === 'cpu';
const cpuDescribe = (CPU_RUN ? describe : describe.skip) as typeof describe;

const ROOT = path.join(__dirname, '..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-dist-'));

// Code that lets a plain `node` process require the TypeScript sources (transpiled on the fly).
const TS_HOOK = `
const __ts = require(${JSON.stringify(require.resolve('typescript'))});
const __fs = require('fs');
require.extensions['.ts'] = (m, f) => m._compile(__ts.transpileModule(__fs.readFileSync(f, 'utf8'),
  { compilerOptions: { module: __ts.ModuleKind.CommonJS, target: __ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: f }).outputText, f);
`;

function script(name: string, body: string): string {
  const p = path.join(TMP, name);
  fs.writeFileSync(p, TS_HOOK + body);
  return p;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Run { code: number | null; stdout: string; stderr: string; ms: number }
function runNode(args: string[], env: Record<string, string>, timeoutMs = 60000): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const c = spawn(process.execPath, args, { env: { ...process.env, ...env }, cwd: ROOT });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => { clearTimeout(t); resolve({ code, stdout, stderr, ms: Date.now() - t0 }); });
  });
}

const RDV = `
const { rendezvous } = require(${JSON.stringify(path.join(ROOT, 'ts/dist/store.ts'))});
const crypto = require('crypto');
// START_AT: all ranks begin together (process start-up under load varies by seconds).
setTimeout(() => rendezvous({ rank: +process.env.RANK, worldSize: +process.env.WORLD_SIZE, host: process.env.MASTER_ADDR, port: +process.env.MASTER_PORT,
  timeoutMs: +(process.env.TIMEOUT_MS || 20000), makeId: () => new Uint8Array(crypto.randomBytes(128)) })
  .then((id) => { console.log('ID ' + Buffer.from(id).toString('hex')); })
  .catch((e) => { console.log('ERR ' + e.code + ' ' + e.message); process.exitCode = 3; }),
  Math.max(0, +(process.env.START_AT || 0) - Date.now()));
`;

cpuDescribe('dist TCP store', () => {
  test('4 processes rendezvous on loopback and agree on the unique id', async () => {
    const port = await freePort();
    const file = script('rdv.js', RDV);
    const runs = await Promise.all([0, 1, 2, 3].map((rank) =>
      runNode([file], { RANK: String(rank), WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) })));
    const ids = runs.map((r) => /ID ([0-9a-f]+)/.exec(r.stdout)?.[1]);
    for (const r of runs) expect([r.code, r.stderr]).toEqual([0, '']);
    expect(ids[0]).toMatch(/^[0-9a-f]{256}$/);
    expect(new Set(ids).size).toBe(1);
  });

  test('a rank that never arrives: every rank fails with a clear timeout naming it', async () => {
    const port = await freePort();
    const file = script('rdv-timeout.js', RDV);
    const env = { WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TIMEOUT_MS: '1500', START_AT: String(Date.now() + 6000) };
    const runs = await Promise.all([0, 1, 2].map((rank) => runNode([file], { ...env, RANK: String(rank) })));
    for (const r of runs) {
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(/ERR ERR_LLMK_NCCL .*timed out after 1500 ms: rank\(s\) 3 of 4 never reached the store at 127\.0\.0\.1:\d+/);
      expect(r.ms).toBeLessThan(30000);
    }
  });

  test('no store at all: a rank gives up after its timeout', async () => {
    const port = await freePort();
    await expect(fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 400 })).rejects.toMatchObject({
      code: 'ERR_LLMK_NCCL', message: expect.stringMatching(/could not reach the store at 127\.0\.0\.1:\d+ within 400 ms.*is rank 0 running/),
    });
  });

  test('a timeout beyond 2^31 - 1 ms (24.8 days) does not expire at once', async () => {
    // Node fires such timers after 1 ms: rank 0's store gave up at once and rank 1 retried for weeks.
    const port = await freePort();
    const id = new Uint8Array(128).fill(9);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const timeoutMs = 2 ** 32;
      const r0 = rendezvous({ rank: 0, worldSize: 2, port, timeoutMs, makeId: () => id });
      await new Promise((r) => setTimeout(r, 100));
      const r1 = rendezvous({ rank: 1, worldSize: 2, port, timeoutMs, makeId: () => id });
      const [a, b] = await Promise.all([r0, r1]);
      expect([Array.from(a.slice(0, 2)), Array.from(b.slice(0, 2))]).toEqual([[9, 9], [9, 9]]);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  test('a bad unique id from the store is rejected', async () => {
    const server = net.createServer((s) => {
      s.once('data', () => s.write(JSON.stringify({ ok: true, uniqueId: Buffer.alloc(10).toString('base64') }) + '\n'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      await expect(fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 5000 })).rejects.toMatchObject({
        code: 'ERR_LLMK_ARG', message: expect.stringMatching(/bad unique id \(10 bytes, expected 128\)/),
      });
    } finally {
      server.close();
    }
    await expect(rendezvous({ rank: 0, worldSize: 2, port, makeId: () => new Uint8Array(5) })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
  });

  test('the store refuses bad clients: other protocol, world size mismatch, duplicate rank', async () => {
    const id = new Uint8Array(128).fill(7);
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 3, uniqueId: id, timeoutMs: 10000 });
    const ask = (hello: unknown) => new Promise<any>((resolve) => {
      const s = net.connect({ port: server.port, host: '127.0.0.1' }, () => s.write(JSON.stringify(hello) + '\n'));
      let buf = '';
      s.on('data', (d) => { buf += d; if (buf.includes('\n')) { resolve(JSON.parse(buf.split('\n')[0])); } });
      s.on('close', () => { if (!buf) resolve(null); });
      s.on('error', () => resolve(null));
    });
    try {
      expect(await ask({ proto: 'http', rank: 1, worldSize: 3 })).toMatchObject({ ok: false, error: expect.stringMatching(/not an llm-kernels store client/) });
      expect(await ask({ proto: STORE_PROTO, rank: 1, worldSize: 2 })).toMatchObject({ ok: false, error: expect.stringMatching(/WORLD_SIZE mismatch/) });
      expect(await ask({ proto: STORE_PROTO, rank: 5, worldSize: 3 })).toMatchObject({ ok: false, error: expect.stringMatching(/out of range/) });
      // rank 1 connects properly and waits; a second rank 1 is refused.
      const first = fetchUniqueId({ port: server.port, rank: 1, worldSize: 3, timeoutMs: 10000 });
      await new Promise((r) => setTimeout(r, 200));
      expect(await ask({ proto: STORE_PROTO, rank: 1, worldSize: 3 })).toMatchObject({ ok: false, error: expect.stringMatching(/arrived twice/) });
      const second = fetchUniqueId({ port: server.port, rank: 2, worldSize: 3, timeoutMs: 10000 });
      expect(Array.from(await first)).toEqual(Array.from(id));
      expect(Array.from(await second)).toEqual(Array.from(id));
      await server.done;
    } finally {
      server.close();
    }
  });

  test('initFromEnv: missing variables are clear errors; world size 1 works with the local backend', async () => {
    const { initFromEnv } = await import('../ts/dist');
    await expect(initFromEnv({ env: {} })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/RANK is not set/) });
    await expect(initFromEnv({ env: { RANK: '2', WORLD_SIZE: '2', MASTER_PORT: '1' } })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
    await expect(initFromEnv({ backend: 'local', env: { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' } })).rejects.toMatchObject({
      code: 'ERR_LLMK_ARG', message: expect.stringMatching(/runLocal/),
    });
    const port = await freePort();
    const c = await initFromEnv({ backend: 'local', env: { RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } });
    expect([c.rank, c.worldSize, c.backend]).toEqual([0, 1, 'local']);
    await c.destroy();
  });
});

cpuDescribe('llm-kernels launch', () => {
  const cli = (args: string[], timeoutMs = 60000) =>
    runNode(['-e', `${TS_HOOK}require(${JSON.stringify(path.join(ROOT, 'ts/cli.ts'))}).main(${JSON.stringify(args)}).then((c) => { process.exitCode = c; })`], {}, timeoutMs);

  test('argument parsing', () => {
    expect(parseLaunchArgs(['--nproc-per-node', '4', '--master-port=1234', 'train.js', '--lr', '3'])).toMatchObject({
      nprocPerNode: 4, masterPort: 1234, script: 'train.js', args: ['--lr', '3'],
    });
    expect(parseLaunchArgs(['--nproc_per_node=2', '--nnodes', '2', '--node-rank', '1', '--master-addr', '10.0.0.1', 'x.js'])).toMatchObject({
      nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', script: 'x.js',
    });
    expect(() => parseLaunchArgs(['x.js'])).toThrow(/--nproc-per-node is required/);
    expect(() => parseLaunchArgs(['--nproc-per-node', '0', 'x.js'])).toThrow(/integer >= 1/);
    expect(() => parseLaunchArgs(['--nproc-per-node', '2'])).toThrow(/no script/);
    expect(() => parseLaunchArgs(['--nproc-per-node', '2', '--node-rank', '1', 'x.js'])).toThrow(/below --nnodes/);
    expect(() => parseLaunchArgs(['--bogus', 'x.js'])).toThrow(/unknown option --bogus/);
  });

  test('every rank gets torchrun variables; all succeed → exit 0', async () => {
    const s = script('env.js', `
      const e = process.env;
      console.log('RANKINFO ' + [e.RANK, e.WORLD_SIZE, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT, process.argv[2]].join(','));
    `);
    const r = await cli(['launch', '--nproc-per-node', '3', '--nnodes', '2', '--node-rank', '1', '--master-port', '29411', s, 'arg1']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('RANKINFO ')).map((l) => l.slice(9)).sort();
    expect(lines).toEqual(['3,6,0,3,127.0.0.1,29411,arg1', '4,6,1,3,127.0.0.1,29411,arg1', '5,6,2,3,127.0.0.1,29411,arg1']);
  });

  test('a failing rank stops the others and the launcher exits with its code', async () => {
    const s = script('fail.js', `
      if (process.env.RANK === '1') { setTimeout(() => process.exit(7), 200); }
      else { setTimeout(() => { console.log('SURVIVED ' + process.env.RANK); }, 30000); }
    `);
    const r = await cli(['launch', '--nproc-per-node', '3', '--grace', '2', s]);
    expect(r.code).toBe(7);
    expect(r.stdout).not.toMatch(/SURVIVED/);
    expect(r.stderr).toMatch(/rank 1 exited with code 7; stopping the other ranks/);
    expect(r.ms).toBeLessThan(20000);
  });

  test('a rank that ignores SIGTERM is killed after the grace period', async () => {
    const s = script('stubborn.js', `
      process.on('SIGTERM', () => { console.log('IGNORED ' + process.env.RANK); });
      if (process.env.RANK === '0') { setTimeout(() => { throw new Error('rank 0 crashed'); }, 200); }
      else setInterval(() => {}, 1000);
    `);
    const r = await cli(['launch', '--nproc-per-node', '2', '--grace', '1', s]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rank 0 crashed/);
    expect(r.ms).toBeLessThan(20000);
  });

  test('usage errors exit 2', async () => {
    const r = await cli(['launch', 'x.js']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--nproc-per-node is required/);
    const u = await cli(['frobnicate']);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/unknown command/);
  });
});

afterAll(() => { fs.rmSync(TMP, { recursive: true, force: true }); });
void spawnSync;
