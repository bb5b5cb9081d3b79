// The TCP store (rendezvous of 4 processes on loopback, a rank that never arrives, bad ids, bad
// unauthenticated stores), initFromEnv, and the launcher (exit codes, a failing rank tears the group down).
import * as path from 'path';
import { fetchUniqueId, rendezvous, TCPStoreServer } from '../ts/dist/store';
import { parseLaunchArgs } from '../ts/dist/launch';
import { cliCode, cpuDescribe, freePort, ROOT, runProcess, scratch, TEST_TOKEN } from './dist-helpers';

const { script, cleanup } = scratch('llmk-dist-');
const runNode = (args: string[], env: Record<string, string>, timeoutMs = 60000) => runProcess(args, env, timeoutMs);

const RDV = `
const { rendezvous } = require(${JSON.stringify(path.join(ROOT, 'ts/dist/store.ts'))});
const crypto = require('crypto');
// START_AT: all ranks begin together (process start-up under load varies by seconds).
setTimeout(() => rendezvous({ rank: +process.env.RANK, worldSize: +process.env.WORLD_SIZE, host: process.env.MASTER_ADDR, port: +process.env.MASTER_PORT,
  timeoutMs: +(process.env.TIMEOUT_MS || 20000), token: process.env.LLMK_STORE_TOKEN, makeId: () => new Uint8Array(crypto.randomBytes(128)) })
  .then((id) => { console.log('ID ' + Buffer.from(id).toString('hex')); })
  .catch((e) => { console.log('ERR ' + e.code + ' ' + e.message); process.exitCode = 3; }),
  Math.max(0, +(process.env.START_AT || 0) - Date.now()));
`;

cpuDescribe('dist TCP store', () => {
  test('4 processes rendezvous on loopback and agree on the unique id', async () => {
    const port = await freePort();
    const file = script('rdv.js', RDV);
    const runs = await Promise.all([0, 1, 2, 3].map((rank) =>
      runNode([file], { RANK: String(rank), WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), LLMK_STORE_TOKEN: TEST_TOKEN })));
    const ids = runs.map((r) => /ID ([0-9a-f]+)/.exec(r.stdout)?.[1]);
    for (const r of runs) expect([r.code, r.stderr]).toEqual([0, '']);
    expect(ids[0]).toMatch(/^[0-9a-f]{256}$/);
    expect(new Set(ids).size).toBe(1);
  });

  test('a rank that never arrives: every rank fails with a clear timeout naming it', async () => {
    const port = await freePort();
    const file = script('rdv-timeout.js', RDV);
    const env = { WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), LLMK_STORE_TOKEN: TEST_TOKEN, TIMEOUT_MS: '2500', START_AT: String(Date.now() + 8000) };
    const runs = await Promise.all([0, 1, 2].map((rank) => runNode([file], { ...env, RANK: String(rank) })));
    for (const r of runs) {
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(/ERR ERR_LLMK_NCCL .*timed out after 2500 ms: rank\(s\) 3 of 4 never reached the store at 127\.0\.0\.1:\d+/);
      expect(r.ms).toBeLessThan(30000);
    }
  });

  test('no store at all: a rank gives up after its timeout', async () => {
    const port = await freePort();
    await expect(fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 400, token: TEST_TOKEN })).rejects.toMatchObject({
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
      const r0 = rendezvous({ rank: 0, worldSize: 2, port, timeoutMs, token: TEST_TOKEN, makeId: () => id });
      await new Promise((r) => setTimeout(r, 100));
      const r1 = rendezvous({ rank: 1, worldSize: 2, port, timeoutMs, token: TEST_TOKEN, makeId: () => id });
      const [a, b] = await Promise.all([r0, r1]);
      expect([Array.from(a.slice(0, 2)), Array.from(b.slice(0, 2))]).toEqual([[9, 9], [9, 9]]);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  test('a bad unique id from the store is rejected', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: new Uint8Array(10), timeoutMs: 5000, token: TEST_TOKEN });
    try {
      await expect(fetchUniqueId({ port: server.port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN })).rejects.toMatchObject({
        code: 'ERR_LLMK_ARG', message: expect.stringMatching(/bad unique id \(10 bytes, expected 128\)/),
      });
    } finally {
      server.close();
    }
    const port = await freePort();
    await expect(rendezvous({ rank: 0, worldSize: 2, port, token: TEST_TOKEN, makeId: () => new Uint8Array(5) })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
  });

  test('initFromEnv: missing variables are clear errors; world size 1 works with the local backend', async () => {
    const { initFromEnv } = await import('../ts/dist');
    await expect(initFromEnv({ env: {} })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/RANK is not set/) });
    await expect(initFromEnv({ env: { RANK: '2', WORLD_SIZE: '2', MASTER_PORT: '1' } })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
    await expect(initFromEnv({ backend: 'local', env: { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' } })).rejects.toMatchObject({
      code: 'ERR_LLMK_ARG', message: expect.stringMatching(/runLocal/),
    });
    await expect(initFromEnv({ env: { RANK: '1', WORLD_SIZE: '2', MASTER_PORT: '1' } })).rejects.toMatchObject({
      code: 'ERR_LLMK_ARG', message: expect.stringMatching(/no job token: set LLMK_STORE_TOKEN/),
    });
    const port = await freePort();
    const c = await initFromEnv({ backend: 'local', env: { RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } });
    expect([c.rank, c.worldSize, c.backend]).toEqual([0, 1, 'local']);
    await c.destroy();
  });
});

cpuDescribe('llm-kernels launch', () => {
  const cli = (args: string[], timeoutMs = 60000) => runNode(['-e', cliCode(args)], {}, timeoutMs);

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
      console.log('RANKINFO ' + [e.RANK, e.WORLD_SIZE, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT, e.LLMK_STORE_TOKEN, process.argv[2]].join(','));
    `);
    const r = await runNode(['-e', cliCode(['launch', '--nproc-per-node', '3', '--nnodes', '2', '--node-rank', '1', '--master-port', '29411', s, 'arg1'])],
      { LLMK_STORE_TOKEN: TEST_TOKEN });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('RANKINFO ')).map((l) => l.slice(9)).sort();
    expect(lines).toEqual([3, 4, 5].map((rank, local) => `${rank},6,${local},3,127.0.0.1,29411,${TEST_TOKEN},arg1`));
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

afterAll(cleanup);
