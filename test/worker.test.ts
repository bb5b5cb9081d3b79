// The addon is context-aware: it loads and works in worker_threads, each with its own state.
import { Worker } from 'worker_threads';
import * as path from 'path';

describe('worker_threads', () => {
  it('loads the addon in two workers at once and runs ops there', async () => {
    const lib = path.join(__dirname, '..', 'lib', 'index.js');
    const code = `
      const { parentPort, workerData } = require('worker_threads');
      const l = require(workerData.lib);
      const a = l.tensor(new Float32Array([1, 2, 3]));
      const b = l.full([3], workerData.k);
      l.add(a, b).toArray().then((r) => parentPort.postMessage(Array.from(r)));
    `;
    const run = (k: number) => new Promise<number[]>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { lib, k } });
      w.once('message', (m) => { resolve(m); void w.terminate(); });
      w.once('error', reject);
    });
    const [r1, r2] = await Promise.all([run(10), run(20)]);
    expect(r1).toEqual([11, 12, 13]);
    expect(r2).toEqual([21, 22, 23]);
  });
});
