// Which CPU kernel variant a test file runs (jest.config.js: the CPU kernel suites run once per variant). Each
// file sets all three variables through the addon before its tests: a worker runs files of every project, and
// a variant forced by the file before would otherwise stay in force.
import { setEnv } from '../helpers';

const VARS = ['LLMK_CPU_ATTN_ISA', 'LLMK_CPU_INT4_ISA', 'LLMK_CPU_MATMUL_ISA'] as const;

/** Forces `isa` ('avx2' or 'generic') on every CPU kernel family, or, with undefined, what `npx jest` was run with. */
export function forceIsa(isa: string | undefined): void {
  process.env.LLMK_TEST_FORCED_ISA = isa ?? '';  // for test/isa-forcing.test.ts
  for (const v of VARS) setEnv(v, isa ?? (process.env[`LLMK_TEST_OUTER_${v}`] || undefined));
}
