// 100k create/dispose cycles: allocator counters return to where they were and RSS stays flat.
import { spawnSync } from 'child_process';
import * as path from 'path';
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
  it('a long synchronous create/dispose loop retains no JS heap (one pending microtask, not one per tensor)', () => {
    const lib = path.join(__dirname, '..', 'lib', 'index.js');
    const script = `
      const l = require(${JSON.stringify(lib)});
      const data = new Float32Array(256);
      const cycle = (n) => { for (let i = 0; i < n; i++) { const a = l.tensor(data); const b = l.full([256], 1); const c = l.add(a, b); a.dispose(); b.dispose(); c.dispose(); } };
      cycle(20000); global.gc();
      const h0 = process.memoryUsage().heapUsed;
      cycle(100000); global.gc();
      console.log(JSON.stringify({ perCycle: (process.memoryUsage().heapUsed - h0) / 100000 }));`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.perCycle).toBeLessThan(8);
  });
  it('the finalizer frees tensors that were never disposed, and LLMK_DEBUG_LEAKS reports them', () => {
    const lib = path.join(__dirname, '..', 'lib', 'index.js');
    const script = `
      const l = require(${JSON.stringify(lib)});
      const before = l.memoryStats('cpu').liveBlocks;
      (() => { for (let i = 0; i < 200; i++) l.full([16], 1); })();
      l.synchronizeSync('cpu');
      const leaked = l.memoryStats('cpu').liveBlocks - before;
      (async () => {
        for (let i = 0; i < 20; i++) { global.gc(); await new Promise((r) => setTimeout(r, 5)); }
        console.log(JSON.stringify({ leaked, after: l.memoryStats('cpu').liveBlocks - before }));
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { env: { ...process.env, LLMK_DEBUG_LEAKS: '1' }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.leaked).toBe(200);
    expect(out.after).toBeLessThan(200);
    expect(r.stderr).toMatch(/llm-kernels: leaked tensor float32 \[16\] on cpu \(64 bytes\) was not disposed/);
  });
});
