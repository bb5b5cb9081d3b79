// Every error code of docs/architecture.md §1 (Errors) that the runtime can raise, provoked on purpose.
import { add, empty, full, LlmkError, matmul, rand, tensor, zeros, backends } from '../ts';
import { describeDevices, expectCode } from './helpers';

describe('LlmkError', () => {
  it('is an Error with a code', () => {
    const e = new LlmkError('x', 'ERR_LLMK_ARG');
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('ERR_LLMK_ARG');
  });
  it('ERR_LLMK_UNAVAILABLE / ERR_LLMK_DEVICE for devices that cannot be used', () => {
    expectCode(() => zeros([2], { device: 'tpu' as never }), 'ERR_LLMK_DEVICE');
    if (!backends().cuda.available) {
      expectCode(() => zeros([2], { device: 'cuda' }), 'ERR_LLMK_UNAVAILABLE');
      try { zeros([2], { device: 'cuda:0' }); } catch (e) { expect((e as Error).message).toMatch(backends().cuda.reason!); }
    } else {
      expectCode(() => zeros([2], { device: `cuda:${backends().cuda.deviceCount}` }), 'ERR_LLMK_DEVICE');
    }
  });
});

describeDevices('errors', (device) => {
  it('ERR_LLMK_SHAPE: non-integer, negative and overflowing sizes, mismatched data', () => {
    expectCode(() => zeros([2.5], { device }), 'ERR_LLMK_SHAPE');
    expectCode(() => zeros([-1, 3], { device }), 'ERR_LLMK_SHAPE');
    expectCode(() => empty([2 ** 31, 2 ** 31, 4], { device }), 'ERR_LLMK_SHAPE');
    expectCode(() => tensor(new Float32Array(5), { shape: [2, 3], device }), 'ERR_LLMK_SHAPE');
    expectCode(() => tensor([[1, 2], [3]], { device }), 'ERR_LLMK_SHAPE');
    using a = zeros([2, 3], { device }), b = zeros([3, 2], { device });
    expectCode(() => add(a, b), 'ERR_LLMK_SHAPE');
    expectCode(() => matmul(a, a), 'ERR_LLMK_SHAPE');
    expectCode(() => a.reshape([7]), 'ERR_LLMK_SHAPE');
  });
  it('ERR_LLMK_DTYPE: wrong and mismatched dtypes', () => {
    using a = zeros([2, 2], { device }), b = zeros([2, 2], { device, dtype: 'float16' }), i = zeros([2, 2], { device, dtype: 'int32' });
    expectCode(() => add(a, b), 'ERR_LLMK_DTYPE');
    expectCode(() => matmul(i, i), 'ERR_LLMK_DTYPE');
    expectCode(() => rand([2], { device, dtype: 'int32' }), 'ERR_LLMK_DTYPE');
    expectCode(() => zeros([2], { device, dtype: 'float64' as never }), 'ERR_LLMK_DTYPE');
    expectCode(() => tensor(new Int32Array(2), { dtype: 'float32', device }), 'ERR_LLMK_DTYPE');
  });
  it('ERR_LLMK_DEVICE: tensors on different devices', () => {
    if (device === 'cpu') return; // needs a second device kind
    using a = zeros([2], { device }), b = zeros([2], { device: 'cpu' });
    expectCode(() => add(a, b), 'ERR_LLMK_DEVICE');
  });
  it('ERR_LLMK_DISPOSED: use after dispose; double dispose is a no-op', async () => {
    const a = full([4], 1, { device });
    a.dispose();
    a.dispose();
    expect(a.disposed).toBe(true);
    expectCode(() => a.toArraySync(), 'ERR_LLMK_DISPOSED');
    expectCode(() => add(a, a), 'ERR_LLMK_DISPOSED');
    expectCode(() => a.reshape([2, 2]), 'ERR_LLMK_DISPOSED');
    await expect(a.toArray()).rejects.toMatchObject({ code: 'ERR_LLMK_DISPOSED' });
  });
  it('ERR_LLMK_INDEX: narrow out of range', () => {
    using a = zeros([4, 2], { device });
    expectCode(() => a.narrow(0, 3, 2), 'ERR_LLMK_INDEX');
    expectCode(() => a.narrow(0, -1, 1), 'ERR_LLMK_INDEX');
  });
  it('ERR_LLMK_ARG: values that are not tensors, bad seeds', () => {
    expectCode(() => add({} as never, {} as never), 'ERR_LLMK_ARG');
    expectCode(() => rand([2], { device, seed: -1 }), 'ERR_LLMK_ARG');
    expectCode(() => tensor('abc' as never), 'ERR_LLMK_ARG');
    // plain numbers that an integer dtype cannot hold are refused, not wrapped
    for (const [v, dtype] of [[NaN, 'int64'], [Infinity, 'int32'], [2 ** 31, 'int32'], [-129, 'int8'], [256, 'uint8'], [-1, 'uint8'], [2 ** 63, 'int64']] as const)
      expectCode(() => tensor([1, v], { dtype, device }), 'ERR_LLMK_ARG');
  });
  it('ERR_LLMK_OOM: an allocation the device cannot hold', () => {
    // 2^54 bytes passes the element-count check but no allocator can satisfy it.
    expectCode(() => empty([2 ** 26, 2 ** 26], { device, dtype: 'int32' }), 'ERR_LLMK_OOM');
  });
  it('the native layer re-checks contracts that TypeScript already checked', () => {
    // Calls the binding directly with inputs the TS layer would refuse.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { native } = require('../ts/native');
    using a = zeros([2, 3], { device }), b = zeros([4], { device });
    expectCode(() => native.add(a.handle, b.handle), 'ERR_LLMK_SHAPE');
    expectCode(() => native.matmul(a.handle, a.handle), 'ERR_LLMK_SHAPE');
    expectCode(() => native.add(a.handle, {}), 'ERR_LLMK_ARG');
    expectCode(() => native.empty([1.5], 0, 0, 0), 'ERR_LLMK_SHAPE');
    expectCode(() => native.empty([2], 99, 0, 0), 'ERR_LLMK_DTYPE');
  });
});
