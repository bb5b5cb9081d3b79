// BlockLayout builders and validation (device-independent), and the native re-validation of BSR arrays.
import { BlockLayout } from '../ts/attention';
import * as attention from '../ts/attention';
import { expectCode } from './helpers';

function grid(l: BlockLayout, head = 0): string[] {
  return l.toBlockMask(head).map((r) => r.map((x) => (x ? '#' : '.')).join(''));
}

describe('BlockLayout builders', () => {
  test('dense: every block, tails counted, density 1', () => {
    const l = BlockLayout.dense({ qLen: 130, kLen: 200, blockSize: 64 });
    expect([l.nQB, l.nKB]).toEqual([3, 4]);
    expect(l.nnz).toBe(12);
    expect(l.density).toBe(1);
    expect(Array.from(l.rowPtr)).toEqual([0, 4, 8, 12]);
    expect(l.perHead).toBe(false);
    expect(l.toString()).toContain('####');
  });

  test('causal: lower triangle; bottom-right aligned when kLen > qLen', () => {
    expect(grid(BlockLayout.causal({ seqLen: 256, blockSize: 64 }))).toEqual(['#...', '##..', '###.', '####']);
    // 64 queries against 256 keys (KV cache): the one query block sees every key block.
    expect(grid(BlockLayout.causal({ qLen: 64, kLen: 256, blockSize: 64 }))).toEqual(['####']);
    // qLen > kLen: the first query block sees nothing (aligned diagonal is negative there)
    expect(grid(BlockLayout.causal({ qLen: 192, kLen: 128, blockSize: 64 }))).toEqual(['..', '#.', '##']);
    const l = BlockLayout.causal({ seqLen: 256, blockQ: 128, blockK: 64 });
    expect(grid(l)).toEqual(['##..', '####']);
  });

  test('slidingWindow: the token band in blocks', () => {
    const l = BlockLayout.slidingWindow({ seqLen: 512, blockSize: 64, window: 100 });
    // block row r covers diagonal keys [64r, 64r+63]; the window reaches back 100 tokens → 2 or 3 blocks.
    expect(grid(l)).toEqual([
      '#.......', '##......', '###.....', '.###....', '..###...', '...###..', '....###.', '.....###',
    ]);
    const two = BlockLayout.slidingWindow({ seqLen: 256, blockSize: 64, window: { left: 0, right: 64 } });
    expect(grid(two)).toEqual(['##..', '.##.', '..##', '...#']);
    expectCode(() => BlockLayout.slidingWindow({ seqLen: 256, blockSize: 64, window: -1 }), 'ERR_LLMK_ARG');
  });

  test('globalLocal: global rows/columns, local band, seeded random blocks per head', () => {
    const l = BlockLayout.globalLocal({ seqLen: 512, blockSize: 64, globalBlocks: 1, localBlocks: 1 });
    expect(grid(l)).toEqual([
      '########', '###.....', '####....', '#.###...', '#..###..', '#...###.', '#....###', '#.....##',
    ]);
    const a = BlockLayout.globalLocal({ seqLen: 1024, blockSize: 64, globalBlocks: 1, localBlocks: 1, randomBlocks: 2, seed: 7, heads: 3 });
    const b = BlockLayout.globalLocal({ seqLen: 1024, blockSize: 64, globalBlocks: 1, localBlocks: 1, randomBlocks: 2, seed: 7, heads: 3 });
    const c = BlockLayout.globalLocal({ seqLen: 1024, blockSize: 64, globalBlocks: 1, localBlocks: 1, randomBlocks: 2, seed: 8, heads: 3 });
    expect(Array.from(a.colIdx)).toEqual(Array.from(b.colIdx));  // deterministic
    expect(Array.from(a.colIdx)).not.toEqual(Array.from(c.colIdx));  // seed matters
    expect(grid(a, 0)).not.toEqual(grid(a, 1));  // per head
    expect(a.perHead).toBe(true);
    expect(a.heads).toBe(3);
    // every row of 16 blocks that is not global gets exactly 2 random extra blocks beyond the band
    const base = BlockLayout.globalLocal({ seqLen: 1024, blockSize: 64, globalBlocks: 1, localBlocks: 1 });
    for (let r = 1; r < 16; r++) expect(a.row(r, 1).length).toBe(base.row(r).length + 2);
    const cz = BlockLayout.globalLocal({ seqLen: 512, blockSize: 64, globalBlocks: 1, localBlocks: 1, causal: true });
    expect(grid(cz)).toEqual(['#.......', '##......', '###.....', '#.##....', '#..##...', '#...##..', '#....##.', '#.....##']);
  });

  test('strided (Phi-3-small): local blocks + vertical stride, causal', () => {
    const l = BlockLayout.strided({ seqLen: 512, blockSize: 64, localBlocks: 2, stride: 3 });
    expect(grid(l)).toEqual([
      '#.......', '##......', '.##.....', '..##....', '..###...', '..#.##..', '..#..##.', '..#..###',
    ]);
    const ph = BlockLayout.strided({ seqLen: 512, blockSize: 64, localBlocks: 1, stride: 4, heads: 2, headSliding: true });
    expect(grid(ph, 0)[7]).toBe('...#...#');
    expect(grid(ph, 1)[7]).toBe('..#...##');  // (c + 2) % 4 == 0, plus the local block
    expectCode(() => BlockLayout.strided({ seqLen: 512, localBlocks: 1, stride: 0 }), 'ERR_LLMK_ARG');
  });

  test('document: block-diagonal from lengths', () => {
    const l = BlockLayout.document({ lengths: [128, 64, 192], blockSize: 64 });
    expect(grid(l)).toEqual(['##....', '##....', '..#...', '...###', '...###', '...###']);
    // a document boundary inside a block joins both documents' blocks
    const m = BlockLayout.document({ lengths: [100, 156], blockSize: 64 });
    expect(grid(m)).toEqual(['##..', '####', '.###', '.###']);
    expect(grid(BlockLayout.document({ lengths: [128, 128], blockSize: 64, causal: true }))).toEqual(['#...', '##..', '..#.', '..##']);
    expectCode(() => BlockLayout.document({ lengths: [128, 128], seqLen: 300 }), 'ERR_LLMK_SHAPE');
    expectCode(() => BlockLayout.document({ lengths: [0] }), 'ERR_LLMK_ARG');
  });

  test('fromBlockMask: shared and per head; shape checks', () => {
    const l = BlockLayout.fromBlockMask([[true, false], [1, 1]], { blockSize: 128 });
    expect([l.qLen, l.kLen, l.nnz]).toEqual([256, 256, 3]);
    expect(l.has(0, 1)).toBe(false);
    expect(l.has(1, 1)).toBe(true);
    const ph = BlockLayout.fromBlockMask([[[true, false]], [[false, true]]], { qLen: 64, kLen: 100 });
    expect(ph.perHead).toBe(true);
    expect(Array.from(ph.rowPtr)).toEqual([0, 1, 1, 2]);
    expect(Array.from(ph.colIdx)).toEqual([0, 1]);
    expectCode(() => BlockLayout.fromBlockMask([[true, false], [true]]), 'ERR_LLMK_SHAPE');
    expectCode(() => BlockLayout.fromBlockMask([[true, false]], { seqLen: 500 }), 'ERR_LLMK_SHAPE');
    expectCode(() => BlockLayout.fromBlockMask([]), 'ERR_LLMK_ARG');
  });

  test('fromBsr: valid arrays, per-head (nested and stacked), and every kind of bad index', () => {
    const l = BlockLayout.fromBsr({ rowPtr: [0, 1, 3], colIdx: [0, 0, 1], seqLen: 128, blockSize: 64 });
    expect(grid(l)).toEqual(['#.', '##']);
    const nested = BlockLayout.fromBsr({ rowPtr: [[0, 1, 1], [0, 0, 2]], colIdx: [[1], [0, 1]] as number[][], seqLen: 128, blockSize: 64 } as never);
    expect(nested.heads).toBe(2);
    expect(grid(nested, 0)).toEqual(['.#', '..']);
    expect(Array.from(nested.rowPtr)).toEqual([0, 1, 1, 1, 1, 3]);
    expect(grid(nested, 1)).toEqual(['..', '##']);
    const stacked = BlockLayout.fromBsr({ rowPtr: new Int32Array([0, 1, 2, 2, 2, 4]), colIdx: new Int32Array([1, 1, 0, 1]), seqLen: 128, blockSize: 64, heads: 2 });
    expect(grid(stacked, 1)).toEqual(['..', '##']);
    const bad = (rowPtr: number[], colIdx: number[]) => () => BlockLayout.fromBsr({ rowPtr, colIdx, seqLen: 128, blockSize: 64 });
    expectCode(bad([0, 1, 2], [0, 2]), 'ERR_LLMK_INDEX');   // column out of range
    expectCode(bad([0, 1, 2], [0, -1]), 'ERR_LLMK_INDEX');  // negative column
    expectCode(bad([0, 0, 2], [1, 0]), 'ERR_LLMK_INDEX');   // unsorted
    expectCode(bad([0, 0, 2], [1, 1]), 'ERR_LLMK_INDEX');   // duplicated
    expectCode(bad([0, 2, 1], [0, 1]), 'ERR_LLMK_INDEX');   // rowPtr decreasing
    expectCode(bad([0, 1, 1], [0, 1]), 'ERR_LLMK_INDEX');   // rowPtr does not end at nnz
    expectCode(bad([1, 1, 2], [0, 1]), 'ERR_LLMK_INDEX');   // rowPtr[0] != 0
    expectCode(bad([0, 1], [0]), 'ERR_LLMK_SHAPE');         // rowPtr length does not fit qLen
    expectCode(bad([0, 1, 2.5], [0, 1]), 'ERR_LLMK_INDEX'); // not an int32
    expectCode(() => BlockLayout.fromBsr({ rowPtr: [0, 1], colIdx: [0], seqLen: 64, blockSize: 32 }), 'ERR_LLMK_ARG');
    expectCode(() => BlockLayout.fromBsr({ rowPtr: [0, 1], colIdx: [0] } as never), 'ERR_LLMK_ARG');
  });

  test('union / intersect; mixing shared and per-head layouts; size mismatch', () => {
    const a = BlockLayout.causal({ seqLen: 256, blockSize: 64 });
    const b = BlockLayout.slidingWindow({ seqLen: 256, blockSize: 64, window: { left: 0, right: 64 } });
    expect(grid(BlockLayout.union(a, b))).toEqual(['##..', '###.', '####', '####']);
    expect(grid(BlockLayout.intersect(a, b))).toEqual(['#...', '.#..', '..#.', '...#']);
    const ph = BlockLayout.fromBlockMask([a.toBlockMask(), b.toBlockMask()]);
    const u = BlockLayout.union(ph, BlockLayout.dense({ seqLen: 256, blockSize: 64 }));
    expect(u.perHead).toBe(true);
    expect(u.heads).toBe(2);
    expect(u.density).toBe(1);
    expectCode(() => BlockLayout.union(a, BlockLayout.dense({ seqLen: 320, blockSize: 64 })), 'ERR_LLMK_SHAPE');
    expectCode(() => BlockLayout.intersect(), 'ERR_LLMK_ARG');
  });

  test('size options are checked', () => {
    expectCode(() => BlockLayout.dense({ seqLen: 128, blockSize: 96 }), 'ERR_LLMK_ARG');
    expectCode(() => BlockLayout.dense({ seqLen: 0 }), 'ERR_LLMK_ARG');
    expectCode(() => BlockLayout.dense({ blockSize: 64 }), 'ERR_LLMK_ARG');
    expectCode(() => BlockLayout.dense({ seqLen: 64, heads: 0 }), 'ERR_LLMK_ARG');
    expect(BlockLayout.dense({ seqLen: 64 }).blockQ).toBe(64);
  });

  test('toString draws the pattern and the header', () => {
    const s = BlockLayout.causal({ seqLen: 192, blockSize: 64 }).toString();
    expect(s.split('\n')).toEqual([
      'BlockLayout 3×3 blocks of 64×64 (qLen 192, kLen 192), shared by all heads, density 0.667', '#..', '##.', '###',
    ]);
  });

  test('BSR errors come from the native check and name the op, the index and the values', () => {
    const bad = (rowPtr: number[], colIdx: number[]) => () => BlockLayout.fromBsr({ rowPtr, colIdx, seqLen: 128, blockSize: 64 });
    expect(bad([0, 1, 2], [0, 2])).toThrow('BlockLayout.fromBsr: colIdx[1] = 2 is out of range [0, 2) (head 0, block row 1)');
    expect(bad([0, 0, 2], [1, 0])).toThrow('BlockLayout.fromBsr: column indices of head 0 block row 1 must be sorted and unique; colIdx[0] = 1, colIdx[1] = 0');
    expect(bad([0, 1], [0])).toThrow(/^BlockLayout.fromBsr: rowPtr has 2 entries; 1 head\(s\) x \(nQB \+ 1 = 3\) expected/);
    expect(() => BlockLayout.fromBsr({ rowPtr: new Int32Array([0, 1, 2, 1, 2, 4]), colIdx: new Int32Array([1, 1, 0, 1]), seqLen: 128, blockSize: 64, heads: 2 }))
      .toThrow("BlockLayout.fromBsr: head 1's rowPtr must start where head 0's ends (2), got 1");
  });

  test('the native layer re-validates BSR arrays (never trusts JS)', () => {
    const l = BlockLayout.causal({ seqLen: 256, blockSize: 64 });
    expect(attention.checkLayoutNative(l)).toBe(4);
  });
});

// Issue 11 item 7: 1 M-token layouts. Run in a child process, so a V8 crash (as before the fix: "invalid size
// error", exit 133) fails this test instead of the suite.
describe('long-context layouts (child process)', () => {
  const lib = require('path').join(__dirname, '..', 'lib', 'attention.js');
  function inChild(body: string): { status: number | null; out: Record<string, unknown> | null; stderr: string } {
    const script = `const { BlockLayout } = require(${JSON.stringify(lib)});
      const t0 = Date.now();
      const res = {};
      try { ${body} } catch (e) { res.code = e.code; res.message = e.message; }
      res.ms = Date.now() - t0;
      console.log(JSON.stringify(res));`;
    const r = require('child_process').spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
    const line = (r.stdout as string).trim().split('\n').pop();
    return { status: r.status, out: line ? JSON.parse(line) : null, stderr: String(r.stderr).slice(-500) };
  }
  test('causal, 2^20 tokens, blocks of 64: builds in typed arrays, nnz = n(n+1)/2', () => {
    const r = inChild(`const l = BlockLayout.causal({ seqLen: 2 ** 20, blockSize: 64 });
      res.nnz = l.nnz; res.row = Array.from(l.row(16383).slice(-2)); res.typed = l.colIdx instanceof Int32Array;`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toMatchObject({ nnz: (16384 * 16385) / 2, row: [16382, 16383], typed: true });
  });
  test('sliding window 4096 over 2^20 tokens: time ∝ kept blocks', () => {
    const r = inChild(`res.sw = BlockLayout.slidingWindow({ seqLen: 2 ** 20, blockSize: 64, window: 4096 }).nnz;`);
    expect(r.status).toBe(0);
    expect(r.out?.sw).toBe(16384 * 65 - (64 * 65) / 2);
  });
  test('dense over 2^20 tokens (2^28 blocks, 1 GiB of indices) → ERR_LLMK_SHAPE before allocating', () => {
    const r = inChild(`BlockLayout.dense({ seqLen: 2 ** 20, blockSize: 64 });`);
    expect(r.status).toBe(0);
    expect(r.out?.code).toBe('ERR_LLMK_SHAPE');
  });
});

test('slidingWindow({ window: null }) and other non-numbers → ERR_LLMK_ARG, not a TypeError', () => {
  for (const window of [null, 'x', true, { left: null, right: 0 }] as never[]) {
    expectCode(() => BlockLayout.slidingWindow({ seqLen: 256, window }), 'ERR_LLMK_ARG');
  }
});
