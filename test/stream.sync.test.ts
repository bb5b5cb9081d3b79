// synchronizeSync() / toArraySync() run the CPU tasks that the stream's worker has not taken yet on the waiting
// thread (core/stream.cpp, CpuStream::drain): the results, their order, the errors and the cross-stream waits
// must be those of the worker running them.
import { add, full, matmul, synchronizeSync, tensor, withStream, Stream } from '../ts';
import * as moe from '../ts/moe';
import { native } from '../ts/native';
import { matmulRef } from './reference/matmul';
import { expectCode, randnArray, relL2, rng, SEED } from './helpers';

const probes = (): [number, number] => native.debugProbeCounts() as [number, number];

describe('CPU tasks run by the thread that waits for them', () => {
  it('a task queued just before a wait runs on the waiting thread (at least once in 200 tries)', () => {
    const [caller0, other0] = probes();
    for (let i = 0; i < 200; i++) {
      native.debugProbe();
      synchronizeSync('cpu');
    }
    const [caller1, other1] = probes();
    expect(caller1 - caller0 + other1 - other0).toBe(200);  // every probe ran, once
    expect(caller1 - caller0).toBeGreaterThan(0);
  });

  it('a chain of ops waited for after each op gives the reference values (seed ' + SEED + ')', () => {
    const N = 128;  // 64 KiB per operand: queued for the worker, not run inline by enqueue
    const host = randnArray(N * N, rng(SEED));
    const a = tensor(host, { shape: [N, N] });
    const ref = matmulRef(host, host, N, N, N);
    let x = full([1 << 15], 1);
    for (let i = 1; i <= 20; i++) {
      const c = matmul(a, a);
      expect(relL2(c.toArraySync() as Float32Array, ref)).toBeLessThan(1e-5);
      c.dispose();
      const y = add(x, x);
      x.dispose();
      x = y;
      const v = x.toArraySync() as Float32Array;
      expect([v[0], v[v.length - 1]]).toEqual([2 ** i, 2 ** i]);
    }
    x.dispose();
    a.dispose();
  });

  it('an error of a task run by the waiting thread is thrown there, once; the stream stays usable', () => {
    const n = 20000;  // 160 KiB of ids: queued for the worker
    const ids = Int32Array.from({ length: 2 * n }, (_, i) => i % 64);
    ids[n] = 64;
    const idt = tensor(ids, { shape: [n, 2] });
    for (let rep = 0; rep < 5; rep++) {
      const c = moe.expertCounts(idt, 64);
      expectCode(() => synchronizeSync('cpu'), 'ERR_LLMK_INDEX');
      expect(() => synchronizeSync('cpu')).not.toThrow();
      c.dispose();
      const x = full([1 << 15], 3), y = add(x, x);
      expect((y.toArraySync() as Float32Array)[7]).toBe(6);
      x.dispose();
      y.dispose();
    }
    idt.dispose();
  });

  it('a batch that waits for another stream, which waits for the start of the same batch, completes', () => {
    // Default stream: [fill x, wait for s, add]; s: [wait for the fill, add]. The waiting thread runs the
    // default stream's batch and must let s go on once the fill is done.
    for (let rep = 0; rep < 20; rep++) {
      const s = new Stream('cpu');
      const x = full([1 << 16], 1);
      const y = withStream(s, () => add(x, x));
      const z = add(y, y);
      const v = z.toArraySync() as Float32Array;
      expect(v.every((e) => e === 4)).toBe(true);
      for (const t of [x, y, z]) t.dispose();
    }
  });
});
