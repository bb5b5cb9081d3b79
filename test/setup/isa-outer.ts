// The CPU kernels as `npx jest` was run (the best the CPU has, unless LLMK_CPU_*_ISA asked for less).
import { forceIsa } from './isa';

forceIsa(undefined);
