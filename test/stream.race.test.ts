// The stream contract (README "Runtime"): a storage remembers the stream of its last use, and work on
// any other stream, and toArray(), waits for it first. Also: nested withStream restores the outer stream.
import { add, matmul, Stream, tensor, withStream, zeros, type DeviceName, type Tensor } from '../ts';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { native } from '../ts/native';
import { matmulRef } from './reference/matmul';
import { describeDevices, randnArray, relL2, rng, SEED } from './helpers';

const N = 192;  // large enough that the matmul outlasts a read racing it on another stream

// Keeps stream s busy for a while (a burst of matmuls), so a read that does not wait for s reads early.
function busy(s: Stream, a: Tensor): void {
  withStream(s, () => { for (let i = 0; i < 16; i++) matmul(a, a).dispose(); });
}

function inputs(seed: number, device: DeviceName) {
  const host = randnArray(N * N, rng(seed));
  return { host, a: tensor(host, { shape: [N, N], device }), ref: matmulRef(host, host, N, N, N) };
}

describeDevices('cross-stream reads (seed ' + SEED + ')', (device) => {
  it('toArray() on the default stream waits for the writer on another stream', async () => {
    const s = new Stream(device);
    for (let rep = 0; rep < 10; rep++) {
      const { a, ref } = inputs(SEED + rep, device);
      busy(s, a);
      const c = withStream(s, () => matmul(a, a));
      expect(relL2((await c.toArray()) as Float32Array, ref)).toBeLessThan(1e-5);
      c.dispose(); a.dispose();
    }
  });

  it('an op on the default stream waits for its input written on another stream', async () => {
    const s = new Stream(device);
    for (let rep = 0; rep < 10; rep++) {
      const { a, ref } = inputs(SEED + 100 + rep, device);
      const z = zeros([N, N], { device });
      busy(s, a);
      const c = withStream(s, () => matmul(a, a));
      const d = add(c, z);
      expect(relL2(d.toArraySync() as Float32Array, ref)).toBeLessThan(1e-5);
      c.dispose(); d.dispose(); z.dispose(); a.dispose();
    }
  });

  it('toArraySync() waits for the writer on another stream', () => {
    const s = new Stream(device);
    for (let rep = 0; rep < 5; rep++) {
      const { a, ref } = inputs(SEED + 200 + rep, device);
      busy(s, a);
      const c = withStream(s, () => matmul(a, a));
      expect(relL2(c.toArraySync() as Float32Array, ref)).toBeLessThan(1e-5);
      c.dispose(); a.dispose();
    }
  });

  it('a chain across three streams sees every earlier write', async () => {
    const s1 = new Stream(device), s2 = new Stream(device);
    const { a, host } = inputs(SEED + 300, device);
    busy(s1, a);
    const c = withStream(s1, () => matmul(a, a));
    const d = withStream(s2, () => add(c, c));           // waits for s1
    const e = add(d, a);                                 // default stream: waits for s2 (and so s1)
    const cRef = matmulRef(host, host, N, N, N);
    const eRef = cRef.map((x, i) => 2 * x + host[i]);
    expect(relL2((await e.toArray()) as Float32Array, eRef)).toBeLessThan(1e-5);
    for (const t of [a, c, d, e]) t.dispose();
  });
});

describe('cross-stream reads on a fresh thread', () => {
  it('the first tensor a worker_thread makes is ordered before its use on another stream', async () => {
    const lib = path.join(__dirname, '..', 'lib', 'index.js');
    const code = `
      const { parentPort } = require('worker_threads');
      const l = require(${JSON.stringify(lib)});
      const x = l.full([512, 512], 1);                      // the thread's first op: a queued fill
      const s = new l.Stream('cpu');
      const y = l.withStream(s, () => l.add(x, x));         // must wait for the fill on the default stream
      y.toArray().then((v) => parentPort.postMessage(v.every((e) => e === 2)));
    `;
    for (let rep = 0; rep < 3; rep++) {
      const ok = await new Promise<boolean>((resolve, reject) => {
        const w = new Worker(code, { eval: true });
        w.once('message', (m) => { resolve(m); void w.terminate(); });
        w.once('error', reject);
      });
      expect(ok).toBe(true);
    }
  });
});

describe('cross-stream waits in both directions', () => {
  it('a stream waiting for an event in the middle of another stream\'s batch is woken there (no deadlock)', () => {
    // Default stream: [sleep] then, in one batch, [fill x, wait for s]; s: [wait for the fill, add].
    // s must be woken when the fill is done, not when the default stream's batch ends (it never would).
    const root = path.join(__dirname, '..', 'lib');
    const code = `
      const l = require(${JSON.stringify(path.join(root, 'index.js'))});
      const { native } = require(${JSON.stringify(path.join(root, 'native.js'))});
      (async () => {
        for (let rep = 0; rep < 5; rep++) {
          const s = new l.Stream('cpu');
          native.debugSleep(50);
          const x = l.full([1 << 16], 1);
          const y = l.withStream(s, () => l.add(x, x));
          const z = l.add(y, y);
          const v = await z.toArray();
          if (!v.every((e) => e === 4)) throw new Error('wrong values');
          for (const t of [x, y, z]) t.dispose();
        }
        console.log('ok');
      })();
    `;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 30000 });
    expect({ signal: r.signal, status: r.status, out: r.stdout.trim() }).toEqual({ signal: null, status: 0, out: 'ok' });
  });
});

describeDevices('nested withStream', (device) => {
  const isCurrent = (s: Stream): boolean => native.isCurrentStream(s._h);
  it('restores the outer stream after an inner withStream', () => {
    const outer = new Stream(device), inner = new Stream(device);
    const seen = withStream(outer, () => {
      const before = isCurrent(outer);
      const during = withStream(inner, () => isCurrent(inner));
      return [before, during, isCurrent(outer)];
    });
    expect(seen).toEqual([true, true, true]);
    expect(isCurrent(outer)).toBe(false);
  });

  it('restores the outer stream when the inner function throws', () => {
    const outer = new Stream(device), inner = new Stream(device);
    const after = withStream(outer, () => {
      expect(() => withStream(inner, () => { throw new Error('boom'); })).toThrow('boom');
      return isCurrent(outer);
    });
    expect(after).toBe(true);
  });

  it('queues work of the outer function on the outer stream after an inner withStream', () => {
    const outer = new Stream(device), inner = new Stream(device);
    const { a, ref } = inputs(SEED + 400, device);
    const r = withStream(outer, () => {
      withStream(inner, () => add(a, a)).dispose();
      return matmul(a, a);
    });
    expect(relL2(r.toArraySync() as Float32Array, ref)).toBeLessThan(1e-5);
    r.dispose(); a.dispose();
  });
});
