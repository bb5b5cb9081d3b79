/**
 * Attention for serving (issue 15): ragged batches ({@link varlen}, FlashAttention's `cu_seqlens`), a paged
 * KV cache ({@link KvCache}, vLLM's pages) and attention that reads keys and values in place from its pages
 * ({@link paged}: chunked prefill and decode in one call). Same masks as blockSparse (causal bottom-right
 * per sequence, window, softcap, scale, LSE, GQA); one CPU kernel behind all three.
 * @module
 */
import { check } from '../errors';
import { native } from '../native';
import { adopt, checkTensor, Tensor } from '../tensor';
import { type DType, dtypeId } from '../dtype';
import { parseDevice, type DeviceSpec } from '../device';

/** Mask and output options shared by {@link varlen} and {@link paged} (as blockSparse's). */
export interface MaskOptions {
  /** Multiplies q·k before softmax (default 1/√D). */
  scale?: number;
  /** Causal mask, bottom-right aligned per sequence: query i of nq sees key j ≤ i + nk − nq. */
  causal?: boolean;
  /** Keys in [i' − left, i' + right] around the aligned diagonal i' = i + nk − nq; omit a side for no bound. */
  window?: { left?: number; right?: number };
  /** Logit soft-capping: s ← softcap · tanh(s / softcap), after scaling. */
  softcap?: number;
  /** Also return the log-sum-exp `[Hq, totalQ]` (−Infinity for rows that see no key). */
  returnLse?: boolean;
}

/** Result of {@link varlen} / {@link paged}. Dispose both tensors with `dispose()` (or use `using`). */
export interface ServingResult {
  /** [totalQ, Hq, D], q's dtype; rows that see no key are 0. */
  out: Tensor;
  /** [Hq, totalQ] float32 (only with `returnLse`). */
  lse?: Tensor;
  /** Frees `out` and `lse`. */
  dispose(): void;
  [Symbol.dispose](): void;
}

/** The options object as given; its values (scale, softcap, window, …) are checked natively. */
function maskOptions(op: string, opts: unknown): MaskOptions {
  check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', `${op}: options must be an object`);
  return opts as MaskOptions;
}

function result(res: [unknown, unknown], q: Tensor): ServingResult {
  const out = adopt(res[0] as never, q.device, 0);
  const lse = res[1] !== null ? adopt<'float32'>(res[1] as never, q.device, 1) : undefined;
  const dispose = (): void => { out.dispose(); lse?.dispose(); };
  return { out, lse, dispose, [Symbol.dispose]: dispose };
}

function tensorOpt(op: string, o: Record<string, unknown>, name: string): Tensor {
  const t = o[name];
  checkTensor(t, `${op}: ${name}`);
  return t;
}

/** Options of {@link varlen}: the sequences' boundaries as int32 tensors of B + 1 offsets. */
export interface VarlenOptions extends MaskOptions {
  /** [B + 1] int32: sequence b's queries are rows cuSeqlensQ[b] .. cuSeqlensQ[b+1]−1 of q. */
  cuSeqlensQ: Tensor;
  /** [B + 1] int32: sequence b's keys are rows cuSeqlensK[b] .. cuSeqlensK[b+1]−1 of k and v. */
  cuSeqlensK: Tensor;
}

/**
 * Attention over a ragged batch packed along the token axis: q `[totalQ, Hq, D]`, k and v `[totalK, Hkv, D]`;
 * each sequence attends only to its own keys. The offsets are read when the kernel runs: ones that do not
 * start at 0, decrease, or do not end at the tensor's token count give ERR_LLMK_INDEX at the next
 * synchronisation (nothing is written).
 *
 * ```ts
 * const cu = tensor(Int32Array.of(0, 5, 12), { dtype: 'int32' });
 * const { out } = attention.varlen(q, k, v, { cuSeqlensQ: cu, cuSeqlensK: cu, causal: true });
 * ```
 */
export function varlen(q: Tensor, k: Tensor, v: Tensor, opts: VarlenOptions): ServingResult {
  const op = 'attention.varlen';
  checkTensor(q, `${op}: q`);
  checkTensor(k, `${op}: k`);
  checkTensor(v, `${op}: v`);
  const o = maskOptions(op, opts);
  const cq = tensorOpt(op, o as Record<string, unknown>, 'cuSeqlensQ');
  const ck = tensorOpt(op, o as Record<string, unknown>, 'cuSeqlensK');
  return result(native.attention.varlen(q.handle, k.handle, v.handle, cq.handle, ck.handle, o), q);
}

/** Options of {@link KvCache}. */
export interface KvCacheOptions {
  numPages: number;
  /** Tokens per page, 16 … 256. */
  pageSize: number;
  kvHeads: number;
  headDim: number;
  dtype?: DType;
  device?: DeviceSpec;
}

/**
 * A paged KV cache: `key` and `value` tensors `[numPages, pageSize, kvHeads, headDim]` (zeroed). Pages are
 * allocated by the caller (block tables are plain int32 tensors, as in vLLM and FlashInfer).
 */
export class KvCache {
  readonly key: Tensor;
  readonly value: Tensor;
  readonly numPages: number;
  readonly pageSize: number;
  readonly kvHeads: number;
  readonly headDim: number;

  constructor(opts: KvCacheOptions) {
    check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', 'attention.KvCache: options object required');
    const dev = parseDevice(opts.device);
    // The sizes' ranges are the paged op's contract, checked natively when the cache is made.
    const [key, value] = native.attention.kvCache(opts, dtypeId(opts.dtype ?? 'float32'), dev.kind, dev.index);
    this.key = adopt(key, dev.name, 0);
    this.value = adopt(value, dev.name, 1);
    [this.numPages, this.pageSize, this.kvHeads, this.headDim] = this.key.shape;
  }

  get dtype(): DType { return this.key.dtype; }
  get device(): string { return this.key.device; }

  /**
   * Writes k and v `[n, kvHeads, headDim]` into slots `slotMapping` `[n]` int32 (slot = page · pageSize +
   * offset; −1 skips the token), as vLLM's reshape_and_cache. A slot outside the cache gives ERR_LLMK_INDEX
   * at the next synchronisation and writes nothing.
   */
  append(k: Tensor, v: Tensor, slotMapping: Tensor): void {
    const op = 'KvCache.append';
    checkTensor(k, `${op}: k`);
    checkTensor(v, `${op}: v`);
    checkTensor(slotMapping, `${op}: slotMapping`);
    native.attention.cacheAppend(this.key.handle, this.value.handle, k.handle, v.handle, slotMapping.handle);
  }

  dispose(): void { this.key.dispose(); this.value.dispose(); }
  [Symbol.dispose](): void { this.dispose(); }
}

/** Options of {@link paged}. */
export interface PagedOptions extends MaskOptions {
  /** [B, maxPages] int32: page ids of each sequence's keys, in order (entries past its length are not read). */
  blockTables: Tensor;
  /** [B] int32: keys of each sequence (including this call's new tokens, already appended). */
  seqLens: Tensor;
  /** [B + 1] int32: sequence b's queries are rows cuSeqlensQ[b] .. cuSeqlensQ[b+1]−1 of q (decode: 0, 1, 2, …). */
  cuSeqlensQ: Tensor;
}

/**
 * Attention of q `[totalQ, Hq, D]` over a {@link KvCache}, reading pages in place: chunked prefill and decode
 * in one call. Pages that no query's mask reaches (outside every window, or beyond the causal limit) are
 * not read. A page id outside the cache, seqLens beyond the block table or bad offsets give ERR_LLMK_INDEX
 * at the next synchronisation, never an out-of-bounds read.
 */
export function paged(q: Tensor, cache: KvCache, opts: PagedOptions): ServingResult {
  const op = 'attention.paged';
  checkTensor(q, `${op}: q`);
  check(cache instanceof KvCache, 'ERR_LLMK_ARG', `${op}: cache must be an attention.KvCache`);
  checkTensor(cache.key, `${op}: cache`);
  const o = maskOptions(op, opts);
  const ro = o as Record<string, unknown>;
  const bt = tensorOpt(op, ro, 'blockTables'), sl = tensorOpt(op, ro, 'seqLens'), cq = tensorOpt(op, ro, 'cuSeqlensQ');
  return result(native.attention.paged(q.handle, cache.key.handle, cache.value.handle, bt.handle, sl.handle, cq.handle, o), q);
}
