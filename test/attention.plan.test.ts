// Plan once, run many (issue 12 item 6): a BlockLayout is checked and copied to a device on its first use
// there; later blockSparse calls reuse that native plan. The per-call contracts (q/k/v against the layout)
// are still checked on every call, hostile changes to the layout's arrays after planning never reach a
// kernel, and plans are freed with their layout.
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as attention from '../ts/attention';
import { BlockLayout } from '../ts/attention';
import { memoryStats } from '../ts/timing';
import { tensor } from '../ts/tensor';
import { expectCode, randnArray, relL2, rng, SEED } from './helpers';
import { attentionRef } from './reference/attention';

const mk = (shape: number[], r = rng(SEED)) => tensor(randnArray(shape.reduce((a, b) => a * b, 1), r), { shape });

describe('BlockLayout plans (cpu)', () => {
  test('a planned layout used with mismatched q/k shapes still fails with a coded, named error', () => {
    const L = BlockLayout.causal({ seqLen: 128, blockSize: 64 });
    const q = mk([1, 128, 2, 64]), k = mk([1, 128, 1, 64]);
    attention.blockSparse(q, k, k, L).dispose();  // plans L on the CPU
    const q64 = mk([1, 64, 2, 64]), k192 = mk([1, 192, 1, 64]);
    expectCode(() => attention.blockSparse(q64, k, k, L), 'ERR_LLMK_SHAPE');
    expectCode(() => attention.blockSparse(q, k192, k192, L), 'ERR_LLMK_SHAPE');
    let msg = '';
    try { attention.blockSparse(q64, k, k, L); } catch (e) { msg = (e as Error).message; }
    expect(msg).toBe('attention.blockSparse: the layout is for qLen 128, kLen 128, but q has 64 and k 128 tokens');
    const perHead = BlockLayout.dense({ seqLen: 128, blockSize: 64, heads: 3 });
    attention.blockSparse(mk([1, 128, 3, 64]), k, k, perHead).dispose();
    try { attention.blockSparse(q, k, k, perHead); } catch (e) { msg = (e as Error).message; }
    expect(msg).toBe('attention.blockSparse: the per-head layout has 3 heads, q has 2');
    attention.blockSparse(q, k, k, L).dispose();  // and the plan still works for the right shapes
    for (const t of [q, k, q64, k192]) t.dispose();
  });

  test('one plan per layout: later calls allocate only their outputs and match the reference', async () => {
    const L = BlockLayout.slidingWindow({ seqLen: 256, blockSize: 64, window: 100 });
    const r = rng(SEED + 5);
    const qd = randnArray(256 * 2 * 64, r), kd = randnArray(256 * 64, r), vd = randnArray(256 * 64, r);
    const q = tensor(qd, { shape: [1, 256, 2, 64] }), k = tensor(kd, { shape: [1, 256, 1, 64] }), v = tensor(vd, { shape: [1, 256, 1, 64] });
    const first = attention.blockSparse(q, k, v, L, { causal: true });
    const before = memoryStats('cpu').totalAllocs;
    const outs = Array.from({ length: 10 }, () => attention.blockSparse(q, k, v, L, { causal: true }));
    expect(memoryStats('cpu').totalAllocs - before).toBe(10);  // the outputs; no layout copies
    const ref = attentionRef(qd, kd, vd, 1, 256, 256, 2, 1, 64, L, { causal: true });
    for (const o of [first, ...outs]) {
      expect(relL2(await o.out.toArray() as Float32Array, ref.out)).toBeLessThan(1e-5);
      o.dispose();
    }
    for (const t of [q, k, v]) t.dispose();
  });

  test('the plan holds its own checked arrays: changing the layout arrays afterwards cannot reach the kernel', async () => {
    const L = BlockLayout.dense({ seqLen: 128, blockSize: 64 });
    const q = mk([1, 128, 1, 64], rng(SEED + 9));
    const a = attention.blockSparse(q, q, q, L);
    const want = await a.out.toArray() as Float32Array;
    a.dispose();
    L.colIdx[1] = 1e6;  // out of range: a kernel reading it would go out of bounds
    L.rowPtr[1] = -5;
    const b = attention.blockSparse(q, q, q, L);
    expect(Array.from(await b.out.toArray() as Float32Array)).toEqual(Array.from(want));
    b.dispose();
    expectCode(() => attention.checkLayoutNative(L), 'ERR_LLMK_INDEX');  // a new check sees the change
    q.dispose();
  });

  test('blockSparse and varlen results have dispose() and [Symbol.dispose]', () => {
    const q = mk([1, 64, 1, 8]), q3 = mk([64, 1, 8]);
    const cu = tensor(Int32Array.of(0, 64));
    for (const how of ['dispose', 'symbol'] as const) {
      for (const res of [attention.blockSparse(q, q, q, BlockLayout.dense({ seqLen: 64 }), { returnLse: true }),
        attention.varlen(q3, q3, q3, { cuSeqlensQ: cu, cuSeqlensK: cu, returnLse: true })]) {
        if (how === 'dispose') res.dispose(); else res[Symbol.dispose]();
        expect(res.out.disposed && res.lse!.disposed).toBe(true);
      }
    }
    for (const t of [q, q3, cu]) t.dispose();
  });

  test('plans are freed with their layouts (memoryStats back to the baseline after gc), results with dispose()', () => {
    const lib = path.join(__dirname, '..', 'lib');
    const script = `
      const l = require(${JSON.stringify(lib)});
      const live = () => l.memoryStats('cpu').liveBytes;
      const settle = async () => { for (let i = 0; i < 10; i++) { global.gc(); await new Promise((r) => setTimeout(r, 5)); } };
      (async () => {
        const q = l.tensor(new Float32Array(512 * 8), { shape: [1, 512, 1, 8] });
        await settle();
        const base = live();
        const kept = l.attention.BlockLayout.causal({ seqLen: 512, blockSize: 64 });
        for (let i = 0; i < 300; i++) l.attention.blockSparse(q, q, q, kept, { causal: true }).dispose();
        l.synchronizeSync('cpu');
        const reused = live() - base;  // one plan: (9 + 36) int32
        const churn = () => {  // a function of its own: no layout stays in the suspended async frame below
          for (let i = 0; i < 300; i++) l.attention.blockSparse(q, q, q, l.attention.BlockLayout.dense({ seqLen: 512, blockSize: 64 })).dispose();
        };
        churn();
        l.synchronizeSync('cpu');
        const peak = live() - base;
        await settle();
        const after = live() - base;
        l.attention.blockSparse(q, q, q, kept, { causal: true }).dispose();  // keeps \`kept\` alive until here
        console.log(JSON.stringify({ reused, peak, after }));
        q.dispose();
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.reused).toBe((9 + 36) * 4);
    expect(out.peak).toBeGreaterThanOrEqual(out.reused);
    expect(out.after).toBe((9 + 36) * 4);  // only the plan of the layout still referenced
  });
});
