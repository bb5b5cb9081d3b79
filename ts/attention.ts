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
import type { DType } from './dtype';
import { check } from './errors';
import { native } from './native';
import { adopt, checkTensor, Tensor } from './tensor';
import { BlockLayout, layoutSizes } from './attention/layout';
import { planOf } from './attention/plan';

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

/**
 * Attention over the blocks of `layout`: `out = softmax(mask(scale · q·kᵀ)) · v` with q `[B, Nq, Hq, D]`,
 * k and v `[B, Nk, Hkv, D]` (bshd, as FlashAttention), Hq a multiple of Hkv (GQA / MQA), D a multiple of 8
 * up to 256 (64 and 128 are the fast paths), float16, bfloat16 or float32. The layout must be built for
 * qLen = Nq and kLen = Nk, shared by all heads or per head (`heads` = Hq). Work and memory are proportional
 * to the kept blocks; nothing of size Nq × Nk is allocated. Decode (Nq ≤ 16) splits the key range over
 * CTAs on CUDA and merges the partial results through their LSE.
 */
export function blockSparse<D extends DType>(q: Tensor<D>, k: Tensor, v: Tensor, layout: BlockLayout, opts: BlockSparseOptions = {}): BlockSparseResult<D> {
  const op = 'attention.blockSparse';
  checkTensor(q, `${op}: q`);
  checkTensor(k, `${op}: k`);
  checkTensor(v, `${op}: v`);
  check(layout instanceof BlockLayout, 'ERR_LLMK_ARG', `${op}: layout must be a BlockLayout (see attention.BlockLayout builders)`);
  // Shapes, dtypes, devices, the layout's fit and the option values are checked natively (ops/attention.cpp).
  const res = native.attention.blockSparse(q.handle, k.handle, v.handle, planOf(layout, q.device), opts);
  const out = adopt<D>(res[0], q.device, 0);
  const lse = res[1] !== null ? adopt<'float32'>(res[1], q.device, 1) : undefined;
  const dispose = (): void => { out.dispose(); lse?.dispose(); };
  return { out, lse, dispose, [Symbol.dispose]: dispose };
}

/**
 * Validates a layout's BSR arrays in the native layer (the check a layout gets when it is built and when
 * it is planned on a device) and returns the largest number of blocks in one row. Throws ERR_LLMK_SHAPE /
 * ERR_LLMK_INDEX like fromBsr.
 */
export function checkLayoutNative(layout: BlockLayout): number {
  check(layout instanceof BlockLayout, 'ERR_LLMK_ARG', 'attention.checkLayoutNative: layout must be a BlockLayout');
  return native.attention.checkLayout(layout.rowPtr, layout.colIdx, layoutSizes(layout), 'attention.checkLayoutNative');
}


/**
 * The CPU attention kernel in use: 'avx512', 'avx2' or 'generic' (the best the CPU supports, or the one
 * `LLMK_CPU_ATTN_ISA=avx2|generic` asks for).
 */
export function cpuIsa(): string {
  return native.attention.cpuIsa();
}
