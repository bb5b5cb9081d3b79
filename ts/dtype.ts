import { check, describe } from './errors';

/** Element types. Their order matches native/src/core/dtype.h. */
export const DTYPES = ['float32', 'float16', 'bfloat16', 'int32', 'int64', 'int8', 'uint8'] as const;
export type DType = (typeof DTYPES)[number];

const IDS: Record<string, number> = Object.fromEntries(DTYPES.map((d, i) => [d, i]));
const SIZES: Record<DType, number> = { float32: 4, float16: 2, bfloat16: 2, int32: 4, int64: 8, int8: 1, uint8: 1 };

export function dtypeId(d: DType): number {
  const id = IDS[d as string];
  check(id !== undefined, 'ERR_LLMK_DTYPE', () => `unknown dtype ${describe(d)} (expected one of ${DTYPES.join(', ')})`);
  return id;
}
export function dtypeSize(d: DType): number { return SIZES[d]; }
export function isFloating(d: DType): boolean { return d === 'float32' || d === 'float16' || d === 'bfloat16'; }
export function isHalf(d: DType): boolean { return d === 'float16' || d === 'bfloat16'; }

/** TypedArrays that can hold tensor data. */
export type TypedArray = Float32Array | Uint16Array | Int32Array | BigInt64Array | Int8Array | Uint8Array;
