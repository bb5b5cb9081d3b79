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

/**
 * The array `toArray()` gives for each dtype: float16/bfloat16 come back converted to float32.
 * `ArrayOf[D]` for a tensor whose dtype is known, the union for `Tensor<DType>`.
 */
export interface ArrayOf {
  float32: Float32Array; float16: Float32Array; bfloat16: Float32Array;
  int32: Int32Array; int64: BigInt64Array; int8: Int8Array; uint8: Uint8Array;
}
/** The array `toArray({ raw: true })` gives: float16/bfloat16 as their Uint16Array bits. */
export interface RawArrayOf extends Omit<ArrayOf, 'float16' | 'bfloat16'> { float16: Uint16Array; bfloat16: Uint16Array }
/** The dtype a TypedArray makes by default in `tensor(data)` (number arrays make float32). */
export type DTypeOfData<A> =
  A extends Float32Array ? 'float32' : A extends Int32Array ? 'int32' : A extends BigInt64Array ? 'int64' :
  A extends Int8Array ? 'int8' : A extends Uint8Array ? 'uint8' : A extends Uint16Array ? 'float16' | 'bfloat16' : 'float32';
