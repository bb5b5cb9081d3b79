// The CPU kernel suites run once more per lesser instruction-set variant (AVX2, portable), forced through the
// addon by test/setup/isa-*.ts, so that `npm test` covers every variant the machine can run (a CPU without
// AVX-512 or AVX2 runs its best one again). ops.test.ts and quant.int8.test.ts loop over the variants themselves.
// `npx jest --selectProjects best` runs each suite once.
const ISA_VARS = ['LLMK_CPU_ATTN_ISA', 'LLMK_CPU_INT4_ISA', 'LLMK_CPU_MATMUL_ISA'];
for (const v of ISA_VARS) process.env[`LLMK_TEST_OUTER_${v}`] = process.env[v] ?? '';
const ISA_SUITES = ['**/isa-forcing.test.ts', '**/quant.test.ts', '**/quant.path.test.ts', '**/attention*.test.ts', '**/moe.experts.test.ts'];

const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json' }] },
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120000,  // a global option: ignored inside a project
  maxWorkers: 2,
  projects: [
    { ...base, displayName: 'best', testMatch: ['**/*.test.ts'], setupFiles: ['<rootDir>/test/setup/isa-outer.ts'] },
    { ...base, displayName: 'avx2', testMatch: ISA_SUITES, setupFiles: ['<rootDir>/test/setup/isa-avx2.ts'] },
    { ...base, displayName: 'generic', testMatch: ISA_SUITES, setupFiles: ['<rootDir>/test/setup/isa-generic.ts'] },
  ],
};
