// The CPU kernel suites on their AVX2 variants (the best where the CPU has no AVX2).
import { forceIsa } from './isa';

forceIsa('avx2');
