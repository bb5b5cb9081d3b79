/**
 * Block-sparse attention (docs/architecture.md §4.2): a fused, tiled, online-softmax forward that visits only the
 * key blocks a {@link BlockLayout} keeps, refined by token-level `causal` / `window` masks.
 *
 * ```ts
 * import { attention, randn } from 'llm-kernels';
 * const layout = attention.BlockLayout.slidingWindow({ seqLen: 4096, blockSize: 64, window: 1024 });
 * const { out } = attention.blockSparse(q, k, v, layout, { causal: true, window: { left: 1024, right: 0 } });
 * ```
 * @module
 */
import { type DType, isFloating } from './dtype';
import { check } from './errors';
import { native } from './native';
import { checkSameDevice, checkTensor, Tensor } from './tensor';
import { BlockLayout } from './attention/layout';

export { BlockLayout };
export type { LayoutSizeOptions, BsrArrays } from './attention/layout';
export { varlen, paged, KvCache } from './attention/serving';
export type { MaskOptions, ServingResult, VarlenOptions, KvCacheOptions, PagedOptions } from './attention/serving';

/** Options of {@link blockSparse}. */
export interface BlockSparseOptions {
  /**
   * Multiplies q·k before softmax (default 1/√D). Any finite float32 number; the logits `scale · q·k` are
   * computed in float32, so they must stay within its range (|logit| < 3.4e38) or the row's output is NaN.
   * Logit soft-capping (`softcap`) bounds them.
   */
  scale?: number;
  /** Causal mask, bottom-right aligned: query i sees keys j ≤ i + Nk − Nq (FlashAttention with a KV cache). */
  causal?: boolean;
  /**
   * Local window in tokens around the aligned diagonal i' = i + Nk − Nq: keys in [i' − left, i' + right].
   * Omit a side (or give Infinity) for no bound on that side.
   */
  window?: { left?: number; right?: number };
  /** Logit soft-capping (Gemma-2 / Grok): s ← softcap · tanh(s / softcap), after scaling. */
  softcap?: number;
  /** Also return the log-sum-exp of each row (natural log; −Infinity for rows that see no key). */
  returnLse?: boolean;
  /** @internal Force a CUDA kernel (0 generic, 1 tensor core, 2 split-K) — for tests. */
  forcePath?: number;
}

/** Result of {@link blockSparse}. Dispose both tensors with `dispose()` (or use `using`). */
export interface BlockSparseResult<D extends DType = DType> {
  /** [B, Nq, Hq, D], q's dtype. Rows that see no key are 0. */
  out: Tensor<D>;
  /** [B, Hq, Nq] float32 (only with `returnLse`). */
  lse?: Tensor<'float32'>;
  /** Frees `out` and `lse`. */
  dispose(): void;
  [Symbol.dispose](): void;
}

function windowBound(name: string, x: number | undefined): number {
  if (x === undefined || x === Infinity) return -1;
  check(typeof x === 'number' && Number.isInteger(x) && x >= 0, 'ERR_LLMK_ARG',
    `attention.blockSparse: window.${name} must be a non-negative integer or Infinity, got ${String(x)}`);
  return x;
}

/**
 * Attention over the blocks of `layout`: `out = softmax(mask(scale · q·kᵀ)) · v` with q `[B, Nq, Hq, D]`,
 * k and v `[B, Nk, Hkv, D]` (bshd, as FlashAttention), Hq a multiple of Hkv (GQA / MQA), D a multiple of 8
 * up to 256 (64 and 128 are the fast paths), float16, bfloat16 or float32. The layout must be built for
 * qLen = Nq and kLen = Nk, shared by all heads or per head (`heads` = Hq). Work and memory are proportional
 * to the kept blocks; nothing of size Nq × Nk is allocated. Decode (Nq ≤ 16) splits the key range over
 * CTAs on CUDA and merges the partial results through their LSE.
 */
export function blockSparse<D extends DType>(q: Tensor<D>, k: Tensor, v: Tensor, layout: BlockLayout, opts: BlockSparseOptions = {}): BlockSparseResult<D> {
  opts = opts ?? {};
  const op = 'attention.blockSparse';
  checkTensor(q, `${op}: q`);
  checkTensor(k, `${op}: k`);
  checkTensor(v, `${op}: v`);
  check(layout instanceof BlockLayout, 'ERR_LLMK_ARG', `${op}: layout must be a BlockLayout (see attention.BlockLayout builders)`);
  check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', `${op}: options must be an object`);
  checkSameDevice(op, q, k, v);
  check(isFloating(q.dtype), 'ERR_LLMK_DTYPE', `${op}: q must be float16, bfloat16 or float32, got ${q.dtype}`);
  check(k.dtype === q.dtype && v.dtype === q.dtype, 'ERR_LLMK_DTYPE',
    () => `${op}: q, k and v must have one dtype (got ${q.dtype}, ${k.dtype}, ${v.dtype})`);
  const shp = (t: Tensor) => `[${t.shape.join(', ')}]`;
  check(q.ndim === 4 && k.ndim === 4 && v.ndim === 4, 'ERR_LLMK_SHAPE',
    () => `${op}: q, k, v must be 4-D [batch, seq, heads, headDim] (got ${shp(q)}, ${shp(k)}, ${shp(v)})`);
  const [B, Nq, Hq, D] = q.shape;
  const [Bk, Nk, Hkv, Dk] = k.shape;
  check(k.shape.every((d, i) => d === v.shape[i]), 'ERR_LLMK_SHAPE', () => `${op}: k ${shp(k)} and v ${shp(v)} must have one shape`);
  check(Bk === B && Dk === D, 'ERR_LLMK_SHAPE', () => `${op}: q ${shp(q)} and k ${shp(k)} differ in batch or head size`);
  check(B >= 1 && Nq >= 1 && Nk >= 1 && Hq >= 1 && Hkv >= 1, 'ERR_LLMK_SHAPE', () => `${op}: empty dimensions in q ${shp(q)} or k ${shp(k)}`);
  check(B <= 65535 && Hq <= 65535, 'ERR_LLMK_SHAPE', () => `${op}: batch (${B}) and query heads (${Hq}) must each be at most 65535`);
  check(Hq % Hkv === 0, 'ERR_LLMK_SHAPE', () => `${op}: query heads (${Hq}) must be a multiple of key/value heads (${Hkv})`);
  check(D % 8 === 0 && D >= 8 && D <= 256, 'ERR_LLMK_SHAPE', () => `${op}: head size ${D} must be a multiple of 8 between 8 and 256`);
  check(layout.qLen === Nq && layout.kLen === Nk, 'ERR_LLMK_SHAPE',
    () => `${op}: the layout is for qLen ${layout.qLen}, kLen ${layout.kLen}, but q has ${Nq} and k ${Nk} tokens`);
  check(!layout.perHead || layout.heads === Hq, 'ERR_LLMK_SHAPE',
    () => `${op}: the per-head layout has ${layout.heads} heads, q has ${Hq}`);
  const scale = opts.scale;
  check(scale === undefined || (typeof scale === 'number' && Number.isFinite(scale) && Number.isFinite(Math.fround(scale))),
    'ERR_LLMK_ARG', `${op}: scale must be a finite number, got ${String(scale)}`);
  const softcap = opts.softcap;
  check(softcap === undefined || (typeof softcap === 'number' && Number.isFinite(softcap) && softcap >= 0), 'ERR_LLMK_ARG',
    `${op}: softcap must be a finite number >= 0 (0 = none), got ${String(softcap)}`);
  const w = opts.window;
  check(w === undefined || (w !== null && typeof w === 'object'), 'ERR_LLMK_ARG', `${op}: window must be { left, right }`);
  const winLeft = windowBound('left', w?.left), winRight = windowBound('right', w?.right);

  const res = native.attentionBlockSparse(q.handle, k.handle, v.handle, layout.rowPtr, layout.colIdx,
    { heads: layout.perHead ? layout.heads : 1, blockQ: layout.blockQ, blockK: layout.blockK, qLen: layout.qLen, kLen: layout.kLen },
    { scale, causal: Boolean(opts.causal), windowLeft: winLeft, windowRight: winRight, softcap: softcap ?? 0,
      returnLse: Boolean(opts.returnLse), forcePath: opts.forcePath ?? -1 });
  const out = new Tensor(res[0], [B, Nq, Hq, D], q.dtype, q.device);
  const lse = res[1] ? new Tensor(res[1], [B, Hq, Nq], 'float32', q.device) : undefined;
  const dispose = (): void => { out.dispose(); lse?.dispose(); };
  return { out, lse, dispose, [Symbol.dispose]: dispose };
}

/**
 * Validates BSR arrays in the native layer too (the same checks the op runs before every launch) and
 * returns the largest number of blocks in one row. Throws ERR_LLMK_SHAPE / ERR_LLMK_INDEX like fromBsr.
 */
export function checkLayoutNative(layout: BlockLayout): number {
  check(layout instanceof BlockLayout, 'ERR_LLMK_ARG', 'attention.checkLayoutNative: layout must be a BlockLayout');
  return native.attentionCheckLayout(layout.rowPtr, layout.colIdx,
    { heads: layout.perHead ? layout.heads : 1, blockQ: layout.blockQ, blockK: layout.blockK, qLen: layout.qLen, kLen: layout.kLen });
}


/**
 * The CPU attention kernel in use: 'avx512', 'avx2' or 'generic' (the best the CPU supports, or the one
 * `LLMK_CPU_ATTN_ISA=avx2|generic` asks for).
 */
export function cpuIsa(): string {
  return native.attentionCpuIsa();
}
