// A worker_thread that ends (terminate() or process.exit inside it) while a toArray() or synchronize()
// is pending must not take the process down: completions arriving during teardown are dropped.
// Each case runs in a child process, so an abort shows up as its exit status instead of killing jest.
import { spawnSync } from 'child_process';
import * as path from 'path';

const lib = path.join(__dirname, '..', 'lib', 'index.js');

// Parent script: starts `rounds` workers running `body`; ends each as `how` says; prints "done".
function runCase(body: string, how: 'terminate' | 'exit', rounds = 4) {
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
          w.once('message', () => { w.terminate().then(resolve, reject); });
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
    ['toArray() pending, worker terminated', 'l.zeros([4]).toArray();', 'terminate'],
    ['toArray() pending behind queued work, worker terminated', pendingRead, 'terminate'],
    ['synchronize() pending, worker terminated', pendingSync, 'terminate'],
    ['toArray() pending, process.exit in the worker', pendingRead, 'exit'],
    ['synchronize() pending, process.exit in the worker', pendingSync, 'exit'],
  ] as const)('%s', (_name, body, how) => {
    const r = runCase(body, how);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('done 3,3,3');
  });
});
