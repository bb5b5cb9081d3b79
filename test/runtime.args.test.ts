// Hostile arguments to the runtime entry points give coded LlmkErrors, never a TypeError or a silent
// misreading: Symbols in shapes and options, iteration counts past 2^31, unknown device names.
import { deviceTime, empty, full, memoryStats, rand, randn, tensor, zeros, LlmkError } from '../ts';
import { expectCode } from './helpers';

const S = Symbol('s') as unknown as number;

describe('Symbol arguments', () => {
  it.each([
    ['empty', () => empty([2, S])],
    ['zeros', () => zeros([S])],
    ['full', () => full([S, 2], 1)],
    ['rand', () => rand([S])],
    ['randn', () => randn([1, S])],
  ])('%s with a Symbol in the shape is ERR_LLMK_SHAPE', (_name, fn) => expectCode(fn, 'ERR_LLMK_SHAPE'));

  it('tensor() with a Symbol dtype is ERR_LLMK_DTYPE', () => {
    expectCode(() => tensor([1, 2], { dtype: S as never }), 'ERR_LLMK_DTYPE');
  });

  it('reshape() and narrow() with Symbols are coded errors', () => {
    const t = zeros([4, 2]);
    expectCode(() => t.reshape([S, 2]), 'ERR_LLMK_SHAPE');
    expectCode(() => t.narrow(0, S, 1), 'ERR_LLMK_INDEX');
    expectCode(() => t.narrow(0, 0, S), 'ERR_LLMK_INDEX');
    t.dispose();
  });
});

describe('deviceTime iteration count', () => {
  it.each([2 ** 32 + 3, 2 ** 31, 0, -1, 1.5, Number.NaN])('iters = %p is ERR_LLMK_ARG and runs nothing', (iters) => {
    let calls = 0;
    expectCode(() => deviceTime('cpu', iters, () => { calls++; }), 'ERR_LLMK_ARG');
    expect(calls).toBe(0);
  });
  it('runs exactly iters calls', () => {
    let calls = 0;
    const ms = deviceTime('cpu', 3, () => { calls++; });
    expect(calls).toBe(3);
    expect(ms).toBeGreaterThanOrEqual(0);
  });
});

describe('memoryStats device', () => {
  it.each(['gpu', 'CPU', 'cuda:x', ''])('memoryStats(%p) is ERR_LLMK_DEVICE', (d) => {
    expectCode(() => memoryStats(d as never), 'ERR_LLMK_DEVICE');
  });
  it('a Symbol is ERR_LLMK_DEVICE', () => expectCode(() => memoryStats(S as never), 'ERR_LLMK_DEVICE'));
  it('cpu and cuda give counters', () => {
    for (const d of ['cpu', 'cuda', 'cuda:0'] as const) {
      const s = memoryStats(d);
      expect(s.liveBytes).toBeGreaterThanOrEqual(0);
      expect(s.liveBlocks).toBeGreaterThanOrEqual(0);
    }
    expect(() => memoryStats()).not.toThrow(LlmkError);
  });
});
