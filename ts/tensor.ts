import { assertDeviceAvailable, DeviceName, DeviceSpec, parseDevice } from './device';
import { ArrayOf, DType, dtypeId, dtypeSize, DTYPES, DTypeOfData, isFloating, isHalf, RawArrayOf, TypedArray } from './dtype';
import { check, describe, LlmkError } from './errors';
import { native } from './native';

/** A tensor's native handle: a number naming a slot of the addon's per-thread tensor table. */
type Handle = number;

// Backstop for tensors that were never disposed: frees the native slot once the Tensor is collected
// (LLMK_DEBUG_LEAKS=1 makes the addon report each one). Registering costs about a microsecond, more
// than the op itself, so new tensors are registered in a microtask after the code that made them:
// the many temporaries disposed within the same synchronous run are never registered at all.
// A disposed tensor leaves nothing behind: dispose() takes it off the pending list (at once when it
// is the newest, the usual create-use-dispose order) or unregisters it; a long synchronous run
// registers in batches, so the pending list stays short.
const leaks = new FinalizationRegistry<Handle>((h) => native.release(h, true));
const NOT_TRACKED = -1, REGISTERED = -2, FLUSH_AT = 1024;
let pending: (Tensor | undefined)[] = [];
// At most one flush is queued: the list empties and refills many times in one synchronous run, and
// a microtask per refill would pile up (about 150 bytes each) until the run ends.
let flushQueued = false;
function registerLater(t: Tensor): void {
  t._p = pending.length;
  pending.push(t);
  if (!flushQueued) { flushQueued = true; queueMicrotask(flushPending); }
  if (pending.length >= FLUSH_AT) registerPending();
}
function flushPending(): void {
  flushQueued = false;
  registerPending();
}
function registerPending(): void {
  const ts = pending;
  pending = [];
  for (const t of ts) {
    if (t === undefined) continue;
    if (t._h === null) { t._p = NOT_TRACKED; continue; }
    leaks.register(t, t._h, t);
    t._p = REGISTERED;
  }
}
function untrack(t: Tensor): void {
  const i = t._p;
  t._p = NOT_TRACKED;
  if (i === REGISTERED) { leaks.unregister(t); return; }
  if (i < 0 || pending[i] !== t) return;
  pending[i] = undefined;
  while (pending.length > 0 && pending[pending.length - 1] === undefined) pending.pop();
}

// `using` support on runtimes that do not define Symbol.dispose yet.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const symDispose: symbol = (Symbol as any).dispose ?? ((Symbol as any).dispose = Symbol.for('Symbol.dispose'));

const MAX_ELEMENTS = 2 ** 53;

/** A shape for messages; never throws, whatever the entries are (Symbol, BigInt, objects). */
function shapeText(shape: readonly unknown[]): string {
  return `[${shape.map((d) => (typeof d === 'number' ? String(d) : describe(d))).join(', ')}]`;
}

/** Validates a shape: non-negative integers whose product is representable. */
export function checkShape(shape: readonly number[], what = 'shape'): number {
  check(Array.isArray(shape), 'ERR_LLMK_SHAPE', `${what} must be an array of non-negative integers`);
  let n = 1;
  for (const d of shape) {
    check(Number.isInteger(d) && d >= 0, 'ERR_LLMK_SHAPE', () => `${what} ${shapeText(shape)} has an entry that is not a non-negative integer`);
    n *= d;
  }
  check(n <= MAX_ELEMENTS, 'ERR_LLMK_SHAPE', () => `${what} ${shapeText(shape)} has more elements than can be addressed`);
  return n;
}

/**
 * A contiguous row-major tensor on a device. Ops return at once (work is queued on the device's
 * current stream); read results with `await t.toArray()`. Free with `dispose()` or `using`.
 */
export class Tensor<D extends DType = DType> {
  /** @internal */ _h: Handle | null;
  /** @internal Finalizer bookkeeping: index in the pending list, or NOT_TRACKED / REGISTERED. */ _p = NOT_TRACKED;
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly device: DeviceName;
  readonly numel: number;

  /** @internal Use tensor(), empty(), zeros(), full(), rand(), randn() to create tensors. */
  constructor(handle: Handle, shape: readonly number[], dtype: D, device: DeviceName, numel?: number) {
    this._h = handle;
    registerLater(this);
    this.shape = shape;
    this.dtype = dtype;
    this.device = device;
    this.numel = numel ?? shape.reduce((a, b) => a * b, 1);
  }

  get nbytes(): number { return this.numel * dtypeSize(this.dtype); }
  get ndim(): number { return this.shape.length; }
  get disposed(): boolean { return this._h === null; }

  /** @internal The native handle; throws ERR_LLMK_DISPOSED after dispose(). */
  get handle(): Handle {
    const h = this._h;
    if (h === null) throw new LlmkError('tensor was used after dispose()', 'ERR_LLMK_DISPOSED');
    return h;
  }

  /** Frees the memory once queued work that uses it is done. A second call does nothing. */
  dispose(): void {
    if (this._h !== null) {
      native.release(this._h, false);
      this._h = null;
      untrack(this);
    }
  }
  [Symbol.dispose](): void { this.dispose(); }

  /**
   * Copies the data to JS after the queued work; never blocks the event loop. float16/bfloat16
   * come back as Float32Array (converted natively) or, with `{ raw: true }`, as their Uint16Array bits.
   */
  toArray(opts?: { raw?: false }): Promise<ArrayOf[D]>;
  toArray(opts: { raw: true }): Promise<RawArrayOf[D]>;
  toArray(opts?: { raw?: boolean }): Promise<ArrayOf[D] | RawArrayOf[D]>;
  async toArray(opts: { raw?: boolean } = {}): Promise<TypedArray> {
    opts = opts ?? {};
    const asF32 = isHalf(this.dtype) && !opts.raw;
    return view(await native.toHostAsync(this.handle, asF32), this.dtype, asF32);
  }
  /** Blocking toArray for scripts. */
  toArraySync(opts?: { raw?: false }): ArrayOf[D];
  toArraySync(opts: { raw: true }): RawArrayOf[D];
  toArraySync(opts?: { raw?: boolean }): ArrayOf[D] | RawArrayOf[D];
  toArraySync(opts: { raw?: boolean } = {}): TypedArray {
    opts = opts ?? {};
    const asF32 = isHalf(this.dtype) && !opts.raw;
    return view(native.toHostSync(this.handle, asF32), this.dtype, asF32);
  }

  /** A copy on another device (waits for queued work on this tensor's device first). */
  to(device: DeviceSpec): Tensor<D> {
    const d = parseDevice(device);
    assertDeviceAvailable(d);
    return new Tensor(native.toDevice(this.handle, d.kind, d.index), this.shape, this.dtype, d.name, this.numel);
  }
  /** A copy converted to another dtype (float→int truncates toward zero and saturates; NaN → 0). */
  cast<E extends DType>(dtype: E): Tensor<E> {
    dtypeId(dtype);
    return new Tensor(native.cast(this.handle, dtypeId(dtype)), this.shape, dtype, this.device, this.numel);
  }
  /** A view with another shape and the same number of elements (shares storage). */
  reshape(shape: readonly number[]): Tensor<D> {
    const n = checkShape(shape);
    check(n === this.numel, 'ERR_LLMK_SHAPE', () => `cannot reshape ${shapeText(this.shape)} to ${shapeText(shape)}`);
    return new Tensor(native.reshape(this.handle, [...shape]), [...shape], this.dtype, this.device, n);
  }
  /** A view of rows [start, start + length) along dimension 0 (shares storage). */
  narrow(dim: number, start: number, length: number): Tensor<D> {
    check(dim === 0, 'ERR_LLMK_ARG', 'narrow supports dimension 0 only (views stay contiguous)');
    check(this.shape.length >= 1, 'ERR_LLMK_SHAPE', 'narrow needs a tensor with at least one dimension');
    check(Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 0 && start + length <= this.shape[0],
      'ERR_LLMK_INDEX', () => `narrow(0, ${describe(start)}, ${describe(length)}) is out of range for dimension 0 of size ${this.shape[0]}`);
    const shape = [length, ...this.shape.slice(1)];
    return new Tensor(native.narrow(this.handle, start, length), shape, this.dtype, this.device);
  }
  toString(): string { return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this._h ? '' : ', disposed'})`; }
}

function view(buf: ArrayBuffer, dtype: DType, asF32: boolean): TypedArray {
  if (asF32 || dtype === 'float32') return new Float32Array(buf);
  switch (dtype) {
    case 'float16': case 'bfloat16': return new Uint16Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'int8': return new Int8Array(buf);
    default: return new Uint8Array(buf);
  }
}

export interface CreateOptions<D extends DType = DType> { dtype?: D; device?: DeviceSpec }

// D: the dtype the caller's types promise (opts.dtype, else the fallback the signature defaults to).
function resolve<D extends DType>(opts: CreateOptions<D> | undefined, fallback: DType): { dtype: D; dev: ReturnType<typeof parseDevice> } {
  const dtype = (opts?.dtype ?? fallback) as D;
  dtypeId(dtype);
  const dev = parseDevice(opts?.device);
  assertDeviceAvailable(dev);
  return { dtype, dev };
}

function inferDType(data: unknown): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Uint16Array) throw new LlmkError('Uint16Array data needs dtype float16 or bfloat16', 'ERR_LLMK_DTYPE');
  return 'float32';
}

function flatten(data: unknown, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else check(shape[depth] === data.length, 'ERR_LLMK_SHAPE', 'nested arrays are ragged');
    for (const x of data) flatten(x, shape, out, depth + 1);
  } else {
    check(depth === shape.length, 'ERR_LLMK_SHAPE', 'nested arrays are ragged');
    check(typeof data === 'number' || typeof data === 'boolean', 'ERR_LLMK_ARG', 'tensor data must hold numbers');
    out.push(Number(data));
  }
}

/**
 * Plain numbers for an integer dtype are truncated toward zero; NaN, ±Inf and values outside the
 * dtype's range are refused (a TypedArray would silently wrap them, BigInt would throw a RangeError).
 */
function integers(dtype: DType, n: number[], lo: number, hiExclusive: number): number[] {
  for (const x of n) {
    const t = Math.trunc(x);
    check(t >= lo && t < hiExclusive, 'ERR_LLMK_ARG', () => `tensor data: ${x} does not fit ${dtype}`);
  }
  return n.map(Math.trunc);
}

const ARRAY_FOR: Record<DType, (n: number[]) => TypedArray> = {
  float32: (n) => Float32Array.from(n),
  float16: (n) => Float32Array.from(n),
  bfloat16: (n) => Float32Array.from(n),
  int32: (n) => Int32Array.from(integers('int32', n, -(2 ** 31), 2 ** 31)),
  int64: (n) => BigInt64Array.from(integers('int64', n, -(2 ** 63), 2 ** 63), (x) => BigInt(x)),
  int8: (n) => Int8Array.from(integers('int8', n, -128, 128)),
  uint8: (n) => Uint8Array.from(integers('uint8', n, 0, 256)),
};

/**
 * A tensor holding a copy of `data`: a TypedArray (shape defaults to [length]) or nested number arrays.
 * float16/bfloat16 accept Float32Array (converted with round-to-nearest-even) or raw Uint16Array bits.
 */
export function tensor<A extends TypedArray | number[] | unknown[], D extends DType = DTypeOfData<A>>(
  data: A, opts: CreateOptions<D> & { shape?: readonly number[] } = {}): Tensor<D> {
  opts = opts ?? {};
  let arr: TypedArray;
  let shape: readonly number[];
  if (ArrayBuffer.isView(data)) {
    arr = data as TypedArray;
    shape = opts.shape ?? [arr.length];
  } else {
    check(Array.isArray(data), 'ERR_LLMK_ARG', 'tensor data must be a TypedArray or an array of numbers');
    const flat: number[] = [];
    const inferred: number[] = [];
    flatten(data, inferred, flat, 0);
    arr = ARRAY_FOR[DTYPES[dtypeId(opts.dtype ?? 'float32')]](flat);
    shape = opts.shape ?? inferred;
  }
  const { dtype, dev } = resolve(opts, opts.dtype ?? inferDType(arr));
  const n = checkShape(shape);
  check(n === arr.length, 'ERR_LLMK_SHAPE', () => `data has ${arr.length} elements but shape [${shape.join(', ')}] needs ${n}`);
  const asF32 = arr instanceof Float32Array && dtype !== 'float32';
  if (asF32) check(isHalf(dtype), 'ERR_LLMK_DTYPE', `Float32Array data cannot make a ${dtype} tensor`);
  else if (isHalf(dtype)) check(arr instanceof Uint16Array, 'ERR_LLMK_DTYPE', `${dtype} data must be a Float32Array or raw Uint16Array bits`);
  else check(inferDType(arr) === dtype, 'ERR_LLMK_DTYPE', () => `${arr.constructor.name} data cannot make a ${dtype} tensor`);
  return new Tensor(native.fromHost(arr, [...shape], dtypeId(dtype), dev.kind, dev.index, asF32), [...shape], dtype, dev.name, n);
}

/** An uninitialised tensor. */
export function empty<D extends DType = 'float32'>(shape: readonly number[], opts?: CreateOptions<D>): Tensor<D> {
  const n = checkShape(shape);
  const { dtype, dev } = resolve(opts, 'float32');
  return new Tensor(native.empty([...shape], dtypeId(dtype), dev.kind, dev.index), [...shape], dtype, dev.name, n);
}

/** A tensor filled with `value`. */
export function full<D extends DType = 'float32'>(shape: readonly number[], value: number, opts?: CreateOptions<D>): Tensor<D> {
  const n = checkShape(shape);
  check(typeof value === 'number', 'ERR_LLMK_ARG', 'full: value must be a number');
  const { dtype, dev } = resolve(opts, 'float32');
  return new Tensor(native.full([...shape], dtypeId(dtype), dev.kind, dev.index, value), [...shape], dtype, dev.name, n);
}

export function zeros<D extends DType = 'float32'>(shape: readonly number[], opts?: CreateOptions<D>): Tensor<D> { return full(shape, 0, opts); }

export interface RandomOptions<D extends DType = DType> extends CreateOptions<D> { seed?: number }

function random<D extends DType>(shape: readonly number[], opts: RandomOptions<D> | undefined, normal: boolean): Tensor<D> {
  const n = checkShape(shape);
  const { dtype, dev } = resolve(opts, 'float32');
  check(isFloating(dtype), 'ERR_LLMK_DTYPE', `${normal ? 'randn' : 'rand'}: dtype must be floating, got ${dtype}`);
  const seed = opts?.seed ?? Math.floor(Math.random() * 2 ** 48);
  check(Number.isSafeInteger(seed) && seed >= 0, 'ERR_LLMK_ARG', 'seed must be a non-negative safe integer');
  return new Tensor(native.random([...shape], dtypeId(dtype), dev.kind, dev.index, seed, normal), [...shape], dtype, dev.name, n);
}

/** Uniform [0, 1) values; the same seed gives the same values on every device. */
export function rand<D extends DType = 'float32'>(shape: readonly number[], opts?: RandomOptions<D>): Tensor<D> { return random(shape, opts, false); }
/** Standard normal values; the same seed gives the same values on every device. */
export function randn<D extends DType = 'float32'>(shape: readonly number[], opts?: RandomOptions<D>): Tensor<D> { return random(shape, opts, true); }

/** Throws unless `t` is a live Tensor (ERR_LLMK_ARG / ERR_LLMK_DISPOSED). */
// Dtype and shape of the results of the last native op (napi/common.h wrap_result): RESULT_STRIDE numbers per
// slot — dtype id, ndim, dims. Read by adopt() right after the op returns, before any other native call.
const RESULT_STRIDE = 10;
let resultInfo: Float64Array | undefined;

/** @internal The Tensor of a native op's result: the op, not TypeScript, decided its shape (slot i of the op's results). */
export function adopt<D extends DType = DType>(handle: Handle, device: DeviceName, slot = 0): Tensor<D> {
  const info = resultInfo ??= native.resultInfo as Float64Array;
  const at = slot * RESULT_STRIDE;
  const ndim = info[at + 1];
  const shape = new Array<number>(ndim);
  for (let k = 0; k < ndim; k++) shape[k] = info[at + 2 + k];
  return new Tensor(handle, shape, DTYPES[info[at]] as D, device);
}

export function checkTensor(t: unknown, what: string): asserts t is Tensor {
  check(t instanceof Tensor, 'ERR_LLMK_ARG', `${what} must be a Tensor`);
  if (t.disposed) throw new LlmkError(`${what} was used after dispose()`, 'ERR_LLMK_DISPOSED');
}

/** Throws ERR_LLMK_DEVICE unless all tensors are on one device. */
export function checkSameDevice(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    check(t.device === ts[0].device, 'ERR_LLMK_DEVICE', () => `${op}: tensors are on different devices (${ts[0].device} and ${t.device})`);
  }
}

export { DTYPES, symDispose as disposeSymbol };
