/**
 * Mixture-of-Experts routing (docs/architecture.md §4.1): top-k expert selection with softmax or sigmoid
 * scoring, selection bias and grouped routing (Mixtral, Qwen-MoE, DeepSeek-V2/V3, gpt-oss, DBRX),
 * and the pieces that turn the routing into a grouped expert GEMM: {@link align}, {@link permute},
 * {@link combine}, plus {@link expertCounts} and the auxiliary {@link loadBalancingLoss}.
 *
 * Every op is enqueued on the current stream of its inputs' device and returns at once. Ids that
 * are only known on the device (produced by a kernel, or passed in by the caller) are bounds-checked
 * there: an id outside `[0, numExperts)` never causes an out-of-bounds access; it raises
 * `ERR_LLMK_INDEX` at the next synchronisation (`await t.toArray()`, `await synchronize()`), and
 * the outputs of that op are not valid.
 *
 * ## Routing rules of {@link topk} (identical on the CPU and on CUDA)
 * - softmax: `p = softmax(logits)` over all E experts; the weights of the k chosen experts are their
 *   `p`, divided by their sum when `renormalize` (Mixtral; equal to a softmax over the k chosen logits,
 *   as gpt-oss computes it).
 * - sigmoid: `s = sigmoid(logits)`; weights are the `s` of the chosen experts, divided by their sum when
 *   `renormalize` (DeepSeek-V3).
 * - Selection key: the logit itself without `bias` (monotone in the score); `score + bias` with bias.
 * - Grouped routing: the E experts form `groups.count` contiguous groups; a group's score is the sum of
 *   its two largest keys with `bias` (its largest alone if the group has one expert), its largest key
 *   without; the `groups.topk` best groups are kept and the k experts are chosen among theirs.
 * - All weights are then multiplied by `scale`.
 * - Ordering: each row's ids come in descending key order. Equal keys go to the lower expert index (and
 *   equal group scores to the lower group index), so results are deterministic, also for the exact
 *   ties that bfloat16 logits make common.
 * - NaN and infinities: a NaN logit ranks below every other key (below −Inf); an expert with a NaN logit
 *   gets weight 0. A row that is entirely NaN still yields k distinct valid ids (0, 1, …, k−1) with
 *   weight 0. softmax with +Inf logits gives the +Inf experts equal shares (1/count) and the others 0; a
 *   row whose non-NaN logits are all −Inf gives those experts equal shares. When the chosen weights sum
 *   to 0, `renormalize` leaves them at 0. Weights are always finite.
 *
 * @packageDocumentation
 */
import { type DType } from './dtype';
import { check } from './errors';
import { native } from './native';
import { Int4Weight } from './quant';
import { adopt, checkTensor, Tensor } from './tensor';

/** Largest number of experts the routing ops support. */
export const MAX_EXPERTS = 1024;

/** Scoring function of {@link topk}. */
export type Scoring = 'softmax' | 'sigmoid';

/** Options of {@link topk}. */
export interface TopkOptions {
  /** Experts per token, 1 ≤ k ≤ E (and ≤ groups.topk · E / groups.count with groups). */
  k: number;
  /** 'softmax' (default) or 'sigmoid'. */
  scoring?: Scoring;
  /** Divide the k weights of a token by their sum (default true). */
  renormalize?: boolean;
  /** Selection bias [E] float32 on the logits' device: added to the scores for selection only. */
  bias?: Tensor;
  /** Grouped routing: `count` groups (dividing E), keep the `topk` best groups. */
  groups?: { count: number; topk: number };
  /** Multiplies every weight (default 1), e.g. DeepSeek-V3's routed_scaling_factor. */
  scale?: number;
}

/** Disposable bundle of result tensors (`using r = moe.topk(...)` frees them all). */
abstract class Results {
  protected abstract tensors(): Tensor[];
  /** Frees every tensor of the result. */
  dispose(): void { for (const t of this.tensors()) t.dispose(); }
  [Symbol.dispose](): void { this.dispose(); }
}

/** Result of {@link topk}. */
export class TopkResult extends Results {
  /** @internal */
  constructor(
    /** [T, k] float32: routing weights, in the order of `ids`. */
    readonly weights: Tensor<'float32'>,
    /** [T, k] int32: chosen experts, each row in descending score order. */
    readonly ids: Tensor<'int32'>,
  ) { super(); }
  protected tensors(): Tensor[] { return [this.weights, this.ids]; }
}

/** Result of {@link align}. */
export class AlignResult extends Results {
  /** @internal */
  constructor(
    /**
     * int32 [n + min(E, n)·(blockSize − 1)] with n = T·k, the worst case of the padded size (the
     * shape never depends on the data, so nothing waits for the device): flat slot indices `t·k + j`
     * grouped by expert (experts in increasing order; within an expert, increasing slot order), each
     * expert's run padded to a multiple of `blockSize` with the pad value `n`. Only the first
     * `numPadded` entries are meaningful; every entry after them is also `n`.
     */
    readonly sortedIds: Tensor<'int32'>,
    /**
     * int32 [floor(sortedIds.length / blockSize)]: the expert of block b (entries
     * `[b·blockSize, (b+1)·blockSize)` of sortedIds), −1 for the blocks after `numPadded / blockSize`.
     */
    readonly blockExperts: Tensor<'int32'>,
    /** int32 [1], on the device: the padded size Σ_e ceil(count_e / blockSize) · blockSize. */
    readonly numPadded: Tensor<'int32'>,
  ) { super(); }
  protected tensors(): Tensor[] { return [this.sortedIds, this.blockExperts, this.numPadded]; }
}

/** Result of {@link permute}. */
export class PermuteResult<D extends DType = DType> extends Results {
  /** @internal */
  constructor(
    /** [T·k, H], x's dtype: row r is x[t] for the r-th slot in expert order (stable: slot order within an expert). */
    readonly out: Tensor<D>,
    /** [T, k] int32: the row of `out` that holds slot (t, j); what {@link combine} takes. */
    readonly rowMap: Tensor<'int32'>,
    /** [E + 1] int32: expert e owns rows [expertOffsets[e], expertOffsets[e+1]) of `out`. */
    readonly expertOffsets: Tensor<'int32'>,
  ) { super(); }
  protected tensors(): Tensor[] { return [this.out, this.rowMap, this.expertOffsets]; }
}

// Tensor contracts (dtypes, shapes, ranges that depend on shapes) are checked once, in native code
// (native/src/ops/moe.cpp), and result shapes come from there too: TypeScript checks only what is
// JavaScript (Tensors, option objects, enums, booleans).

function checkOptions(opts: unknown, op: string, what: string): void {
  check(typeof opts === 'object' && opts !== null, 'ERR_LLMK_ARG', `${op}: options ${what} are required`);
}

/**
 * Top-k expert routing of every token: scores, optional bias and grouped selection, top-k and
 * normalisation in one kernel (see the module documentation for the exact rules).
 *
 * @param logits [T, E] router logits, float32, float16 or bfloat16; 1 ≤ E ≤ 1024. T = 0 gives empty outputs.
 * @returns `{ weights: [T,k] float32, ids: [T,k] int32 }`, disposable with `using`.
 * @throws LlmkError ERR_LLMK_ARG (k, groups, scale), ERR_LLMK_SHAPE (logits or bias shape),
 *   ERR_LLMK_DTYPE (logits or bias dtype), ERR_LLMK_DEVICE (bias on another device).
 */
export function topk(logits: Tensor, opts: TopkOptions): TopkResult {
  checkTensor(logits, 'moe.topk: logits');
  check(typeof opts === 'object' && opts !== null, 'ERR_LLMK_ARG', 'moe.topk: an options object with k is required');
  const scoring = opts.scoring ?? 'softmax';
  check(scoring === 'softmax' || scoring === 'sigmoid', 'ERR_LLMK_ARG', () => `moe.topk: scoring must be 'softmax' or 'sigmoid', got ${String(scoring)}`);
  const renormalize = opts.renormalize ?? true;
  check(typeof renormalize === 'boolean', 'ERR_LLMK_ARG', 'moe.topk: renormalize must be a boolean');
  const groups = opts.groups;
  if (groups !== undefined) check(typeof groups === 'object' && groups !== null, 'ERR_LLMK_ARG', 'moe.topk: groups must be { count, topk }');
  const bias = opts.bias;
  if (bias !== undefined) checkTensor(bias, 'moe.topk: bias');
  const [w, ids] = native.moe.topk(logits.handle, opts.k, scoring === 'sigmoid', renormalize, bias ? bias.handle : null,
    groups ? groups.count : null, groups ? groups.topk : 0, opts.scale ?? 1);
  const d = logits.device;
  return new TopkResult(adopt(w, d, 0), adopt(ids, d, 1));
}

/**
 * Groups the T·k routing slots by expert and pads each expert's run to a multiple of `blockSize`:
 * the block schedule a grouped expert GEMM consumes. Runs entirely on the device (no host round
 * trip): output sizes are the worst case, `numPadded` is a device tensor.
 *
 * @param ids [T, k] int32 expert ids (as from {@link topk}); T·k slots `t·k + j`.
 * @param opts.numExperts E, 1 ≤ E ≤ 1024. @param opts.blockSize 1 ≤ blockSize ≤ 2^20 (rows per GEMM block, e.g. 16–128).
 * @throws LlmkError ERR_LLMK_ARG, ERR_LLMK_DTYPE, ERR_LLMK_SHAPE; ERR_LLMK_INDEX at the next sync
 *   when an id is outside [0, E).
 */
export function align(ids: Tensor, opts: { numExperts: number; blockSize: number }): AlignResult {
  checkTensor(ids, 'moe.align: ids');
  checkOptions(opts, 'moe.align', '{ numExperts, blockSize }');
  const [s, b, np] = native.moe.align(ids.handle, opts.numExperts, opts.blockSize);
  const d = ids.device;
  return new AlignResult(adopt(s, d, 0), adopt(b, d, 1), adopt(np, d, 2));
}

/**
 * Gathers the rows of x into expert order: row r of `out` is x[t] for the r-th slot (t, j) when the
 * T·k slots are sorted by expert (stable). Feed `out` to the experts, then {@link combine}.
 *
 * @param x [T, H] activations (any dtype). @param ids [T, k] int32. @param opts.numExperts E ≤ 1024.
 * @throws LlmkError ERR_LLMK_ARG, ERR_LLMK_DTYPE, ERR_LLMK_SHAPE, ERR_LLMK_DEVICE; ERR_LLMK_INDEX at the
 *   next sync when an id is outside [0, E).
 */
export function permute<D extends DType>(x: Tensor<D>, ids: Tensor, opts: { numExperts: number }): PermuteResult<D> {
  checkTensor(x, 'moe.permute: x');
  checkTensor(ids, 'moe.permute: ids');
  checkOptions(opts, 'moe.permute', '{ numExperts }');
  const [o, rm, eo] = native.moe.permute(x.handle, ids.handle, opts.numExperts);
  const d = x.device;
  return new PermuteResult(adopt<D>(o, d, 0), adopt(rm, d, 1), adopt(eo, d, 2));
}

/**
 * out[t] = Σ_j weights[t, j] · y[rowMap[t, j]] (float32 accumulation in j order, stored in y's dtype).
 *
 * @param y [R, H] float32/float16/bfloat16 expert outputs (R = T·k after {@link permute}; any R works).
 * @param weights [T, k] float32. @param rowMap [T, k] int32 rows of y, each in [0, R).
 * @throws LlmkError ERR_LLMK_DTYPE, ERR_LLMK_SHAPE, ERR_LLMK_DEVICE; ERR_LLMK_INDEX at the next sync
 *   when a rowMap entry is outside [0, R).
 */
export function combine<D extends DType>(y: Tensor<D>, weights: Tensor, rowMap: Tensor): Tensor<D> {
  checkTensor(y, 'moe.combine: y');
  checkTensor(weights, 'moe.combine: weights');
  checkTensor(rowMap, 'moe.combine: rowMap');
  return adopt<D>(native.moe.combine(y.handle, weights.handle, rowMap.handle), y.device);
}

/**
 * Number of slots routed to each expert.
 * @param ids int32 expert ids of any shape. @returns [E] int32.
 * @throws LlmkError ERR_LLMK_ARG, ERR_LLMK_DTYPE; ERR_LLMK_INDEX at the next sync for an id outside [0, E).
 */
export function expertCounts(ids: Tensor, numExperts: number): Tensor<'int32'> {
  checkTensor(ids, 'moe.expertCounts: ids');
  return adopt(native.moe.expertCounts(ids.handle, numExperts), ids.device);
}

/**
 * Switch-Transformer auxiliary load-balancing loss, `E · Σ_e f_e · P_e`, with f_e = count_e / (T·k) the
 * fraction of routed slots that went to expert e and P_e = mean over tokens of probs[t, e] (Megatron-LM's
 * normalisation: 1 for perfectly uniform routing whatever k; Hugging Face's `load_balancing_loss_func`
 * gives k times this value). T = 0 gives 0.
 *
 * @param probs [T, E] router probabilities (float32/float16/bfloat16). @param ids [T, k] int32.
 * @returns [1] float32 on the inputs' device.
 * @throws LlmkError ERR_LLMK_ARG, ERR_LLMK_DTYPE, ERR_LLMK_SHAPE, ERR_LLMK_DEVICE; ERR_LLMK_INDEX at the next
 *   sync for an id outside [0, E).
 */
export function loadBalancingLoss(probs: Tensor, ids: Tensor, numExperts: number): Tensor<'float32'> {
  checkTensor(probs, 'moe.loadBalancingLoss: probs');
  checkTensor(ids, 'moe.loadBalancingLoss: ids');
  return adopt(native.moe.loadBalancingLoss(probs.handle, ids.handle, numExperts), probs.device);
}

// ------------------------------------------------------------------------------------------ experts

/**
 * Activation of {@link experts}: `'swiglu'` silu(gate)·up (Mixtral, DeepSeek, Qwen); `'swigluOai'`
 * gpt-oss's min(gate, 7)·σ(1.702·min(gate, 7))·(clamp(up, ±7) + 1); `'geglu'` GELU(gate)·up; the
 * ungated `'gelu'` and `'relu'` (gateUp then has I rows per expert). GELU is the tanh approximation.
 */
export type Activation = 'swiglu' | 'swigluOai' | 'geglu' | 'gelu' | 'relu';
const ACTIVATIONS: readonly Activation[] = ['swiglu', 'swigluOai', 'geglu', 'gelu', 'relu'];

/** Rows of a gated gateUp: `'concat'` gate = rows [0, I), up = [I, 2I) (vLLM's w13); `'interleaved'` gate even, up odd (gpt-oss). */
export type GateLayout = 'concat' | 'interleaved';

/** Expert weights of {@link experts}: dense [E, ·, ·] float tensors or stacked INT4 weights (`quant.stackExperts`). */
export interface ExpertWeights {
  /** [E, 2·I, H] (gated activations) or [E, I, H]. */
  gateUp: Tensor | Int4Weight;
  /** [E, H, I]. */
  down: Tensor | Int4Weight;
  /** [E, 2·I] (or [E, I]) float. */
  gateUpBias?: Tensor | null;
  /** [E, H] float. */
  downBias?: Tensor | null;
}

/** Options of {@link experts}. */
export interface ExpertsOptions {
  /** Default 'swiglu'. */
  activation?: Activation;
  /** Default 'concat'. */
  layout?: GateLayout;
  /**
   * [E_global] int32: global expert id → local index into the weights, −1 = not on this rank (those
   * slots contribute nothing). Ids are then checked against E_global.
   */
  expertMap?: Tensor | null;
}

const NO_PROJ = [null, null, null, null, null, 0, 0, 0, 0, false];

function projArgs(w: Tensor | Int4Weight, bias: Tensor | null | undefined, name: string): unknown[] {
  const b = bias ?? null;
  if (b !== null) checkTensor(b, `moe.experts: ${name}Bias`);
  if (w instanceof Int4Weight) {
    w.checkLive('moe.experts');
    return [null, w.qweight.handle, w.scales.handle, w.zeros?.handle ?? null, b?.handle ?? null, w.experts, w.n, w.k,
      w.groupSize, w.layout === 'prepared'];
  }
  checkTensor(w, `moe.experts: ${name}`);
  const a = NO_PROJ.slice();
  a[0] = w.handle;
  a[4] = b?.handle ?? null;
  return a;
}

/**
 * The expert layer of an MoE block:
 * `y[t] = Σ_j weights[t,j] · ( down_e · act(gateUp_e · x[t] + gateUpBias_e) + downBias_e )`, e = ids[t,j].
 * Tokens are grouped by expert once; each expert's weights are read once per call whatever the number of
 * tokens that chose it. Accumulation in float32; the intermediate activation is rounded to x's dtype (as
 * vLLM does), the result is in x's dtype. A NaN in x stays in its token's row.
 *
 * @param x [T, H] float32 / float16 / bfloat16. @param routing a {@link TopkResult} or `{ weights [T,k] float32, ids [T,k] int32 }`.
 * @param w dense tensors (any float dtype, mixed freely with x's) or stacked INT4 weights, and optional biases.
 * @returns [T, H] in x's dtype (T = 0: empty; k = 0: zeros).
 * @throws LlmkError ERR_LLMK_ARG (options, an Int4Weight that is not stacked), ERR_LLMK_SHAPE (E/H/I mismatches),
 *   ERR_LLMK_DTYPE, ERR_LLMK_DEVICE (a tensor or weight on another device); ERR_LLMK_INDEX at the next
 *   sync for an id outside [0, E) (or an expertMap entry outside [−1, E_local)).
 */
export function experts(x: Tensor, routing: TopkResult | { weights: Tensor; ids: Tensor }, w: ExpertWeights,
  opts: ExpertsOptions = {}): Tensor {
  const op = 'moe.experts';
  checkTensor(x, `${op}: x`);
  check(typeof routing === 'object' && routing !== null, 'ERR_LLMK_ARG', `${op}: routing must be a TopkResult or { weights, ids }`);
  checkTensor(routing.weights, `${op}: routing.weights`);
  checkTensor(routing.ids, `${op}: routing.ids`);
  check(typeof w === 'object' && w !== null, 'ERR_LLMK_ARG', `${op}: weights must be { gateUp, down, gateUpBias?, downBias? }`);
  opts = opts ?? {};
  check(typeof opts === 'object', 'ERR_LLMK_ARG', `${op}: options must be an object`);
  for (const key of Object.keys(opts))
    check(['activation', 'layout', 'expertMap'].includes(key), 'ERR_LLMK_ARG', () => `${op}: unknown option '${key}'`);
  const activation = opts.activation ?? 'swiglu';
  check(ACTIVATIONS.includes(activation), 'ERR_LLMK_ARG', () => `${op}: activation must be one of ${ACTIVATIONS.join(', ')}, got ${String(activation)}`);
  const layout = opts.layout ?? 'concat';
  check(layout === 'concat' || layout === 'interleaved', 'ERR_LLMK_ARG', () => `${op}: layout must be 'concat' or 'interleaved', got ${String(layout)}`);
  const map = opts.expertMap ?? null;
  if (map !== null) checkTensor(map, `${op}: expertMap`);
  const h = native.moe.experts(x.handle, routing.weights.handle, routing.ids.handle, map?.handle ?? null,
    ACTIVATIONS.indexOf(activation), layout === 'interleaved',
    ...projArgs(w.gateUp, w.gateUpBias, 'gateUp'), ...projArgs(w.down, w.downBias, 'down'));
  return adopt(h, x.device);
}
