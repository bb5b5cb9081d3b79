// Plan once, run many (issue 12 item 6): the per-call cost of attention.blockSparse on the JS thread for a
// large layout, with the layout's native plan reused (now) against a plan made on every call (what every
// call did before: the O(nnz) check and the copy of rowPtr/colIdx). The mask (causal, window 0) keeps one
// key block per row, so the kernel is small and the layout's size dominates. Interleaved rounds, medians.
import { attention, synchronizeSync, tensor, type DeviceName } from '../ts';
import { native } from '../ts/native';
import { adopt } from '../ts/tensor';
import { parseDevice } from '../ts/device';
import type { Result, Suite } from './harness';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = {
  name: 'layout-plan',
  cases: () => [],
  async extra(device) {
    if (device !== 'cpu') return [];
    const N = 32768, D = 8;
    const L = attention.BlockLayout.dense({ seqLen: N, blockSize: 64 });  // 512 x 512 = 262144 blocks (1 MiB of indices)
    const q = tensor(new Float32Array(N * D).fill(0.5), { device, shape: [1, N, 1, D] });
    const opts = { causal: true, window: { left: 0, right: 0 } };
    const d = parseDevice(device);
    const sizes = { heads: 1, blockQ: 64, blockK: 64, qLen: N, kLen: N };
    const plan = native.attention.plan(L.rowPtr, L.colIdx, sizes, d.kind, d.index);
    const run = (p: unknown) => native.attention.blockSparse(q.handle, q.handle, q.handle, p, opts).forEach(
      (r: unknown) => r && adopt(r as never, device).dispose());
    // JS time of one call (enqueue returned), the kernel drained outside the timed region.
    const jsUs = (fn: () => void, calls = 10): number => {
      const s: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t0 = process.hrtime.bigint();
        fn();
        s.push(Number(process.hrtime.bigint() - t0) / 1000);
        synchronizeSync(device);
      }
      return median(s);
    };
    const reused = () => run(plan);
    const perCall = () => run(native.attention.plan(L.rowPtr, L.colIdx, sizes, d.kind, d.index));
    const publicApi = () => attention.blockSparse(q, q, q, L, opts).dispose();
    publicApi();
    const a: number[] = [], b: number[] = [], c: number[] = [], ratio: number[] = [];
    for (let round = 0; round < 15; round++) {
      const x = jsUs(reused), y = jsUs(perCall), z = jsUs(publicApi);
      a.push(x); b.push(y); c.push(z); ratio.push(y / x);
    }
    q.dispose();
    const isa = attention.cpuIsa();
    const what = `blockSparse, dense layout ${N}x${N} tokens (262144 blocks of 64x64), causal + window 0, D ${D}: JS time per call (median)`;
    return [
      { suite: 'layout-plan', case: `${what}, plan reused (now)`, device, ms: median(a) / 1000, note: `ISA ${isa}` },
      { suite: 'layout-plan', case: `${what}, plan made per call (before: check + copy each call)`, device, ms: median(b) / 1000,
        note: `median of per-round ratios before/now ${median(ratio).toFixed(1)}x (15 interleaved rounds); ISA ${isa}` },
      { suite: 'layout-plan', case: `${what}, public attention.blockSparse (plan cached on the layout)`, device, ms: median(c) / 1000,
        note: `ISA ${isa}` },
    ];
  },
};
export default suite;
