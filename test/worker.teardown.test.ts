// A worker_thread that ends (terminate() or process.exit inside it) while a toArray() or synchronize()
// is pending, or while it is inside a native call that throws, must not take the process down:
// completions arriving during teardown are dropped, and so are errors that can no longer be thrown.
// Each case runs in a child process, so an abort shows up as its exit status instead of killing jest.
import { spawnSync } from 'child_process';
import * as path from 'path';

const lib = path.join(__dirname, '..', 'lib', 'index.js');

// Parent script: starts `rounds` workers running `body`; ends each as `how` says; prints "done".
// delayMs > 0: terminate at a random point within it, over more rounds (the window is narrow).
function runCase(body: string, how: 'terminate' | 'exit', delayMs: number, rounds = delayMs > 0 ? 10 : 4) {
  const worker = `
    const { parentPort } = require('worker_threads');
    const l = require(${JSON.stringify(lib)});
    ${body}
    ${how === 'exit' ? 'process.exit(0);' : "parentPort.postMessage('pending');"}
  `;
  const parent = `
    const { Worker } = require('worker_threads');
    (async () => {
      for (let i = 0; i < ${rounds}; i++) {
        const w = new Worker(${JSON.stringify(worker)}, { eval: true });
        await new Promise((resolve, reject) => {
          w.once('message', () => setTimeout(() => w.terminate().then(resolve, reject), Math.random() * ${delayMs}));
          w.once('exit', resolve);
          w.once('error', reject);
        });
      }
      // the process keeps working afterwards
      const l = require(${JSON.stringify(lib)});
      const r = await l.add(l.full([3], 1), l.full([3], 2)).toArray();
      console.log('done ' + Array.from(r).join(','));
    })().catch((e) => { console.error(e); process.exit(2); });
  `;
  return spawnSync(process.execPath, ['-e', parent], { encoding: 'utf8', timeout: 60000 });
}

// Real work queued ahead, so the wait is still pending when the worker ends.
const busy = 'const a = l.randn([384, 384], { seed: 1 }); for (let i = 0; i < 6; i++) l.matmul(a, a);';
const pendingRead = `${busy} l.zeros([4]).toArray();`;
const pendingSync = `${busy} l.synchronize("cpu");`;

describe('worker teardown with pending device waits', () => {
  it.each([
    ['toArray() pending, worker terminated', 'l.zeros([4]).toArray();', 'terminate', 0],
    ['toArray() pending behind queued work, worker terminated', pendingRead, 'terminate', 0],
    ['synchronize() pending, worker terminated', pendingSync, 'terminate', 0],
    ['toArray() pending, process.exit in the worker', pendingRead, 'exit', 0],
    ['synchronize() pending, process.exit in the worker', pendingSync, 'exit', 0],
    // terminate() lands inside native calls that throw (a JS error cannot be thrown into a dying env)
    ['native calls throwing in a loop, worker terminated',
      `const n = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native.js'))}).native;
       setImmediate(() => { const a = l.zeros([4]);
         for (;;) { try { n.toHostSync(0.5, false); } catch {} try { l.add(a, a).dispose(); } catch {} } });`, 'terminate', 20],
  ] as const)('%s', (_name, body, how, delayMs) => {
    const r = runCase(body, how, delayMs);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('done 3,3,3');
  });
});
