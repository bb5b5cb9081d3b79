/**
 * llm-kernels: GPU kernels for LLM inference in Node.js (CUDA and CPU backends).
 * @packageDocumentation
 */
export { LlmkError, type LlmkErrorCode } from './errors';
export { DTYPES, type DType, type TypedArray } from './dtype';
export { backends, devices, type DeviceSpec, type DeviceName, type BackendInfo } from './device';
export { Tensor, tensor, empty, zeros, full, rand, randn, type CreateOptions, type RandomOptions } from './tensor';
export { Stream, withStream, synchronize, synchronizeSync } from './stream';
export { add, matmul } from './ops';
export { deviceTime, memoryStats } from './timing';
export * as moe from './moe';
export * as attention from './attention';
export * as quant from './quant';
export * as dist from './dist';
