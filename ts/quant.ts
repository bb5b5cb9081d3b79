/**
 * INT4 weight-only matmul (docs/architecture.md §4.3): quantise, import GPTQ / AWQ / MatMulNBits checkpoints,
 * prepare for a device, and multiply activations by the quantised weight.
 *
 * ## The canonical format
 * A linear layer's weight W[N,K] (N outputs, K inputs) with groups of `groupSize` consecutive inputs:
 * - `qweight` uint8 [N, K/2]: two 4-bit codes per byte, packed along K, the LOW nibble holds the EVEN k;
 * - `scales` [N, K/groupSize], float16, bfloat16 or float32;
 * - `zeros` uint8 [N, K/groupSize] (zero points, 0..16); absent = symmetric, zero point 8.
 * Value: W[n,k] = scales[n, g] · (code(n,k) − zeros[n, g]) with g = floor(k / groupSize).
 * Worked example: K = 4, groupSize = K, row n holds codes [9, 3, 8, 15], scale 0.5, no zeros:
 * qweight row = [0x39, 0xF8], W row = 0.5·[1, −5, 0, 7] = [0.5, −2.5, 0, 3.5].
 * This is ONNX Runtime MatMulNBits' meaning with unpacked zero points.
 *
 * An act-order weight (GPTQ `desc_act`) also carries `perm` (int32 [K]): the kernel's column j holds
 * the original input column perm[j]; `matmul` gathers x[:, perm] per call, `dequantize` undoes it.
 *
 * ## Prepared weights
 * `prepare(w, device)` makes the kernel's own layout on a device. On CUDA, for N % 16 == 0 and
 * K % 16 == 0, the codes are re-ordered into the tensor-core fragment order (16 rows × 64 k per
 * 512-byte block, so each lane's 16-byte load is its mma.m16n8k16 B fragments for four k16 steps),
 * scales and zeros are transposed to [G, N]. On the CPU, for N % 4 == 0 and K % 128 == 0, the rows of
 * the codes are interleaved four at a time by 64-byte chunks (one stream for a four-row kernel tile; same
 * shape [N, K/2], scales and zeros canonical). Other shapes keep the canonical layout. The layout is
 * opaque; `w.toCanonical()` gives the canonical weight back.
 * @module
 */
import { DeviceName, DeviceSpec, parseDevice, assertDeviceAvailable } from './device';
import { DType, dtypeId } from './dtype';
import { check } from './errors';
import { native } from './native';
import { Tensor, adopt, checkTensor, tensor } from './tensor';

/** Group sizes `quantize` accepts (any divisor-free choice is also allowed: groupSize = K). */
export const GROUP_SIZES = [32, 64, 128, 256] as const;

/** Layout of an {@link Int4Weight}'s tensors. */
export type Int4Layout = 'canonical' | 'prepared';

/** The parts of a canonical weight, as accepted by {@link fromCanonical}. */
export interface Int4Parts {
  /** uint8 [N, K/2], low nibble = even k. */
  qweight: Tensor;
  /** float16 / bfloat16 / float32 [N, K/groupSize]. */
  scales: Tensor;
  /** uint8 [N, K/groupSize]; omit for symmetric weights (zero point 8). */
  zeros?: Tensor | null;
  /** Group size (default: inferred as K / scales.shape[1]). */
  groupSize?: number;
  /** Act-order permutation, int32 [K] (kernel column j = original column perm[j]). */
  perm?: Tensor | null;
}

// Every tensor contract of this module is checked natively (native/src/ops/int4.cpp): here only what is
// JavaScript (is it a Tensor, an Int4Weight, an option object, an enum value).
const ADDON = () => native.int4;

/** @internal The fields an {@link Int4Weight} is made of; n, k and groupSize default to what the shapes say. */
export interface Int4Fields {
  layout: Int4Layout;
  qweight: Tensor;
  scales: Tensor;
  zeros: Tensor | null;
  perm: Tensor | null;
  invPerm: Tensor | null;
  n?: number;
  k?: number;
  groupSize?: number | null;
  experts?: number;
  /** The public op named in error messages (default 'quant.Int4Weight'). */
  op?: string;
}

/**
 * An INT4 weight W[N,K] with group-wise scales: canonical (the interchange format) or prepared for
 * a device. Owns its tensors: `dispose()` (or `using`) frees them.
 */
export class Int4Weight {
  /** Output features N. */
  readonly n: number;
  /** Input features K. */
  readonly k: number;
  readonly groupSize: number;
  readonly layout: Int4Layout;
  readonly qweight: Tensor;
  readonly scales: Tensor;
  readonly zeros: Tensor | null;
  /** Act-order permutation (int32 [K]) or null. */
  readonly perm: Tensor | null;
  /** Its inverse (int32 [K]) or null. */
  readonly invPerm: Tensor | null;
  /** Experts stacked in this weight by `stackExperts` (its n rows are that many blocks of n / experts), 0 if none. */
  readonly experts: number;
  /** @internal The native weight (contract checked once, when it was made) that the kernels take. */
  readonly handle: unknown;
  /** The tuned (not the canonical) layout: prepared for a GPU (N % 16 == K % 16 == 0) or the CPU (N % 4 == 0, K % 128 == 0). */
  private readonly tuned: boolean;

  /**
   * @internal Use quantize, fromCanonical, the importers or prepare. Checks the tensors' contract (natively)
   * and holds them; on an error the caller keeps them.
   */
  constructor(f: Int4Fields) {
    const [h, n, k, g, tuned] = ADDON().weight(f.qweight.handle, f.scales.handle, f.zeros?.handle ?? null,
      f.perm?.handle ?? null, f.invPerm?.handle ?? null, f.n ?? null, f.k ?? null, f.groupSize ?? null, f.layout === 'prepared', f.op);
    this.handle = h; this.n = n; this.k = k; this.groupSize = g; this.tuned = tuned;
    this.experts = f.experts ?? 0;
    this.layout = f.layout;
    this.qweight = f.qweight; this.scales = f.scales; this.zeros = f.zeros; this.perm = f.perm; this.invPerm = f.invPerm;
  }

  get device(): DeviceName { return this.qweight.device; }
  /** True when there are no zero points (zero point 8). */
  get symmetric(): boolean { return this.zeros === null; }
  /** Number of groups per row, K / groupSize. */
  get numGroups(): number { return this.k / this.groupSize; }
  get scaleDtype(): DType { return this.scales.dtype; }
  /** Bytes held on the device (codes + scales + zeros + permutations). */
  get nbytes(): number {
    return this.qweight.nbytes + this.scales.nbytes + (this.zeros?.nbytes ?? 0) + (this.perm?.nbytes ?? 0) + (this.invPerm?.nbytes ?? 0);
  }
  get disposed(): boolean { return this.qweight.disposed; }

  /** The canonical weight on the same device (a new weight; this one stays valid). */
  toCanonical(): Int4Weight {
    this.checkLive('toCanonical');
    const view = (t: Tensor | null) => (t ? t.reshape(t.shape) : null);
    const [q, s, z] = this.tuned
      ? adoptAll(ADDON().toCanonical(this.handle), this.device)
      : [view(this.qweight), view(this.scales), view(this.zeros)];  // already canonical: views of the same memory
    return owning({
      n: this.n, k: this.k, groupSize: this.groupSize, layout: 'canonical', qweight: q!, scales: s!, zeros: z,
      perm: view(this.perm), invPerm: view(this.invPerm), experts: this.experts,
    });
  }

  /** Frees the tensors (after queued work that uses them). A second call does nothing. */
  dispose(): void {
    ADDON().release(this.handle);
    this.qweight.dispose(); this.scales.dispose(); this.zeros?.dispose(); this.perm?.dispose(); this.invPerm?.dispose();
  }
  [Symbol.dispose](): void { this.dispose(); }

  toString(): string {
    return `Int4Weight(${this.n}x${this.k}, g=${this.groupSize}, ${this.symmetric ? 'symmetric' : 'zeros'}, ${this.layout}, ${this.device}${this.perm ? ', act-order' : ''})`;
  }

  /** @internal */
  checkLive(op: string): void {
    check(!this.disposed, 'ERR_LLMK_DISPOSED', `${op}: the Int4Weight was used after dispose()`);
  }
}

/** Tensors of a native op's results (handles, null for none; result i described in slot i) on `device`. */
function adoptAll(rs: (number | null)[], device: DeviceName): (Tensor | null)[] {
  return rs.map((r, i) => (r !== null ? adopt(r, device, i) : null));
}

/**
 * A weight made of tensors it takes over (fresh results, or views made for it): when their contract
 * does not hold, they are disposed and the error is thrown.
 */
function owning(f: Int4Fields): Int4Weight {
  try {
    return new Int4Weight(f);
  } catch (e) {
    for (const t of [f.qweight, f.scales, f.zeros, f.perm, f.invPerm]) t?.dispose();
    throw e;
  }
}

function checkWeight(w: unknown, op: string): asserts w is Int4Weight {
  check(w instanceof Int4Weight, 'ERR_LLMK_ARG', `${op}: w must be an Int4Weight (from quant.quantize, an importer or quant.prepare)`);
  w.checkLive(op);
}

/**
 * Wraps canonical parts (checked) as an {@link Int4Weight}. The weight takes views of the tensors;
 * dispose either independently. Async: an act-order `perm` is read back (without blocking) to check
 * that it is a permutation and to invert it.
 */
export async function fromCanonical(parts: Int4Parts): Promise<Int4Weight> {
  const op = 'quant.fromCanonical';
  check(parts !== null && typeof parts === 'object', 'ERR_LLMK_ARG', `${op}: expected { qweight, scales, zeros?, groupSize?, perm? }`);
  checkTensor(parts.qweight, `${op}: qweight`);
  checkTensor(parts.scales, `${op}: scales`);
  if (parts.zeros) checkTensor(parts.zeros, `${op}: zeros`);
  if (parts.perm) checkTensor(parts.perm, `${op}: perm`);
  const view = (t: Tensor | null | undefined) => (t ? t.reshape(t.shape) : null);
  const w = owning({
    layout: 'canonical', qweight: view(parts.qweight)!, scales: view(parts.scales)!, zeros: view(parts.zeros),
    perm: view(parts.perm), invPerm: null, groupSize: parts.groupSize ?? null, op,
  });
  if (!w.perm) return w;
  try {
    const inv = invertPermutation((await w.perm.toArray()) as Int32Array, op);
    const withInverse = owning({
      layout: 'canonical', qweight: w.qweight, scales: w.scales, zeros: w.zeros, perm: w.perm,
      invPerm: tensor(inv, { device: w.device }), groupSize: w.groupSize,
    });
    ADDON().release(w.handle);  // its tensors now belong to withInverse
    return withInverse;
  } catch (e) {
    w.dispose();
    throw e;
  }
}

function invertPermutation(p: Int32Array, op: string): Int32Array {
  const inv = new Int32Array(p.length).fill(-1);
  for (let j = 0; j < p.length; j++) {
    const v = p[j];
    check(Number.isInteger(v) && v >= 0 && v < p.length && inv[v] === -1, 'ERR_LLMK_ARG',
      () => `${op}: perm is not a permutation of 0..${p.length - 1} (entry ${j} = ${v})`);
    inv[v] = j;
  }
  return inv;
}

/** Options of {@link quantize}. */
export interface QuantizeOptions {
  /** 32, 64, 128 (default), 256 or K. */
  groupSize?: number;
  /** true (default): scale = max|w|/7, zero point 8; false: min/max with zero points. */
  symmetric?: boolean;
  /** Dtype of the scales (default: W's dtype). */
  scaleDtype?: DType;
}

/**
 * Round-to-nearest (ties to even) quantisation of W[N,K] per group of `groupSize` consecutive k,
 * on W's device. Symmetric: scale = max|w|/7, code = clamp(round(w/scale), −8, 7) + 8. Asymmetric: the
 * group's range widened to include 0, scale = (max − min)/15, zero = clamp(round(−min/scale), 0, 15),
 * code = clamp(round(w/scale) + zero, 0, 15). Scales are rounded to their dtype first and the codes use
 * the rounded scale, so |dequant − w| ≤ scale/2 (up to that rounding) for every element.
 */
export function quantize(w: Tensor, opts: QuantizeOptions = {}): Int4Weight {
  opts = opts ?? {};
  const op = 'quant.quantize';
  checkTensor(w, `${op}: w`);
  const symmetric = opts.symmetric ?? true;
  check(typeof symmetric === 'boolean', 'ERR_LLMK_ARG', `${op}: symmetric must be a boolean`);
  const sdt = dtypeId(opts.scaleDtype ?? w.dtype);
  const [q, s, z] = adoptAll(ADDON().quantize(w.handle, opts.groupSize ?? 128, symmetric, sdt), w.device);
  return owning({ layout: 'canonical', qweight: q!, scales: s!, zeros: z, perm: null, invPerm: null });
}

/**
 * The float weight W[N,K] = scale · (code − zero) in the original column order (act-order undone), on
 * the weight's device. dtype defaults to the scales' dtype.
 */
export function dequantize(w: Int4Weight, opts: { dtype?: DType } = {}): Tensor {
  opts = opts ?? {};
  checkWeight(w, 'quant.dequantize');
  return adopt(ADDON().dequantize(w.handle, dtypeId(opts.dtype ?? w.scales.dtype)), w.device);
}

/**
 * The weight in the kernel's own layout on `device` (copied there when needed): see the module notes.
 * Returns a new weight; `w` stays valid.
 */
export function prepare(w: Int4Weight, device?: DeviceSpec): Int4Weight {
  checkWeight(w, 'quant.prepare');
  const d = parseDevice(device ?? w.device);
  assertDeviceAvailable(d);
  const [q, s, z, perm, invPerm] = adoptAll(ADDON().prepare(w.handle, d.kind, d.index), d.name);
  return owning({
    n: w.n, k: w.k, groupSize: w.groupSize, layout: 'prepared', qweight: q!, scales: s!, zeros: z, perm, invPerm,
    experts: w.experts,
  });
}

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** [N], float32 / float16 / bfloat16, on x's device. */
  bias?: Tensor | null;
  /**
   * 'float' (default): exact float32 math on the dequantised weight. 'int8' (CPU only; a GPU tensor gives
   * ERR_LLMK_UNAVAILABLE): x is quantised per block of k (the largest power of two ≤ 256 dividing groupSize) to int8 (scale max|x|/127) and
   * multiplied with integer dot products, as ONNX Runtime's MatMulNBits accuracy_level 4; faster, with the
   * error bound given in the README.
   */
  compute?: 'float' | 'int8';
}

/**
 * y[M,N] = x[M,K] · dequant(W)ᵀ + bias, in x's dtype (float16, bfloat16 or float32) with float32
 * accumulation. x and the weight must be on the same device (`prepare(w, x.device)` first — prepared
 * weights take the fast kernels). Every M ≥ 0 works (M = 0 gives an empty [0, N]).
 */
export function matmul<D extends DType>(x: Tensor<D>, w: Int4Weight, opts: MatmulOptions = {}): Tensor<D> {
  opts = opts ?? {};
  const op = 'quant.matmul';
  checkTensor(x, `${op}: x`);
  checkWeight(w, op);
  const compute = opts.compute ?? 'float';
  check(compute === 'float' || compute === 'int8', 'ERR_LLMK_ARG',
    () => `${op}: compute must be 'float' or 'int8', got ${String(compute)}`);
  const bias = opts.bias ?? null;
  if (bias !== null) checkTensor(bias, `${op}: bias`);
  return adopt(ADDON().matmul(x.handle, w.handle, bias?.handle ?? null, compute === 'int8'), x.device);
}

/** Which kernel `matmul(x, w)` runs: 'cpu', 'general', or a tensor-core tile configuration ('mma16n128', 'mma64', 'mma128w8', …), for benchmarks and tests. */
export function matmulPath(x: Tensor, w: Int4Weight): string {
  checkTensor(x, 'quant.matmulPath: x');
  checkWeight(w, 'quant.matmulPath');
  return ADDON().matmulPath(x.handle, w.handle);
}

// ---------------------------------------------------------------------------------------- importers

/** The data of a tensor whose contract the native layer checked (an awaited read-back, never blocking). */
async function host<A>(t: Tensor): Promise<A> { return (await t.toArray()) as unknown as A; }

/** Builds a canonical weight from host arrays (codes q[n*K+k], zero z[n*G+g] or null) on `device`. */
function buildCanonical(n: number, k: number, groupSize: number, codes: Uint8Array, scales: Float32Array, scaleDtype: DType,
  zeros: Uint8Array | null, perm: Int32Array | null, device: DeviceName): Int4Weight {
  const G = k / groupSize;
  const packed = new Uint8Array(n * (k / 2));
  for (let i = 0; i < packed.length; i++) packed[i] = codes[2 * i] | (codes[2 * i + 1] << 4);
  const symmetric = zeros === null || zeros.every((z) => z === 8);
  let invPerm: Int32Array | null = null;
  if (perm) invPerm = invertPermutation(perm, 'quant: act-order');
  return owning({
    n, k, groupSize, layout: 'canonical',
    qweight: tensor(packed, { shape: [n, k / 2], device }),
    scales: tensor(scales, { shape: [n, G], dtype: scaleDtype, device }),
    zeros: symmetric ? null : tensor(zeros!, { shape: [n, G], device }),
    perm: perm ? tensor(perm, { device }) : null,
    invPerm: invPerm ? tensor(invPerm, { device }) : null,
  });
}

/** Options of {@link fromGptq}. */
export interface GptqTensors {
  /** int32 [K/8, N]: word (i, n) holds k = 8i..8i+7, k = 8i+j in bits 4j..4j+3. */
  qweight: Tensor;
  /** int32 [G, ceil(N/8)]: word (g, c) holds the zero points of n = 8c..8c+7, n = 8c+j in bits 4j. */
  qzeros: Tensor;
  /** [G, N] float. */
  scales: Tensor;
  /** int32 [K]: the group of each input column; non-monotonic = act-order (desc_act). */
  gIdx?: Tensor | null;
  /** 'v1' (AutoGPTQ; stored zero = zero − 1, the default) or 'v2' (GPTQModel; exact zeros). */
  format?: 'v1' | 'v2';
  /** Where the weight goes (default: qweight's device). */
  device?: DeviceSpec;
}

/**
 * Imports a GPTQ 4-bit linear layer (AutoGPTQ / GPTQModel checkpoint tensors) as a canonical weight.
 * W[n,k] = scales[g, n] · (q[k,n] − zero[g,n]) with g = gIdx[k] (default floor(k / groupSize)).
 * Act-order (gIdx not equal to floor(k/groupSize)) becomes a one-time K permutation of the weight
 * (groups made contiguous) plus a per-call permutation of x inside `matmul`. Reads the tensors back
 * to the host, hence async.
 */
export async function fromGptq(t: GptqTensors): Promise<Int4Weight> {
  const op = 'quant.fromGptq';
  check(t !== null && typeof t === 'object', 'ERR_LLMK_ARG', `${op}: expected { qweight, qzeros, scales, gIdx?, format? }`);
  const format = t.format ?? 'v1';
  check(format === 'v1' || format === 'v2', 'ERR_LLMK_ARG', () => `${op}: format must be 'v1' or 'v2', got ${String(format)}`);
  checkTensor(t.qweight, `${op}: qweight`);
  checkTensor(t.qzeros, `${op}: qzeros`);
  checkTensor(t.scales, `${op}: scales`);
  if (t.gIdx) checkTensor(t.gIdx, `${op}: gIdx`);
  const [n, k, groupSize] = ADDON().gptqDims(t.qweight.handle, t.qzeros.handle, t.scales.handle, t.gIdx?.handle ?? null);
  const G = k / groupSize, nz = Math.ceil(n / 8);
  const device = parseDevice(t.device ?? t.qweight.device).name;
  const qw = await host<Int32Array>(t.qweight);
  const qz = await host<Int32Array>(t.qzeros);
  const sc = await host<Float32Array>(t.scales);
  const gIdx = t.gIdx ? await host<Int32Array>(t.gIdx) : null;
  // Column order: identity unless gIdx groups are not the contiguous default.
  let perm: Int32Array | null = null;
  if (gIdx) {
    const counts = new Int32Array(G);
    let identity = true;
    for (let kk = 0; kk < k; kk++) {
      const g = gIdx[kk];
      check(Number.isInteger(g) && g >= 0 && g < G, 'ERR_LLMK_ARG', () => `${op}: gIdx[${kk}] = ${g} is outside [0, ${G})`);
      counts[g]++;
      if (g !== Math.floor(kk / groupSize)) identity = false;
    }
    for (let g = 0; g < G; g++)
      check(counts[g] === groupSize, 'ERR_LLMK_ARG', () => `${op}: group ${g} has ${counts[g]} columns in gIdx, expected ${groupSize}`);
    if (!identity) {
      perm = new Int32Array(k);
      const next = new Int32Array(G);
      for (let g = 0; g < G; g++) next[g] = g * groupSize;
      for (let kk = 0; kk < k; kk++) perm[next[gIdx[kk]]++] = kk;  // stable: ascending k within a group
    }
  }
  const codes = new Uint8Array(n * k);
  for (let j = 0; j < k; j++) {
    const kk = perm ? perm[j] : j;
    const row = (kk >> 3) * n, shift = (kk & 7) * 4;
    for (let nn = 0; nn < n; nn++) codes[nn * k + j] = (qw[row + nn] >>> shift) & 15;
  }
  const scales = new Float32Array(n * G), zeros = new Uint8Array(n * G);
  const off = format === 'v1' ? 1 : 0;
  for (let g = 0; g < G; g++)
    for (let nn = 0; nn < n; nn++) {
      scales[nn * G + g] = sc[g * n + nn];
      zeros[nn * G + g] = ((qz[g * nz + (nn >> 3)] >>> ((nn & 7) * 4)) & 15) + off;
    }
  return buildCanonical(n, k, groupSize, codes, scales, t.scales.dtype, zeros, perm, device);
}

/** AWQ packs 8 columns per int32 in this order: nibble i holds column 8c + AWQ_ORDER[i]. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** Options of {@link fromAwq}. */
export interface AwqTensors {
  /** int32 [K, N/8], packed along N in {@link AWQ_ORDER}. */
  qweight: Tensor;
  /** int32 [G, N/8], same packing (exact zero points). */
  qzeros: Tensor;
  /** [G, N] float. */
  scales: Tensor;
  device?: DeviceSpec;
}

/** Imports an AWQ (GEMM layout) 4-bit linear layer: W[n,k] = scales[g,n] · (q[k,n] − zero[g,n]). Async (host read-back). */
export async function fromAwq(t: AwqTensors): Promise<Int4Weight> {
  const op = 'quant.fromAwq';
  check(t !== null && typeof t === 'object', 'ERR_LLMK_ARG', `${op}: expected { qweight, qzeros, scales }`);
  checkTensor(t.qweight, `${op}: qweight`);
  checkTensor(t.qzeros, `${op}: qzeros`);
  checkTensor(t.scales, `${op}: scales`);
  const [n, k, groupSize] = ADDON().awqDims(t.qweight.handle, t.qzeros.handle, t.scales.handle);
  const G = k / groupSize, n8 = n / 8;
  const device = parseDevice(t.device ?? t.qweight.device).name;
  const qw = await host<Int32Array>(t.qweight);
  const qz = await host<Int32Array>(t.qzeros);
  const sc = await host<Float32Array>(t.scales);
  const shiftOf = new Int32Array(8);
  AWQ_ORDER.forEach((col, i) => { shiftOf[col] = 4 * i; });
  const codes = new Uint8Array(n * k);
  for (let kk = 0; kk < k; kk++)
    for (let nn = 0; nn < n; nn++) codes[nn * k + kk] = (qw[kk * n8 + (nn >> 3)] >>> shiftOf[nn & 7]) & 15;
  const scales = new Float32Array(n * G), zeros = new Uint8Array(n * G);
  for (let g = 0; g < G; g++)
    for (let nn = 0; nn < n; nn++) {
      scales[nn * G + g] = sc[g * n + nn];
      zeros[nn * G + g] = (qz[g * n8 + (nn >> 3)] >>> shiftOf[nn & 7]) & 15;
    }
  return buildCanonical(n, k, groupSize, codes, scales, t.scales.dtype, zeros, null, device);
}

/** Options of {@link fromMatMulNBits}. */
export interface MatMulNBitsTensors {
  /** uint8 [N, ceil(K/blockSize), blockSize/2] (or any shape with that many bytes): codes low nibble first along K. */
  b: Tensor;
  /** [N, ceil(K/blockSize)] or [N·ceil(K/blockSize)] float. */
  scales: Tensor;
  /** Optional: uint8 packed 4-bit [N·ceil(ceil(K/blockSize)/2)] (low nibble first), or unpacked float [N·blocks]; default 8. */
  zeroPoints?: Tensor | null;
  /** The node's attributes K, N, block_size (bits must be 4). */
  k: number;
  n: number;
  blockSize: number;
  bits?: number;
  device?: DeviceSpec;
}

/** Imports an ONNX Runtime com.microsoft.MatMulNBits weight (bits = 4). K must be a multiple of blockSize. Async. */
export async function fromMatMulNBits(t: MatMulNBitsTensors): Promise<Int4Weight> {
  const op = 'quant.fromMatMulNBits';
  check(t !== null && typeof t === 'object', 'ERR_LLMK_ARG', `${op}: expected { b, scales, zeroPoints?, k, n, blockSize }`);
  checkTensor(t.b, `${op}: b`);
  checkTensor(t.scales, `${op}: scales`);
  if (t.zeroPoints) checkTensor(t.zeroPoints, `${op}: zeroPoints`);
  const [n, k, blockSize] = ADDON().matmulNBitsDims(t.b.handle, t.scales.handle, t.zeroPoints?.handle ?? null, t.k, t.n,
    t.blockSize, t.bits ?? 4);
  const blocks = k / blockSize;
  const device = parseDevice(t.device ?? t.b.device).name;
  const bq = await host<Uint8Array>(t.b);
  const sc = await host<Float32Array>(t.scales);
  let zeros: Uint8Array | null = null;
  if (t.zeroPoints) {
    zeros = new Uint8Array(n * blocks);
    if (t.zeroPoints.dtype === 'uint8') {  // packed, two per byte (the native layer checked the size)
      const per = Math.ceil(blocks / 2);
      const zp = await host<Uint8Array>(t.zeroPoints);
      for (let nn = 0; nn < n; nn++)
        for (let b = 0; b < blocks; b++) zeros[nn * blocks + b] = (zp[nn * per + (b >> 1)] >> ((b & 1) * 4)) & 15;
    } else {
      const zp = await host<Float32Array>(t.zeroPoints);
      for (let i = 0; i < zp.length; i++) {
        check(Number.isInteger(zp[i]) && zp[i] >= 0 && zp[i] <= 16, 'ERR_LLMK_ARG',
          () => `${op}: float zero point ${zp[i]} at ${i} is not an integer in [0, 16]`);
        zeros[i] = zp[i];
      }
    }
  }
  const codes = new Uint8Array(n * k);
  for (let i = 0; i < bq.length; i++) { codes[2 * i] = bq[i] & 15; codes[2 * i + 1] = bq[i] >> 4; }
  return buildCanonical(n, k, blockSize, codes, sc, t.scales.dtype, zeros, null, device);
}


export { stackExperts } from './quant_stack';
