// Tensor handles and finalizer bookkeeping over long runs: a handle's generation never wraps to an
// invalid or a stale-matching handle, and a disposed tensor leaves nothing behind on the JS heap.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { full, memoryStats, zeros } from '../ts';
import { native } from '../ts/native';
import { expectCode } from './helpers';

const MAX_GEN = 2 ** 28 - 1;

describe('tensor handle generations', () => {
  it('a slot reused up to the last generation is retired: handles stay valid, distinct, and freed', () => {
    const before = memoryStats('cpu').liveBytes;
    zeros([16]).dispose();                                 // its slot is the next one reused
    expect(native.debugAgeFreeSlot(MAX_GEN - 3)).toBe(true);
    const handles: number[] = [];
    for (let i = 0; i < 8; i++) {                          // crosses the last generation
      const t = full([16], i);
      const h = t.handle;
      expect(handles).not.toContain(h);
      handles.push(h);
      expect(Array.from(t.toArraySync() as Float32Array)).toEqual(new Array(16).fill(i));
      t.dispose();
      expectCode(() => native.toHostSync(h, false), 'ERR_LLMK_DISPOSED');
    }
    for (const h of handles) expectCode(() => native.toHostSync(h, false), 'ERR_LLMK_DISPOSED');
    expect(memoryStats('cpu').liveBytes).toBe(before);
  });

  it('the test hook refuses generations out of range', () => {
    zeros([1]).dispose();
    expect(native.debugAgeFreeSlot(0)).toBe(false);
    expect(native.debugAgeFreeSlot(MAX_GEN + 1)).toBe(false);
    expect(native.debugAgeFreeSlot(1.5)).toBe(false);
  });
});

describe('disposed tensors on the JS heap', () => {
  const lib = path.join(__dirname, '..', 'lib', 'index.js');
  it('a synchronous create/dispose loop runs in a small heap', () => {
    // 400k tensors retained at ~100 B each would need ~40 MB; the heap has 16 MB.
    const code = `
      const l = require(${JSON.stringify(lib)});
      const a = l.zeros([1]);
      for (let i = 0; i < 400000; i++) l.add(a, a).dispose();
      const kept = [];
      for (let i = 0; i < 3000; i++) kept.push(l.zeros([1]));   // survive a flush, then disposed
      for (const t of kept) t.dispose();
      console.log('ok');
    `;
    const r = spawnSync(process.execPath, ['--max-old-space-size=16', '-e', code], { encoding: 'utf8', timeout: 60000 });
    expect({ status: r.status, out: r.stdout.trim() }).toEqual({ status: 0, out: 'ok' });
  });
});
