// The argument vocabulary of the native bindings (native/src/napi/common.h): integers are never
// truncated or wrapped on their way in, and messages are never cut short. These call the native
// entry points directly, below the TypeScript checks, as any binding bug would be reached.
import { add, dist, zeros } from '../ts';
import { native } from '../ts/native';
import { expectCode } from './helpers';

describe('native argument vocabulary', () => {
  it('refuses integers that do not fit instead of wrapping them (2^32 is not rank 0)', () => {
    const id = dist.uniqueId({ backend: 'local' });
    for (const rank of [2 ** 32, 2 ** 32 + 0.5, 0.5, -(2 ** 32), 1e300, NaN]) {
      expectCode(() => native.dist.initLocal(id, rank, 1, 1000), 'ERR_LLMK_ARG');
    }
    expect(() => native.dist.initLocal(id, 2 ** 32, 1, 1000)).toThrow(/dist\.init: rank must be an integer in \[-2147483648, 2147483647\], got 4294967296/);
    expectCode(() => native.dist.initLocal(id, 0, 2 ** 32 + 1, 1000), 'ERR_LLMK_ARG');
  });

  it('names the argument and what it got when a number is missing', () => {
    const id = dist.uniqueId({ backend: 'local' });
    expect(() => native.dist.initLocal(id, 0, 1, 'soon')).toThrow(/dist\.init: timeoutMs must be a number, got a string/);
    expect(() => native.dist.initLocal(new Float32Array(4), 0, 1, 1000)).toThrow(/dist\.init: uniqueId must be a Uint8Array/);
  });

  it('keeps long error messages whole (no 512-byte cut)', () => {
    const shape = Array.from({ length: 120 }, () => 1);
    using a = zeros(shape), b = zeros([...shape.slice(1), 2]);
    let msg = '';
    try { add(a, b); } catch (e) { msg = (e as Error).message; }
    expect(msg.length).toBeGreaterThan(600);
    expect(msg).toMatch(/, 2\]\)$/);  // the second shape, to its end
  });
});
