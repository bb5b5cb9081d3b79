// ES module entry: re-exports the CommonJS build (one addon instance for both import and require).
import { createRequire } from 'node:module';
const lib = createRequire(import.meta.url)('../lib/index.js');
export default lib;
export const {
  LlmkError, DTYPES, backends, devices, Tensor, tensor, empty, zeros, full, rand, randn,
  Stream, withStream, synchronize, synchronizeSync, add, matmul, deviceTime, memoryStats,
  moe, attention, quant, dist,
} = lib;
