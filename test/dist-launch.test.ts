// `llm-kernels launch`: the job token it hands its ranks (and their rendezvous through it), and ranks that
// never outlive the launcher, even when it is killed with SIGKILL.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cliCode, cpuDescribe, freePort, ROOT, runProcess, scratch, TEST_TOKEN } from './dist-helpers';

const { script, cleanup } = scratch('llmk-dist-launch-');
afterAll(cleanup);
const cli = (args: string[], env: Record<string, string> = {}) => runProcess(['-e', cliCode(args)], { LLMK_STORE_TOKEN: '', ...env });

/** True while `pid` is a live process (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

cpuDescribe('llm-kernels launch: the job token', () => {
  const tokenScript = () => script('token.js', `console.log('TOKEN ' + process.env.RANK + ' ' + process.env.LLMK_STORE_TOKEN);`);
  const tokens = (out: string) => out.split('\n').filter((l) => l.startsWith('TOKEN ')).map((l) => l.split(' ')[2]);

  test('a fresh random token per launch, the same for every rank', async () => {
    const s = tokenScript();
    const [a, b] = await Promise.all([cli(['launch', '--nproc-per-node', '2', s]), cli(['launch', '--nproc-per-node', '2', s])]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const ta = tokens(a.stdout), tb = tokens(b.stdout);
    expect(ta.length).toBe(2);
    expect(ta[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(ta[1]).toBe(ta[0]);
    expect(tb[0]).not.toBe(ta[0]);
  });

  test('LLMK_STORE_TOKEN is passed through; several nodes need it', async () => {
    const s = tokenScript();
    const [given, multi, short] = await Promise.all([
      cli(['launch', '--nproc-per-node', '1', s], { LLMK_STORE_TOKEN: TEST_TOKEN }),
      cli(['launch', '--nproc-per-node', '1', '--nnodes', '2', '--master-addr', '127.0.0.1', s]),
      cli(['launch', '--nproc-per-node', '1', s], { LLMK_STORE_TOKEN: 'short' }),
    ]);
    expect(tokens(given.stdout)).toEqual([TEST_TOKEN]);
    expect(multi.code).toBe(2);
    expect(multi.stderr).toMatch(/--nnodes 2 needs LLMK_STORE_TOKEN/);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/LLMK_STORE_TOKEN.*16/);
  });

  test('ranks started by the launcher rendezvous with its token', async () => {
    const port = await freePort();
    const s = script('join.js', `
      const { joinJob } = require(${JSON.stringify(path.join(ROOT, 'ts/dist/env.ts'))});
      joinJob(process.env, () => new Uint8Array(require('crypto').randomBytes(128)), 20000)
        .then(({ uniqueId }) => console.log('ID ' + Buffer.from(uniqueId).toString('hex')),
              (e) => { console.log('ERR ' + e.code + ' ' + e.message); process.exitCode = 3; });
    `);
    const r = await cli(['launch', '--nproc-per-node', '3', '--master-port', String(port), s]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const ids = r.stdout.split('\n').filter((l) => l.startsWith('ID '));
    expect(ids.length).toBe(3);
    expect(new Set(ids).size).toBe(1);
  });
});

cpuDescribe('llm-kernels launch: ranks never outlive it', () => {
  test('SIGKILL of the launcher stops every rank (idle or busy) within seconds', async () => {
    const s = script('linger.js', `
      console.log('PID ' + process.pid);
      if (process.env.RANK === '1') { for (;;) { /* busy: never returns to the event loop */ } }
      setTimeout(() => {}, 60000);
    `);
    const launcher = spawn(process.execPath, ['-e', cliCode(['launch', '--nproc-per-node', '2', '--grace', '1', s])],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const pids: number[] = [];
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`ranks did not start: ${out}`)), 30000);
      launcher.stdout.on('data', (d) => {
        out += d;
        pids.splice(0, pids.length, ...[...out.matchAll(/PID (\d+)/g)].map((m) => +m[1]));
        if (pids.length === 2) { clearTimeout(t); resolve(); }
      });
    });
    try {
      expect(pids.every(alive)).toBe(true);
      launcher.kill('SIGKILL');
      const t0 = Date.now();
      while (pids.some(alive) && Date.now() - t0 < 8000) await new Promise((r) => setTimeout(r, 100));
      expect(pids.filter(alive)).toEqual([]);
    } finally {
      for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      launcher.stdout.destroy();
    }
  });
});
