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
 * scales and zeros are transposed to [G, N]. Elsewhere (the CPU, other shapes) it is the canonical
 * layout. The layout is opaque; `w.toCanonical()` gives the canonical weight back.
 * @module
 */
import { DeviceName, DeviceSpec, parseDevice, assertDeviceAvailable } from './device';
import { DType, isFloating, dtypeId } from './dtype';
import { check } from './errors';
import { native } from './native';
import { Tensor, checkTensor, tensor } from './tensor';

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

const ADDON = () => native.int4;

function checkGroup(k: number, groupSize: number, op: string): void {
  check(Number.isInteger(groupSize) && groupSize > 0, 'ERR_LLMK_ARG', () => `${op}: groupSize must be a positive integer, got ${groupSize}`);
  check((GROUP_SIZES as readonly number[]).includes(groupSize) || groupSize === k, 'ERR_LLMK_ARG',
    () => `${op}: groupSize must be 32, 64, 128, 256 or k (${k}), got ${groupSize}`);
  check(k % groupSize === 0, 'ERR_LLMK_SHAPE', () => `${op}: k = ${k} is not a multiple of groupSize ${groupSize}`);
  check(k % 2 === 0, 'ERR_LLMK_SHAPE', () => `${op}: k must be even (two 4-bit codes per byte), got ${k}`);
}

function shapeIs(t: Tensor, want: number[]): boolean {
  return t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
}
function checkShapeIs(t: Tensor, want: number[], what: string): void {
  check(shapeIs(t, want), 'ERR_LLMK_SHAPE', () => `${what} must have shape [${want.join(', ')}], got [${t.shape.join(', ')}]`);
}

/** True when `prepare` on this device and shape gives the tuned (non-canonical) layout. */
function tunedLayout(device: DeviceName, n: number, k: number): boolean {
  return device !== 'cpu' && n > 0 && n % 16 === 0 && k % 16 === 0;
}
function preparedQBytes(n: number, k: number): number { return (n / 16) * Math.ceil(k / 64) * 512; }

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

  /** @internal Use quantize, fromCanonical, the importers or prepare. */
  constructor(f: { n: number; k: number; groupSize: number; layout: Int4Layout; qweight: Tensor; scales: Tensor;
    zeros: Tensor | null; perm: Tensor | null; invPerm: Tensor | null; experts?: number }) {
    this.experts = f.experts ?? 0;
    this.n = f.n; this.k = f.k; this.groupSize = f.groupSize; this.layout = f.layout;
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
    const G = this.numGroups;
    if (this.layout === 'canonical') {
      // Already canonical: a new weight viewing the same memory.
      return new Int4Weight({
        n: this.n, k: this.k, groupSize: this.groupSize, layout: 'canonical',
        qweight: this.qweight.reshape([this.n, this.k / 2]), scales: this.scales.reshape([this.n, G]),
        zeros: this.zeros ? this.zeros.reshape([this.n, G]) : null,
        perm: this.perm ? this.perm.reshape([this.k]) : null,
        invPerm: this.invPerm ? this.invPerm.reshape([this.k]) : null, experts: this.experts,
      });
    }
    const [q, s, z] = ADDON().toCanonical(this.qweight.handle, this.scales.handle, this.zeros?.handle ?? null, this.n, this.k, this.groupSize);
    return new Int4Weight({
      n: this.n, k: this.k, groupSize: this.groupSize, layout: 'canonical',
      qweight: new Tensor(q, [this.n, this.k / 2], 'uint8', this.device),
      scales: new Tensor(s, [this.n, G], this.scales.dtype, this.device),
      zeros: z ? new Tensor(z, [this.n, G], 'uint8', this.device) : null,
      perm: this.perm ? this.perm.reshape([this.k]) : null,
      invPerm: this.invPerm ? this.invPerm.reshape([this.k]) : null, experts: this.experts,
    });
  }

  /** Frees the tensors (after queued work that uses them). A second call does nothing. */
  dispose(): void {
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

function checkWeight(w: unknown, op: string): asserts w is Int4Weight {
  check(w instanceof Int4Weight, 'ERR_LLMK_ARG', `${op}: w must be an Int4Weight (from quant.quantize, an importer or quant.prepare)`);
  w.checkLive(op);
}

/**
 * Wraps canonical parts (validated) as an {@link Int4Weight}. The weight takes views of the tensors;
 * dispose either independently.
 */
export function fromCanonical(parts: Int4Parts): Int4Weight {
  const op = 'quant.fromCanonical';
  check(parts !== null && typeof parts === 'object', 'ERR_LLMK_ARG', `${op}: expected { qweight, scales, zeros?, groupSize? }`);
  checkTensor(parts.qweight, `${op}: qweight`);
  checkTensor(parts.scales, `${op}: scales`);
  const { qweight, scales } = parts;
  check(qweight.dtype === 'uint8', 'ERR_LLMK_DTYPE', () => `${op}: qweight must be uint8, got ${qweight.dtype}`);
  check(isFloating(scales.dtype), 'ERR_LLMK_DTYPE', () => `${op}: scales must be float32, float16 or bfloat16, got ${scales.dtype}`);
  check(qweight.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: qweight must be 2-D [N, K/2], got [${qweight.shape.join(', ')}]`);
  check(scales.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: scales must be 2-D [N, K/groupSize], got [${scales.shape.join(', ')}]`);
  const n = qweight.shape[0], k = qweight.shape[1] * 2;
  check(k > 0, 'ERR_LLMK_SHAPE', `${op}: qweight must have at least one byte per row`);
  check(scales.shape[0] === n && scales.shape[1] > 0, 'ERR_LLMK_SHAPE',
    () => `${op}: scales must have shape [${n}, K/groupSize], got [${scales.shape.join(', ')}]`);
  const groupSize = parts.groupSize ?? k / scales.shape[1];
  check(Number.isInteger(groupSize), 'ERR_LLMK_SHAPE', () => `${op}: k = ${k} is not a multiple of scales.shape[1] = ${scales.shape[1]}`);
  checkGroup(k, groupSize, op);
  const G = k / groupSize;
  checkShapeIs(scales, [n, G], `${op}: scales`);
  const dev = qweight.device;
  check(scales.device === dev, 'ERR_LLMK_DEVICE', () => `${op}: scales are on ${scales.device} but qweight is on ${dev}`);
  let zeros: Tensor | null = null;
  if (parts.zeros) {
    checkTensor(parts.zeros, `${op}: zeros`);
    check(parts.zeros.dtype === 'uint8', 'ERR_LLMK_DTYPE', () => `${op}: zeros must be uint8, got ${parts.zeros!.dtype}`);
    checkShapeIs(parts.zeros, [n, G], `${op}: zeros`);
    check(parts.zeros.device === dev, 'ERR_LLMK_DEVICE', () => `${op}: zeros are on ${parts.zeros!.device} but qweight is on ${dev}`);
    zeros = parts.zeros.reshape([n, G]);
  }
  let perm: Tensor | null = null, invPerm: Tensor | null = null;
  if (parts.perm) {
    checkTensor(parts.perm, `${op}: perm`);
    check(parts.perm.dtype === 'int32', 'ERR_LLMK_DTYPE', () => `${op}: perm must be int32, got ${parts.perm!.dtype}`);
    checkShapeIs(parts.perm, [k], `${op}: perm`);
    const p = parts.perm.toArraySync() as Int32Array;
    const inv = invertPermutation(p, op);
    perm = tensor(p, { device: dev });
    invPerm = tensor(inv, { device: dev });
  }
  return new Int4Weight({ n, k, groupSize, layout: 'canonical', qweight: qweight.reshape([n, k / 2]), scales: scales.reshape([n, G]), zeros, perm, invPerm });
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
  check(isFloating(w.dtype), 'ERR_LLMK_DTYPE', () => `${op}: w must be float32, float16 or bfloat16, got ${w.dtype}`);
  check(w.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: w must be 2-D [N, K], got [${w.shape.join(', ')}]`);
  const [n, k] = w.shape;
  const groupSize = opts.groupSize ?? 128;
  checkGroup(k, groupSize, op);
  const symmetric = opts.symmetric ?? true;
  check(typeof symmetric === 'boolean', 'ERR_LLMK_ARG', `${op}: symmetric must be a boolean`);
  const sdt = opts.scaleDtype ?? w.dtype;
  check(isFloating(sdt), 'ERR_LLMK_DTYPE', () => `${op}: scaleDtype must be float32, float16 or bfloat16, got ${sdt}`);
  const [q, s, z] = ADDON().quantize(w.handle, groupSize, symmetric, dtypeId(sdt));
  const G = k / groupSize, dev = w.device;
  return new Int4Weight({
    n, k, groupSize, layout: 'canonical',
    qweight: new Tensor(q, [n, k / 2], 'uint8', dev), scales: new Tensor(s, [n, G], sdt, dev),
    zeros: z ? new Tensor(z, [n, G], 'uint8', dev) : null, perm: null, invPerm: null,
  });
}

/**
 * The float weight W[N,K] = scale · (code − zero) in the original column order (act-order undone), on
 * the weight's device. dtype defaults to the scales' dtype.
 */
export function dequantize(w: Int4Weight, opts: { dtype?: DType } = {}): Tensor {
  opts = opts ?? {};
  const op = 'quant.dequantize';
  checkWeight(w, op);
  const dtype = opts.dtype ?? w.scales.dtype;
  check(isFloating(dtype), 'ERR_LLMK_DTYPE', () => `${op}: dtype must be float32, float16 or bfloat16, got ${dtype}`);
  const canon = w.layout === 'prepared' && tunedLayout(w.device, w.n, w.k) ? w.toCanonical() : null;
  try {
    const c = canon ?? w;
    const h = ADDON().dequantize(c.qweight.handle, c.scales.handle, c.zeros?.handle ?? null, w.n, w.k, w.groupSize, dtypeId(dtype));
    const out = new Tensor(h, [w.n, w.k], dtype, w.device);
    if (!w.invPerm) return out;
    try {
      return new Tensor(ADDON().permuteColumns(out.handle, w.invPerm.handle), [w.n, w.k], dtype, w.device);
    } finally {
      out.dispose();
    }
  } finally {
    canon?.dispose();
  }
}

/**
 * The weight in the kernel's own layout on `device` (copied there when needed): see the module notes.
 * Returns a new weight; `w` stays valid.
 */
export function prepare(w: Int4Weight, device?: DeviceSpec): Int4Weight {
  const op = 'quant.prepare';
  checkWeight(w, op);
  const d = parseDevice(device ?? w.device);
  assertDeviceAvailable(d);
  const c = w.layout === 'prepared' ? w.toCanonical() : null;
  try {
    const src = c ?? w;
    const [q, s, z] = ADDON().prepare(src.qweight.handle, src.scales.handle, src.zeros?.handle ?? null, w.n, w.k, w.groupSize, d.kind, d.index);
    const G = w.numGroups, tuned = tunedLayout(d.name, w.n, w.k);
    return new Int4Weight({
      n: w.n, k: w.k, groupSize: w.groupSize, layout: 'prepared',
      qweight: new Tensor(q, tuned ? [preparedQBytes(w.n, w.k)] : [w.n, w.k / 2], 'uint8', d.name),
      scales: new Tensor(s, tuned ? [G, w.n] : [w.n, G], w.scales.dtype, d.name),
      zeros: z ? new Tensor(z, tuned ? [G, w.n] : [w.n, G], 'uint8', d.name) : null,
      perm: w.perm ? w.perm.to(d.name) : null,
      invPerm: w.invPerm ? w.invPerm.to(d.name) : null, experts: w.experts,
    });
  } finally {
    c?.dispose();
  }
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
  check(isFloating(x.dtype), 'ERR_LLMK_DTYPE', () => `${op}: x must be float32, float16 or bfloat16, got ${x.dtype}`);
  check(x.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: x must be 2-D [M, K], got [${x.shape.join(', ')}]`);
  check(x.shape[1] === w.k, 'ERR_LLMK_SHAPE', () => `${op}: x has ${x.shape[1]} columns but the weight has k = ${w.k}`);
  check(x.device === w.device, 'ERR_LLMK_DEVICE',
    () => `${op}: x is on ${x.device} but the weight is on ${w.device} (use quant.prepare(w, '${x.device}'))`);
  const compute = opts.compute ?? 'float';
  check(compute === 'float' || compute === 'int8', 'ERR_LLMK_ARG',
    () => `${op}: compute must be 'float' or 'int8', got ${String(compute)}`);
  const bias = opts.bias ?? null;
  if (bias !== null) {
    checkTensor(bias, `${op}: bias`);
    check(isFloating(bias.dtype), 'ERR_LLMK_DTYPE', () => `${op}: bias must be float32, float16 or bfloat16, got ${bias.dtype}`);
    check(bias.ndim === 1 && bias.shape[0] === w.n, 'ERR_LLMK_SHAPE',
      () => `${op}: bias must have shape [${w.n}], got [${bias.shape.join(', ')}]`);
    check(bias.device === x.device, 'ERR_LLMK_DEVICE', () => `${op}: bias is on ${bias.device} but x is on ${x.device}`);
  }
  const h = ADDON().matmul(x.handle, w.qweight.handle, w.scales.handle, w.zeros?.handle ?? null, w.perm?.handle ?? null,
    bias?.handle ?? null, w.n, w.k, w.groupSize, w.layout === 'prepared', compute === 'int8');
  return new Tensor(h, [x.shape[0], w.n], x.dtype, x.device);
}

/** Which kernel `matmul(x, w)` runs: 'cpu', 'general', or a tensor-core tile configuration ('mma16n128', 'mma64', 'mma128w8', …), for benchmarks and tests. */
export function matmulPath(x: Tensor, w: Int4Weight): string {
  checkTensor(x, 'quant.matmulPath: x');
  checkWeight(w, 'quant.matmulPath');
  return ADDON().matmulPath(x.handle, w.n, w.k, w.layout === 'prepared', w.perm !== null);
}

// ---------------------------------------------------------------------------------------- importers

type IntArray = Int32Array | Uint8Array;

async function hostInts(t: Tensor, dtype: DType, what: string): Promise<IntArray> {
  checkTensor(t, what);
  check(t.dtype === dtype, 'ERR_LLMK_DTYPE', () => `${what} must be ${dtype}, got ${t.dtype}`);
  return (await t.toArray()) as IntArray;
}
async function hostFloats(t: Tensor, what: string): Promise<Float32Array> {
  checkTensor(t, what);
  check(isFloating(t.dtype), 'ERR_LLMK_DTYPE', () => `${what} must be float32, float16 or bfloat16, got ${t.dtype}`);
  return (await t.toArray()) as Float32Array;
}

/** Builds a canonical weight from host arrays (codes q[n*K+k], zero z[n*G+g] or null) on `device`. */
function buildCanonical(n: number, k: number, groupSize: number, codes: Uint8Array, scales: Float32Array, scaleDtype: DType,
  zeros: Uint8Array | null, perm: Int32Array | null, device: DeviceName): Int4Weight {
  const G = k / groupSize;
  const packed = new Uint8Array(n * (k / 2));
  for (let i = 0; i < packed.length; i++) packed[i] = codes[2 * i] | (codes[2 * i + 1] << 4);
  const symmetric = zeros === null || zeros.every((z) => z === 8);
  let invPerm: Int32Array | null = null;
  if (perm) invPerm = invertPermutation(perm, 'quant: act-order');
  return new Int4Weight({
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
  check(t.qweight.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: qweight must be 2-D [K/8, N], got [${t.qweight.shape.join(', ')}]`);
  const k = t.qweight.shape[0] * 8, n = t.qweight.shape[1];
  check(t.scales.ndim === 2 && t.scales.shape[1] === n && t.scales.shape[0] > 0, 'ERR_LLMK_SHAPE',
    () => `${op}: scales must have shape [G, ${n}], got [${t.scales.shape.join(', ')}]`);
  const G = t.scales.shape[0];
  check(k % G === 0, 'ERR_LLMK_SHAPE', () => `${op}: K = ${k} is not a multiple of the ${G} groups`);
  const groupSize = k / G;
  checkGroup(k, groupSize, op);
  const nz = Math.ceil(n / 8);
  checkShapeIs(t.qzeros, [G, nz], `${op}: qzeros`);
  const device = parseDevice(t.device ?? t.qweight.device).name;
  const qw = await hostInts(t.qweight, 'int32', `${op}: qweight`) as Int32Array;
  const qz = await hostInts(t.qzeros, 'int32', `${op}: qzeros`) as Int32Array;
  const sc = await hostFloats(t.scales, `${op}: scales`);
  let gIdx: Int32Array | null = null;
  if (t.gIdx) {
    checkShapeIs(t.gIdx, [k], `${op}: gIdx`);
    gIdx = await hostInts(t.gIdx, 'int32', `${op}: gIdx`) as Int32Array;
  }
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
  check(t.qweight.ndim === 2, 'ERR_LLMK_SHAPE', () => `${op}: qweight must be 2-D [K, N/8], got [${t.qweight.shape.join(', ')}]`);
  const k = t.qweight.shape[0], n8 = t.qweight.shape[1], n = n8 * 8;
  check(t.scales.ndim === 2 && t.scales.shape[1] === n && t.scales.shape[0] > 0, 'ERR_LLMK_SHAPE',
    () => `${op}: scales must have shape [G, ${n}], got [${t.scales.shape.join(', ')}]`);
  const G = t.scales.shape[0];
  check(k % G === 0, 'ERR_LLMK_SHAPE', () => `${op}: K = ${k} is not a multiple of the ${G} groups`);
  const groupSize = k / G;
  checkGroup(k, groupSize, op);
  checkShapeIs(t.qzeros, [G, n8], `${op}: qzeros`);
  const device = parseDevice(t.device ?? t.qweight.device).name;
  const qw = await hostInts(t.qweight, 'int32', `${op}: qweight`) as Int32Array;
  const qz = await hostInts(t.qzeros, 'int32', `${op}: qzeros`) as Int32Array;
  const sc = await hostFloats(t.scales, `${op}: scales`);
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
  check((t.bits ?? 4) === 4, 'ERR_LLMK_ARG', () => `${op}: only bits = 4 is supported, got ${t.bits}`);
  const { k, n, blockSize } = t;
  check(Number.isInteger(k) && k > 0 && Number.isInteger(n) && n >= 0, 'ERR_LLMK_ARG', `${op}: k and n must be integers (k > 0)`);
  check(Number.isInteger(blockSize) && blockSize >= 16 && (blockSize & (blockSize - 1)) === 0, 'ERR_LLMK_ARG',
    () => `${op}: blockSize must be a power of two >= 16, got ${blockSize}`);
  check(k % blockSize === 0, 'ERR_LLMK_SHAPE', () => `${op}: K = ${k} is not a multiple of blockSize ${blockSize} (padded last blocks are not supported)`);
  checkGroup(k, blockSize, op);
  const blocks = k / blockSize;
  checkTensor(t.b, `${op}: b`);
  checkTensor(t.scales, `${op}: scales`);
  check(t.b.numel === n * blocks * (blockSize / 2), 'ERR_LLMK_SHAPE',
    () => `${op}: b must hold N·blocks·blockSize/2 = ${n * blocks * (blockSize / 2)} bytes, got [${t.b.shape.join(', ')}]`);
  check(t.scales.numel === n * blocks, 'ERR_LLMK_SHAPE', () => `${op}: scales must hold N·blocks = ${n * blocks} values, got [${t.scales.shape.join(', ')}]`);
  const device = parseDevice(t.device ?? t.b.device).name;
  const bq = await hostInts(t.b, 'uint8', `${op}: b`) as Uint8Array;
  const sc = await hostFloats(t.scales, `${op}: scales`);
  let zeros: Uint8Array | null = null;
  if (t.zeroPoints) {
    checkTensor(t.zeroPoints, `${op}: zeroPoints`);
    zeros = new Uint8Array(n * blocks);
    if (t.zeroPoints.dtype === 'uint8') {
      const per = Math.ceil(blocks / 2);
      check(t.zeroPoints.numel === n * per, 'ERR_LLMK_SHAPE',
        () => `${op}: packed zeroPoints must hold N·ceil(blocks/2) = ${n * per} bytes, got [${t.zeroPoints!.shape.join(', ')}]`);
      const zp = await hostInts(t.zeroPoints, 'uint8', `${op}: zeroPoints`) as Uint8Array;
      for (let nn = 0; nn < n; nn++)
        for (let b = 0; b < blocks; b++) zeros[nn * blocks + b] = (zp[nn * per + (b >> 1)] >> ((b & 1) * 4)) & 15;
    } else {
      check(t.zeroPoints.numel === n * blocks, 'ERR_LLMK_SHAPE', () => `${op}: float zeroPoints must hold N·blocks = ${n * blocks} values`);
      const zp = await hostFloats(t.zeroPoints, `${op}: zeroPoints`);
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
