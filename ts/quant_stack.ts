/**
 * Stacked expert weights for {@link moe.experts}: the INT4 weights of E experts (same shape, group
 * size, scale dtype and zero-point kind) as one {@link Int4Weight} whose rows are the experts' rows one
 * after the other (expert e owns rows [e·n, (e+1)·n)). It is a canonical weight like any other, so
 * `quant.prepare(w, device)` prepares it; `w.experts` records E.
 * @module
 */
import { check } from './errors';
import { native } from './native';
import { Int4Weight } from './quant';
import { adopt, type Tensor } from './tensor';

/**
 * Stacks per-expert weights (e.g. `quant.fromGptq` of each expert of a Mixtral / Qwen-MoE layer) into
 * one weight with a leading expert dimension. The inputs stay valid (the result owns copies).
 * Act-order weights (with a permutation) cannot be stacked.
 * @throws LlmkError ERR_LLMK_ARG (not Int4Weights, empty, already stacked, act-order, mixed zero-point
 *   kinds), ERR_LLMK_SHAPE (different n, k or group sizes), ERR_LLMK_DTYPE (different scale dtypes),
 *   ERR_LLMK_DEVICE (different devices).
 */
export function stackExperts(ws: Int4Weight[]): Int4Weight {
  const op = 'quant.stackExperts';
  check(Array.isArray(ws) && ws.length > 0, 'ERR_LLMK_ARG', `${op}: expected a non-empty array of Int4Weight`);
  for (const w of ws) {
    check(w instanceof Int4Weight, 'ERR_LLMK_ARG', `${op}: every element must be an Int4Weight`);
    w.checkLive(op);
    check(w.experts === 0, 'ERR_LLMK_ARG', `${op}: a weight is already stacked`);
    check(w.perm === null, 'ERR_LLMK_ARG', `${op}: act-order weights (with a permutation) cannot be stacked`);
  }
  const a = ws[0];
  for (const w of ws) {
    check(w.n === a.n && w.k === a.k, 'ERR_LLMK_SHAPE', () => `${op}: experts must have the same shape; got ${w.n}x${w.k} and ${a.n}x${a.k}`);
    check(w.groupSize === a.groupSize, 'ERR_LLMK_SHAPE', () => `${op}: experts must have the same group size; got ${w.groupSize} and ${a.groupSize}`);
    check(w.symmetric === a.symmetric, 'ERR_LLMK_ARG', `${op}: experts must all have zero points or all be symmetric`);
  }
  // Prepared weights are brought back to the canonical layout (a view where it already is).
  const canon = ws.map((w) => w.toCanonical());
  const made: Tensor[] = [];
  const stack = (ts: Tensor[]) => {
    const t = adopt(native.moe.stackRows(...ts.map((x) => x.handle)), ts[0].device);
    made.push(t);
    return t;
  };
  try {
    const qweight = stack(canon.map((w) => w.qweight));
    const scales = stack(canon.map((w) => w.scales));
    const zeros = a.symmetric ? null : stack(canon.map((w) => w.zeros!));
    return new Int4Weight({
      n: ws.length * a.n, k: a.k, groupSize: a.groupSize, layout: 'canonical', qweight, scales, zeros,
      perm: null, invPerm: null, experts: ws.length,
    });
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  } finally {
    for (const c of canon) c.dispose();
  }
}
