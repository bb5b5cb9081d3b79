// 100k create/dispose cycles: allocator counters return to where they were and RSS stays flat.
import { add, full, memoryStats, tensor, synchronizeSync } from '../ts';

describe('memory', () => {
  it('100k create/dispose cycles leave no live blocks and flat RSS', () => {
    const before = memoryStats('cpu');
    const data = new Float32Array(256);
    const cycle = (n: number) => {
      for (let i = 0; i < n; i++) {
        const a = tensor(data);
        const b = full([256], 1);
        const c = add(a, b);
        a.dispose(); b.dispose(); c.dispose();
      }
      synchronizeSync('cpu');
    };
    cycle(10000); // warm-up: pools, JIT, V8 heap growth
    const rss0 = process.memoryUsage().rss;
    for (let k = 0; k < 9; k++) cycle(10000);
    const rss1 = process.memoryUsage().rss;
    const after = memoryStats('cpu');
    expect(after.liveBlocks).toBe(before.liveBlocks);
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.totalAllocs - before.totalAllocs).toBe(300000);
    expect(rss1 - rss0).toBeLessThan(64 * 1024 * 1024);
  });
  it('the finalizer frees tensors that were never disposed', async () => {
    const gc = (global as { gc?: () => void }).gc;
    if (!gc) return; // run with --expose-gc to check the finalizer path too
    const before = memoryStats('cpu').liveBlocks;
    for (let i = 0; i < 1000; i++) full([16], 1);
    synchronizeSync('cpu');
    for (let i = 0; i < 10; i++) { gc(); await new Promise((r) => setImmediate(r)); }
    expect(memoryStats('cpu').liveBlocks).toBeLessThan(before + 1000);
  });
});
