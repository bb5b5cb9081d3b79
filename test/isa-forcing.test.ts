// The per-ISA test loops (ops, quant.int8) and jest's per-ISA projects (jest.config.js) force a lesser kernel
// variant by environment variable. Jest gives each test file a copy of process.env that the addon's getenv never
// sees, so assigning process.env there left every "ISA generic / avx2" test running the best variant. setEnv
// (helpers.ts) reaches the addon; this checks it through the one variant name the addon reports
// (attention.cpuIsa(), read per call), and that each jest project runs the variant it forces.
import { attention } from '../ts';
import { setEnv } from './helpers';

describe('forcing a CPU kernel variant from a test', () => {
  it('runs on the variant its jest project forces (jest.config.js, test/setup/isa.ts)', () => {
    const forced = process.env.LLMK_TEST_FORCED_ISA;
    expect(forced).toBeDefined();
    if (forced === 'generic') expect(attention.cpuIsa()).toBe('generic');
    if (forced === 'avx2') expect(attention.cpuIsa()).not.toBe('avx512');  // avx2, or generic on a CPU without it
  });

  it('reaches the native kernels, and unsetting it restores the best variant', () => {
    const saved = process.env.LLMK_CPU_ATTN_ISA;
    try {
      setEnv('LLMK_CPU_ATTN_ISA', undefined);
      const best = attention.cpuIsa();
      setEnv('LLMK_CPU_ATTN_ISA', 'generic');
      expect(attention.cpuIsa()).toBe('generic');
      setEnv('LLMK_CPU_ATTN_ISA', undefined);
      expect(attention.cpuIsa()).toBe(best);
    } finally {
      setEnv('LLMK_CPU_ATTN_ISA', saved);
    }
  });

  it('rejects a name or value that is not a string', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { native } = require('../ts/native');
    expect(() => native.debugSetEnv(1, 'x')).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    expect(() => native.debugSetEnv('X', 2)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
  });
});
