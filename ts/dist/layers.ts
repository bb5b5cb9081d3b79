/**
 * Tensor-parallel linear layers with Megatron-LM semantics, and `shard`.
 *
 * A linear layer's weight is W[N, K] (out features × in features): y = x · Wᵀ + b.
 * - ColumnParallelLinear: rank r holds rows r·N/p .. (r+1)·N/p of W (a [N/p, K] shard) and of b; it
 *   computes its slice of y, [M, N/p]; with `gatherOutput` the slices are all-gathered into [M, N].
 * - RowParallelLinear: rank r holds columns r·K/p .. of W (a [N, K/p] shard) and takes the matching
 *   slice of x ([M, K/p], "input is parallel": the output of a ColumnParallelLinear); the partial
 *   products are all-reduced (sum) and the bias is added once, after the reduction.
 * Column → (elementwise) → Row is the Megatron MLP: one all-reduce per MLP, no gather in between.
 *
 * Shards are dense tensors (float32/float16/bfloat16, computed with `matmul`) or INT4 weights
 * (quant.Int4Weight, computed with `quant.matmul`) when the quant module is part of the build.
 */
import { add, matmul } from '../ops';
import { check } from '../errors';
import { DType, isFloating, TypedArray } from '../dtype';
import { checkTensor, tensor, Tensor } from '../tensor';
import type { Communicator } from '../dist';

/* eslint-disable @typescript-eslint/no-explicit-any */

function normDim(dim: number, ndim: number, what: string): number {
  check(Number.isInteger(dim) && dim >= -ndim && dim < ndim, 'ERR_LLMK_ARG', () => `${what}: dim ${dim} is out of range for a ${ndim}-D tensor`);
  return dim < 0 ? dim + ndim : dim;
}

function hostData(t: Tensor): TypedArray {
  return t.toArraySync({ raw: true });
}

function fromHost(data: TypedArray, shape: number[], dtype: DType, device: Tensor['device']): Tensor {
  return tensor(data, { shape, dtype, device });
}

/**
 * Rank `rank`'s equal part of `t` along `dim` (a copy, on t's device): size(dim) must be a multiple
 * of worldSize (ERR_LLMK_SHAPE). Dimension 0 is copied on the device; other dimensions go through
 * host memory (a one-time cost when loading weights).
 */
export function shard(t: Tensor, dim: number, rank: number, worldSize: number): Tensor;
/**
 * Rank `rank`'s part of an INT4 weight W[N, K]: dim 0 splits N (column-parallel), dim 1 splits K
 * (row-parallel; K/worldSize must be a multiple of the group size). The result is canonical, on the
 * weight's device (use quant.prepare for the fast kernels). Act-order weights split along N only.
 */
export function shard(t: Int4Weight, dim: number, rank: number, worldSize: number): Int4Weight;
export function shard(t: Tensor | Int4Weight, dim: number, rank: number, worldSize: number): Tensor | Int4Weight {
  if (isInt4(t)) return shardInt4(t as Int4Weight, dim, rank, worldSize);
  return shardTensor(t as Tensor, dim, rank, worldSize);
}

function shardTensor(t: Tensor, dim: number, rank: number, worldSize: number): Tensor {
  checkTensor(t, 'dist.shard: tensor');
  check(Number.isInteger(worldSize) && worldSize >= 1, 'ERR_LLMK_ARG', 'dist.shard: worldSize must be an integer >= 1');
  check(Number.isInteger(rank) && rank >= 0 && rank < worldSize, 'ERR_LLMK_ARG', () => `dist.shard: rank ${rank} is out of range for worldSize ${worldSize}`);
  check(t.ndim >= 1, 'ERR_LLMK_SHAPE', 'dist.shard: the tensor must have at least one dimension');
  const d = normDim(dim, t.ndim, 'dist.shard');
  const size = t.shape[d];
  check(size % worldSize === 0, 'ERR_LLMK_SHAPE', () => `dist.shard: dimension ${d} has size ${size}, not a multiple of worldSize ${worldSize}`);
  const part = size / worldSize;
  if (d === 0) {
    const v = t.narrow(0, rank * part, part);
    const c = v.to(t.device);
    v.dispose();
    return c;
  }
  const src = hostData(t);
  const outer = t.shape.slice(0, d).reduce((a, b) => a * b, 1);
  const inner = t.shape.slice(d + 1).reduce((a, b) => a * b, 1);
  const Ctor = (src as any).constructor as { new (n: number): TypedArray };
  const dst = new Ctor(outer * part * inner);
  for (let o = 0; o < outer; o++) {
    const from = (o * size + rank * part) * inner;
    (dst as any).set((src as any).subarray(from, from + part * inner), o * part * inner);
  }
  const shape = [...t.shape];
  shape[d] = part;
  return fromHost(dst, shape, t.dtype, t.device);
}

function shardInt4(w: Int4Weight, dim: number, rank: number, worldSize: number): Int4Weight {
  const q = quantModule();
  check(w instanceof q.Int4Weight, 'ERR_LLMK_ARG', 'dist.shard: not an Int4Weight');
  check(!w.disposed, 'ERR_LLMK_DISPOSED', 'dist.shard: the Int4Weight was used after dispose()');
  check(Number.isInteger(worldSize) && worldSize >= 1, 'ERR_LLMK_ARG', 'dist.shard: worldSize must be an integer >= 1');
  check(Number.isInteger(rank) && rank >= 0 && rank < worldSize, 'ERR_LLMK_ARG', () => `dist.shard: rank ${rank} is out of range for worldSize ${worldSize}`);
  const d = normDim(dim, 2, 'dist.shard');
  const c: Int4Weight = w.layout === 'prepared' ? w.toCanonical() : w;
  try {
    if (d === 0) {
      check(w.n % worldSize === 0, 'ERR_LLMK_SHAPE', () => `dist.shard: the weight has ${w.n} rows (N), not a multiple of worldSize ${worldSize}`);
      return new q.Int4Weight({
        layout: 'canonical', groupSize: w.groupSize, op: 'dist.shard',
        qweight: shardTensor(c.qweight, 0, rank, worldSize),
        scales: shardTensor(c.scales, 0, rank, worldSize),
        zeros: c.zeros ? shardTensor(c.zeros, 0, rank, worldSize) : null,
        perm: c.perm ? c.perm.to(c.perm.device) : null,
        invPerm: c.invPerm ? c.invPerm.to(c.invPerm.device) : null,
      });
    }
    check(!c.perm, 'ERR_LLMK_ARG', 'dist.shard: an act-order INT4 weight cannot be split along K (split it along N, or requantize without act-order)');
    const kp = w.k / worldSize;
    check(Number.isInteger(kp) && kp % w.groupSize === 0 && kp % 2 === 0, 'ERR_LLMK_SHAPE',
      () => `dist.shard: K = ${w.k} split ${worldSize} ways must leave a multiple of the group size ${w.groupSize} per rank`);
    return new q.Int4Weight({
      layout: 'canonical', groupSize: w.groupSize, op: 'dist.shard',
      qweight: shardTensor(c.qweight, 1, rank, worldSize),
      scales: shardTensor(c.scales, 1, rank, worldSize),
      zeros: c.zeros ? shardTensor(c.zeros, 1, rank, worldSize) : null,
      perm: null, invPerm: null,
    });
  } finally {
    if (c !== w) c.dispose();
  }
}

// [R, C] → [C, R] through host memory (one-time, for dense weights: matmul takes b as [K, N]).
function transpose2d(t: Tensor): Tensor {
  const [R, C] = t.shape;
  const src = hostData(t) as any;
  const dst = new src.constructor(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) dst[c * R + r] = src[r * C + c];
  return fromHost(dst, [C, R], t.dtype, t.device);
}

// Repeats a [N] bias into [M, N] (cached per M) so that the elementwise `add` can apply it.
class BiasCache {
  private rows = new Map<number, Tensor>();
  private host: TypedArray | null = null;
  constructor(readonly bias: Tensor) {}
  get(M: number): Tensor {
    let t = this.rows.get(M);
    if (!t) {
      this.host ??= hostData(this.bias);
      const N = this.bias.numel;
      const src = this.host as any;
      const dst = new src.constructor(M * N);
      for (let m = 0; m < M; m++) dst.set(src, m * N);
      t = fromHost(dst, [M, N], this.bias.dtype, this.bias.device);
      this.rows.set(M, t);
    }
    return t;
  }
  dispose(): void {
    for (const t of this.rows.values()) t.dispose();
    this.rows.clear();
  }
}

/** INT4 weights are recognised by shape (quant.Int4Weight: qweight, scales, n, k, groupSize). */
function isInt4(w: unknown): boolean {
  return !!w && typeof w === 'object' && !(w instanceof Tensor) && 'qweight' in (w as any) && 'scales' in (w as any) && 'groupSize' in (w as any);
}
type Int4Weight = import('../quant').Int4Weight;

function quantModule(): any {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../quant');
  } catch {
    check(false, 'ERR_LLMK_UNAVAILABLE', 'dist: INT4 shards need the quant module, which is not part of this build');
  }
}

interface Weight {
  kind: 'dense' | 'int4';
  n: number; // out features of the shard
  k: number; // in features of the shard
  wT?: Tensor; // dense: [k, n]
  q?: any; // int4 weight
  dtype?: DType;
}

// An INT4 shard in the kernel's layout for its device (prepared weights take the fast kernels).
function ownShard(w: Tensor | Int4Weight): Tensor | Int4Weight {
  if (!isInt4(w)) return w;
  const q = quantModule();
  const p = q.prepare(w);
  (w as Int4Weight).dispose();
  return p;
}

function prepareWeight(w: Tensor | any, what: string): Weight {
  if (isInt4(w)) {
    quantModule();
    return { kind: 'int4', n: w.n, k: w.k, q: w };
  }
  checkTensor(w, `${what}: weight`);
  check(w.ndim === 2, 'ERR_LLMK_SHAPE', () => `${what}: weight must be 2-D [out, in], got [${w.shape.join(', ')}]`);
  check(isFloating(w.dtype), 'ERR_LLMK_DTYPE', () => `${what}: a dense weight must be float32, float16 or bfloat16, got ${w.dtype}`);
  return { kind: 'dense', n: w.shape[0], k: w.shape[1], wT: transpose2d(w), dtype: w.dtype };
}

function linear(x: Tensor, w: Weight, what: string, bias?: Tensor): Tensor {
  checkTensor(x, `${what}: x`);
  check(x.ndim === 2, 'ERR_LLMK_SHAPE', () => `${what}: x must be 2-D [M, ${w.k}], got [${x.shape.join(', ')}]`);
  check(x.shape[1] === w.k, 'ERR_LLMK_SHAPE', () => `${what}: x has ${x.shape[1]} features, the shard expects ${w.k}`);
  if (w.kind === 'int4') return quantModule().matmul(x, w.q, bias ? { bias } : {});
  check(x.dtype === w.dtype, 'ERR_LLMK_DTYPE', () => `${what}: x is ${x.dtype}, the weight ${w.dtype}`);
  return matmul(x, w.wT!);
}

export interface ColumnParallelOptions {
  /** This rank's shard [N/p, K] (dense tensor or quant.Int4Weight). */
  weight: Tensor | any;
  /** This rank's bias shard [N/p]. */
  bias?: Tensor;
  /** All-gather the output into [M, N] (default false: [M, N/p], input of a RowParallelLinear). */
  gatherOutput?: boolean;
}

/** y = x · Wᵀ + b with W split by rows (output features) across ranks. */
export class ColumnParallelLinear {
  readonly inFeatures: number;
  /** Output features of the whole layer (N). */
  readonly outFeatures: number;
  /** Output features of this rank (N/p). */
  readonly outPerRank: number;
  readonly gatherOutput: boolean;
  /** @internal */ w: Weight;
  /** @internal An INT4 shard made by fromFull (freed by dispose). */ owned: any = null;
  private bias: BiasCache | null;

  constructor(readonly comm: Communicator, opts: ColumnParallelOptions) {
    check(opts && typeof opts === 'object', 'ERR_LLMK_ARG', 'ColumnParallelLinear: options object required');
    this.w = prepareWeight(opts.weight, 'ColumnParallelLinear');
    this.inFeatures = this.w.k;
    this.outPerRank = this.w.n;
    this.outFeatures = this.w.n * comm.worldSize;
    this.gatherOutput = !!opts.gatherOutput;
    if (opts.bias !== undefined) {
      checkTensor(opts.bias, 'ColumnParallelLinear: bias');
      check(opts.bias.numel === this.w.n, 'ERR_LLMK_SHAPE', () => `ColumnParallelLinear: bias must have ${this.w.n} elements (the shard's outputs), has ${opts.bias!.numel}`);
    }
    this.bias = opts.bias ? new BiasCache(opts.bias) : null;
  }

  /** Shards a full weight [N, K] (and bias [N]) for this rank. */
  static fromFull(comm: Communicator, opts: { weight: Tensor | Int4Weight; bias?: Tensor; gatherOutput?: boolean }): ColumnParallelLinear {
    const w = shard(opts.weight as any, 0, comm.rank, comm.worldSize) as Tensor | Int4Weight;
    const b = opts.bias ? shard(opts.bias, 0, comm.rank, comm.worldSize) : undefined;
    const l = new ColumnParallelLinear(comm, { weight: ownShard(w), bias: b, gatherOutput: opts.gatherOutput });
    l.owned = isInt4(w) ? l.w.q : null;
    if (!isInt4(w)) (w as Tensor).dispose();
    return l;
  }

  /** x [M, K] (the full input, the same on every rank) → [M, N/p], or [M, N] with gatherOutput. */
  async forward(x: Tensor): Promise<Tensor> {
    const int4Bias = this.w.kind === 'int4' && this.bias ? this.bias.bias : undefined;
    let y = linear(x, this.w, 'ColumnParallelLinear', int4Bias);
    if (this.bias && !int4Bias) {
      const yb = add(y, this.bias.get(x.shape[0]));
      y.dispose();
      y = yb;
    }
    if (!this.gatherOutput || this.comm.worldSize === 1) return y;
    const M = x.shape[0], n = this.outPerRank, p = this.comm.worldSize;
    const g = this.comm.allGather(y); // [p·M, n]: rank r's slice at rows r·M ..
    const dtype = y.dtype, device = y.device;
    y.dispose();
    if (M === 1) {
      const r = g.reshape([1, p * n]);
      g.dispose();
      return r;
    }
    // Interleave on the host: out[m, r·n + j] = g[r·M + m, j].
    const src = (await g.toArray({ raw: true })) as any;
    g.dispose();
    const dst = new src.constructor(M * p * n);
    for (let r = 0; r < p; r++)
      for (let m = 0; m < M; m++) dst.set(src.subarray((r * M + m) * n, (r * M + m + 1) * n), m * p * n + r * n);
    return fromHost(dst, [M, p * n], dtype, device);
  }

  dispose(): void {
    this.w.wT?.dispose();
    this.owned?.dispose();
    this.bias?.dispose();
  }
}

export interface RowParallelOptions {
  /** This rank's shard [N, K/p] (dense tensor or quant.Int4Weight). */
  weight: Tensor | any;
  /** The full bias [N], added once after the reduction. */
  bias?: Tensor;
  /** x is already split ([M, K/p], default true); false: x is the full [M, K] and is split here. */
  inputIsParallel?: boolean;
}

/** y = x · Wᵀ + b with W split by columns (input features) across ranks; all-reduce of the output. */
export class RowParallelLinear {
  /** Input features of the whole layer (K). */
  readonly inFeatures: number;
  /** Input features of this rank (K/p). */
  readonly inPerRank: number;
  readonly outFeatures: number;
  readonly inputIsParallel: boolean;
  /** @internal */ w: Weight;
  /** @internal An INT4 shard made by fromFull (freed by dispose). */ owned: any = null;
  private bias: BiasCache | null;

  constructor(readonly comm: Communicator, opts: RowParallelOptions) {
    check(opts && typeof opts === 'object', 'ERR_LLMK_ARG', 'RowParallelLinear: options object required');
    this.w = prepareWeight(opts.weight, 'RowParallelLinear');
    this.inPerRank = this.w.k;
    this.inFeatures = this.w.k * comm.worldSize;
    this.outFeatures = this.w.n;
    this.inputIsParallel = opts.inputIsParallel ?? true;
    if (opts.bias !== undefined) {
      checkTensor(opts.bias, 'RowParallelLinear: bias');
      check(opts.bias.numel === this.w.n, 'ERR_LLMK_SHAPE', () => `RowParallelLinear: bias must have ${this.w.n} elements, has ${opts.bias!.numel}`);
    }
    this.bias = opts.bias ? new BiasCache(opts.bias) : null;
  }

  /** Shards a full weight [N, K] by columns for this rank; the bias [N] stays whole. */
  static fromFull(comm: Communicator, opts: { weight: Tensor | Int4Weight; bias?: Tensor; inputIsParallel?: boolean }): RowParallelLinear {
    const w = shard(opts.weight as any, 1, comm.rank, comm.worldSize) as Tensor | Int4Weight;
    const l = new RowParallelLinear(comm, { weight: ownShard(w), bias: opts.bias, inputIsParallel: opts.inputIsParallel });
    l.owned = isInt4(w) ? l.w.q : null;
    if (!isInt4(w)) (w as Tensor).dispose();
    return l;
  }

  /** x [M, K/p] (or [M, K] when !inputIsParallel) → [M, N], the same on every rank. */
  async forward(x: Tensor): Promise<Tensor> {
    let xi = x;
    if (!this.inputIsParallel) {
      checkTensor(x, 'RowParallelLinear: x');
      check(x.ndim === 2 && x.shape[1] === this.inFeatures, 'ERR_LLMK_SHAPE',
        () => `RowParallelLinear: x must be [M, ${this.inFeatures}], got [${x.shape.join(', ')}]`);
      xi = shard(x, 1, this.comm.rank, this.comm.worldSize);
    }
    const y = linear(xi, this.w, 'RowParallelLinear');
    if (xi !== x) xi.dispose();
    this.comm.allReduce(y, { op: 'sum' });
    if (!this.bias) return y;
    const r = add(y, this.bias.get(y.shape[0]));
    y.dispose();
    return r;
  }

  dispose(): void {
    this.w.wT?.dispose();
    this.owned?.dispose();
    this.bias?.dispose();
  }
}
