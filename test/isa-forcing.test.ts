// The per-ISA test loops (ops, quant.int8, ...) force a lesser kernel variant by environment variable. Jest gives
// each test file a copy of process.env that the addon's getenv never sees, so assigning process.env there left
// every "ISA generic / avx2" test running the best variant. setEnv (helpers.ts) reaches the addon; this checks it
// through the one variant name the addon reports (attention.cpuIsa(), read per call).
import { attention } from '../ts';
import { setEnv } from './helpers';

describe('forcing a CPU kernel variant from a test', () => {
  const saved = process.env.LLMK_CPU_ATTN_ISA;
  afterAll(() => setEnv('LLMK_CPU_ATTN_ISA', saved));

  it('reaches the native kernels, and unsetting it restores the best variant', () => {
    setEnv('LLMK_CPU_ATTN_ISA', undefined);
    const best = attention.cpuIsa();
    setEnv('LLMK_CPU_ATTN_ISA', 'generic');
    expect(attention.cpuIsa()).toBe('generic');
    setEnv('LLMK_CPU_ATTN_ISA', undefined);
    expect(attention.cpuIsa()).toBe(best);
  });

  it('rejects a name or value that is not a string', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { native } = require('../ts/native');
    expect(() => native.debugSetEnv(1, 'x')).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    expect(() => native.debugSetEnv('X', 2)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
  });
});
