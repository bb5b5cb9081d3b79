// The two reference ops that prove the pipe end to end: elementwise add and dense matmul.
import { check } from './errors';
import { native } from './native';
import { checkSameDevice, checkTensor, Tensor } from './tensor';
import { type DType, isFloating } from './dtype';

/** a + b elementwise (same shape, dtype and device). */
export function add<D extends DType>(a: Tensor<D>, b: Tensor): Tensor<D> {
  checkTensor(a, 'add: a');
  checkTensor(b, 'add: b');
  checkSameDevice('add', a, b);
  check(a.dtype === b.dtype, 'ERR_LLMK_DTYPE', () => `add: dtypes differ (${a.dtype} and ${b.dtype})`);
  const sa = a.shape, sb = b.shape;
  check(sa.length === sb.length && sa.every((d, i) => d === sb[i]), 'ERR_LLMK_SHAPE',
    () => `add: shapes differ ([${sa.join(', ')}] and [${sb.join(', ')}])`);
  return new Tensor(native.add(a._h, b._h), sa, a.dtype, a.device, a.numel);
}

/** a[M,K] · b[K,N] → [M,N]; float32, float16 or bfloat16, float32 accumulation. */
export function matmul<D extends DType>(a: Tensor<D>, b: Tensor): Tensor<D> {
  checkTensor(a, 'matmul: a');
  checkTensor(b, 'matmul: b');
  checkSameDevice('matmul', a, b);
  check(isFloating(a.dtype), 'ERR_LLMK_DTYPE', `matmul: a must be float32, float16 or bfloat16, got ${a.dtype}`);
  check(a.dtype === b.dtype, 'ERR_LLMK_DTYPE', () => `matmul: dtypes differ (${a.dtype} and ${b.dtype})`);
  check(a.ndim === 2 && b.ndim === 2, 'ERR_LLMK_SHAPE', () => `matmul: a and b must be 2-D (got [${a.shape.join(', ')}] and [${b.shape.join(', ')}])`);
  check(a.shape[1] === b.shape[0], 'ERR_LLMK_SHAPE', () => `matmul: inner dimensions differ ([${a.shape.join(', ')}] · [${b.shape.join(', ')}])`);
  return new Tensor(native.matmul(a._h, b._h), [a.shape[0], b.shape[1]], a.dtype, a.device);
}
