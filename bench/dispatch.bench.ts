// Op dispatch overhead: a 1-element add, from the JS call to the enqueue returning, and to completion.
import { add, full, Stream, synchronizeSync, tensor, withStream, type DeviceName } from '../ts';
import type { Result, Suite } from './harness';
import { jsLatency } from './harness';

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = {
  name: 'dispatch',
  cases(device) {
    const a = full([1], 1, { device }), b = full([1], 2, { device });
    return [{ name: 'add 1 element (device time)', run: () => add(a, b).dispose(), bytes: 12, graph: true,
      teardown: () => { a.dispose(); b.dispose(); } }];
  },
  async extra(device) {
    const a = tensor(new Float32Array([1]), { device }), b = tensor(new Float32Array([2]), { device });
    // JS call → enqueue returned: many calls back to back, the queue drained outside the timed loop.
    const samples: number[] = [];
    for (let rep = 0; rep < 21; rep++) {
      const n = 20000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) add(a, b).dispose();
      const t1 = process.hrtime.bigint();
      synchronizeSync(device);
      samples.push(Number(t1 - t0) / n / 1000);
    }
    samples.sort((x, y) => x - y);
    const enqueueUs = samples[Math.floor(samples.length / 2)];
    // The stream contract's cost: an op whose input was last used on another stream queues a wait for it.
    const s = new Stream(device);
    const cross: number[] = [];
    for (let rep = 0; rep < 21; rep++) {
      const n = 5000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const c = withStream(s, () => add(a, b));
        add(c, b).dispose();
        c.dispose();
      }
      const t1 = process.hrtime.bigint();
      synchronizeSync(device);
      s.synchronizeSync();
      cross.push(Number(t1 - t0) / n / 1000);
    }
    cross.sort((x, y) => x - y);
    const crossUs = cross[Math.floor(cross.length / 2)];
    const done = await jsLatency('add to completion', device, () => add(a, b).dispose());
    const roundTrip = await jsLatency('add + toArraySync', device, () => { const c = add(a, b); c.toArraySync(); c.dispose(); });
    a.dispose(); b.dispose();
    return [
      { suite: 'dispatch', case: 'add 1 element: JS call to enqueue-return (median)', device, ms: enqueueUs / 1000, note: 'goal < 2 us' },
      { suite: 'dispatch', case: 'add on stream s, then add of its result on the default stream (pair, median)', device, ms: crossUs / 1000,
        note: 'includes the cross-stream wait' },
      { suite: 'dispatch', case: 'add 1 element: to completion (tinybench p50)', device, ms: done.medianUs / 1000 },
      { suite: 'dispatch', case: 'add 1 element + toArraySync (tinybench p50)', device, ms: roundTrip.medianUs / 1000 },
    ];
  },
};
export default suite;
