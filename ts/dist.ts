/**
 * Collectives and tensor parallelism (docs/architecture.md §4.4).
 *
 * Two backends share one API:
 * - `nccl`: NCCL opened at run time (never linked; see {@link nccl}); CUDA tensors; one process per GPU,
 *   started by `npx llm-kernels launch` and joined with {@link initFromEnv}.
 * - `local`: ranks are worker threads of one process; CPU tensors. Same semantics, used to test
 *   tensor-parallel code without GPUs ({@link runLocal}).
 *
 * Collectives are enqueued on the current stream of the tensor's device and return at once. A failure
 * that only shows while a collective runs (a peer that never arrives, mismatched collectives across
 * ranks, an asynchronous NCCL error, a timeout) raises `ERR_LLMK_NCCL` at the next synchronisation
 * (`await comm.synchronize()`, `await synchronize()`, `await t.toArray()`); the communicator then
 * stays failed and every later call on it throws that error.
 *
 * Local-backend reduction order (exact, identical on every rank): for each element,
 * acc = x[rank 0], then acc = op(acc, x[rank s]) for s = 1..p-1. Floating types accumulate in float32
 * and round once to the storage type; integers wrap in their own width for sum and prod; avg is that
 * sum divided by p (float32 division, or truncation toward zero for integers); max/min propagate NaN.
 * NCCL's own order is unspecified (ring/tree); results agree within the tolerances of docs/architecture.md §6.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'crypto';
import { DeviceName, DeviceSpec, parseDevice, assertDeviceAvailable, backends } from './device';
import { DType } from './dtype';
import { check, describe, LlmkError } from './errors';
import { native } from './native';
import { synchronize } from './stream';
import { checkTensor, Tensor } from './tensor';
import { jobFromEnv, joinJob } from './dist/env';

export { TCPStoreServer, rendezvous, type RendezvousOptions } from './dist/store';
export { jobFromEnv, firstSlurmHost, type JobEnv } from './dist/env';
export { runLocal, type RunLocalOptions, type LocalContext } from './dist/local';
export { launch, parseLaunchArgs, type LaunchOptions } from './dist/launch';
export { shard, ColumnParallelLinear, RowParallelLinear, type ColumnParallelOptions, type RowParallelOptions } from './dist/layers';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** Reduction of allReduce / reduceScatter. `avg` is the sum divided by the world size. */
export type ReduceOp = 'sum' | 'prod' | 'max' | 'min' | 'avg';
/** `nccl` (CUDA tensors, processes) or `local` (CPU tensors, worker threads of one process). */
export type Backend = 'nccl' | 'local';

const OPS: Record<ReduceOp, number> = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 };
/** Bytes of a unique id (NCCL's ncclUniqueId). */
export const UNIQUE_ID_BYTES = 128;
/** Default timeout of rendezvous and collectives: 10 minutes, as torch.distributed. */
export const DEFAULT_TIMEOUT_MS = 600_000;
const LOCAL_MAGIC = Buffer.from('LLMKLOC1', 'latin1');
// `await using` support on runtimes that do not define Symbol.asyncDispose yet.
if (!(Symbol as any).asyncDispose) (Symbol as any).asyncDispose = Symbol.for('Symbol.asyncDispose');

function addon(): any {
  const d = native.dist;
  if (!d) throw new LlmkError('dist: this build of llm-kernels has no dist binding (rebuild the addon)', 'ERR_LLMK_UNAVAILABLE');
  return d;
}

function fnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

/** True when `id` is a well-formed id of the local backend (magic + checksum). */
export function isLocalId(id: Uint8Array): boolean {
  return id instanceof Uint8Array && id.length === UNIQUE_ID_BYTES && Buffer.from(id.subarray(0, 8)).equals(LOCAL_MAGIC);
}

function makeLocalId(): Uint8Array {
  const id = new Uint8Array(UNIQUE_ID_BYTES);
  id.set(LOCAL_MAGIC, 0);
  id.set(randomBytes(112), 8);
  const h = fnv1a64(id.subarray(0, 120));
  for (let i = 0; i < 8; i++) id[120 + i] = Number((h >> BigInt(8 * i)) & 0xffn);
  return id;
}

/** NCCL as found at run time. */
export interface NcclInfo {
  available: boolean;
  /** "2.21.5" when available. */
  version: string | null;
  versionCode: number | null;
  /** The library that was loaded. */
  path: string | null;
  /** Why NCCL is unavailable, naming every place searched. */
  reason: string | null;
  /** Every candidate tried, in order, with its outcome. */
  searched: string[];
}

/**
 * NCCL, loaded with dlopen on first use: `LLMK_NCCL_PATH` (file or folder; when set, nothing else is
 * tried), then `libnccl.so.2` through the dynamic loader, then the nvidia-nccl-cu12/cu13 Python wheels.
 * Versions before 2.18 are refused.
 */
export const nccl = {
  /** Version and path of the process's NCCL, or why it is unavailable. Never throws. */
  info(): NcclInfo {
    try { return addon().ncclInfo(); } catch (e) {
      return { available: false, version: null, versionCode: null, path: null, reason: (e as Error).message, searched: [] };
    }
  },
  /** Tries one library file without touching the process's NCCL (diagnostics). */
  probe(path: string): NcclInfo {
    check(typeof path === 'string' && path.length > 0, 'ERR_LLMK_ARG', 'dist.nccl.probe: path must be a non-empty string');
    return addon().ncclProbe(path);
  },
};

function defaultBackend(): Backend {
  const b = backends();
  return b.cuda.available && nccl.info().available ? 'nccl' : 'local';
}

/**
 * A new unique id for {@link init}: 128 bytes. For `nccl` it is ncclGetUniqueId's (made on the rank
 * that hosts the bootstrap, usually rank 0); for `local` it names an in-process group. The default
 * backend is `nccl` where CUDA and NCCL are available, else `local`.
 */
export function uniqueId(opts: { backend?: Backend } = {}): Uint8Array {
  opts = opts ?? {};
  const backend = opts.backend ?? defaultBackend();
  check(backend === 'nccl' || backend === 'local', 'ERR_LLMK_ARG', () => `dist.uniqueId: unknown backend ${describe(backend)} (nccl or local)`);
  if (backend === 'local') return makeLocalId();
  return addon().ncclUniqueId();
}

export interface InitOptions {
  /** Default: `local` when the unique id is a local one, else `nccl`. */
  backend?: Backend;
  rank: number;
  worldSize: number;
  /** `nccl`: the CUDA device of this rank (default cuda:$LOCAL_RANK, else cuda:0). `local`: 'cpu'. */
  device?: DeviceSpec;
  /** From {@link uniqueId} on one rank, shared with all (the same bytes everywhere). */
  uniqueId: Uint8Array;
  /** Bound on initialisation and on each collective (default 10 minutes). */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function checkInt(v: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): asserts v is number {
  check(Number.isInteger(v) && (v as number) >= min && (v as number) <= max, 'ERR_LLMK_ARG',
    () => `${what} must be an integer in [${min}, ${max}], got ${String(v)}`);
}

function checkUniqueId(id: unknown, backend: Backend): asserts id is Uint8Array {
  check(id instanceof Uint8Array, 'ERR_LLMK_ARG', 'dist.init: uniqueId must be a Uint8Array (from dist.uniqueId())');
  check(id.length === UNIQUE_ID_BYTES, 'ERR_LLMK_ARG', () => `dist.init: bad unique id: it has ${id.length} bytes, a unique id has ${UNIQUE_ID_BYTES}`);
  if (backend === 'local') {
    const why: string = addon().checkLocalId(id);
    check(why === '', 'ERR_LLMK_ARG', () => `dist.init: bad unique id: ${why}`);
  } else {
    check(!isLocalId(id), 'ERR_LLMK_ARG', 'dist.init: bad unique id: it was made for the local backend, not for nccl');
  }
}

/**
 * Joins a communicator: resolves when all `worldSize` ranks have joined with the same unique id.
 * Rejects with ERR_LLMK_ARG for bad arguments or a bad unique id, ERR_LLMK_UNAVAILABLE when NCCL is
 * missing (the message says what was searched), ERR_LLMK_NCCL when initialisation fails or times out.
 */
export async function init(opts: InitOptions): Promise<Communicator> {
  check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', 'dist.init: options object required');
  checkInt(opts.worldSize, 'dist.init: worldSize', 1, 1 << 20);
  checkInt(opts.rank, 'dist.init: rank', 0, opts.worldSize - 1);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  check(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs), 'ERR_LLMK_ARG', 'dist.init: timeoutMs must be a positive number');
  const backend: Backend = opts.backend ?? (opts.uniqueId instanceof Uint8Array && isLocalId(opts.uniqueId) ? 'local' : 'nccl');
  check(backend === 'nccl' || backend === 'local', 'ERR_LLMK_ARG', () => `dist.init: unknown backend ${describe(backend)} (nccl or local)`);
  checkUniqueId(opts.uniqueId, backend);
  let h: any;
  let device: DeviceName;
  if (backend === 'local') {
    const d = parseDevice(opts.device ?? 'cpu');
    check(d.kind === 0, 'ERR_LLMK_DEVICE', () => `dist.init: the local backend works on CPU tensors; device ${d.name} is not supported`);
    device = 'cpu';
    h = addon().initLocal(opts.uniqueId, opts.rank, opts.worldSize, Math.ceil(timeoutMs));
  } else {
    const localRank = Number(process.env.LOCAL_RANK ?? 0);
    const d = parseDevice(opts.device ?? `cuda:${Number.isInteger(localRank) && localRank >= 0 ? localRank : 0}`);
    check(d.kind === 1, 'ERR_LLMK_DEVICE', () => `dist.init: the nccl backend needs a CUDA device, got ${d.name}`);
    const info = nccl.info();
    if (!info.available) throw new LlmkError(`dist.init: ${info.reason}`, 'ERR_LLMK_UNAVAILABLE');
    assertDeviceAvailable(d);
    device = d.name;
    h = addon().initNccl(opts.uniqueId, opts.rank, opts.worldSize, d.kind, d.index, Math.ceil(timeoutMs));
  }
  let wait = 1;
  while (addon().pollReady(h) === 0) {
    await sleep(wait);
    wait = Math.min(wait * 2, 20);
  }
  return new Communicator(h, backend, opts.rank, opts.worldSize, device, timeoutMs);
}

/** Options of {@link initFromEnv}. */
export interface InitFromEnvOptions {
  backend?: Backend;
  device?: DeviceSpec;
  timeoutMs?: number;
  /** Environment to read (default process.env). */
  env?: Record<string, string | undefined>;
}

/**
 * Joins the job this process was started in: by `npx llm-kernels launch` or torchrun (RANK, WORLD_SIZE,
 * LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, master =
 * first host of SLURM_JOB_NODELIST) or mpirun (OMPI_COMM_WORLD_*, PMI_RANK/PMI_SIZE); explicit
 * RANK/WORLD_SIZE win. Rank 0 makes the unique id and serves it from a small TCP store at
 * MASTER_ADDR:MASTER_PORT to the ranks that prove the job token (LLMK_STORE_TOKEN); the other ranks
 * fetch it (with the timeout), then all call {@link init}. Inside a worker started by {@link runLocal},
 * joins that local group instead.
 */
export async function initFromEnv(opts: InitFromEnvOptions = {}): Promise<Communicator> {
  opts = opts ?? {};
  const local = localWorkerData();
  if (local) {
    return init({ backend: 'local', rank: local.rank, worldSize: local.worldSize, uniqueId: local.uniqueId, timeoutMs: opts.timeoutMs ?? local.timeoutMs });
  }
  const env = opts.env ?? process.env;
  const { worldSize } = jobFromEnv(env);
  const backend = opts.backend ?? 'nccl';
  check(backend === 'nccl' || worldSize === 1, 'ERR_LLMK_ARG',
    'dist.initFromEnv: the local backend runs ranks as threads of one process; start it with dist.runLocal(), not with processes');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { job, uniqueId: id } = await joinJob(env, () => uniqueId({ backend }), timeoutMs);
  return init({ backend, rank: job.rank, worldSize, uniqueId: id, timeoutMs, device: opts.device ?? (backend === 'nccl' ? `cuda:${job.localRank}` as DeviceSpec : 'cpu') });
}

interface LocalWorkerData { rank: number; worldSize: number; uniqueId: Uint8Array; timeoutMs: number }
function localWorkerData(): LocalWorkerData | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const wt = require('worker_threads');
    const d = wt.isMainThread ? null : wt.workerData?.llmkDist;
    return d ?? null;
  } catch { return null; }
}

export interface ReduceOptions { op?: ReduceOp; out?: Tensor }

function opId(op: ReduceOp | undefined, what: string): number {
  const v = OPS[(op ?? 'sum') as ReduceOp];
  check(v !== undefined, 'ERR_LLMK_ARG', () => `${what}: unknown op ${describe(op)} (sum, prod, max, min or avg)`);
  return v;
}

/**
 * A communicator of `worldSize` ranks (from {@link init}). All ranks must call the same collectives
 * in the same order with the same sizes, dtypes and ops; the local backend detects a mismatch and
 * fails every rank with ERR_LLMK_NCCL naming both calls.
 */
export class Communicator {
  /** @internal */ _h: any;
  readonly backend: Backend;
  readonly rank: number;
  readonly worldSize: number;
  readonly device: DeviceName;
  readonly timeoutMs: number;
  private destroyed = false;

  /** @internal use dist.init() */
  constructor(h: any, backend: Backend, rank: number, worldSize: number, device: DeviceName, timeoutMs: number) {
    this._h = h;
    this.backend = backend;
    this.rank = rank;
    this.worldSize = worldSize;
    this.device = device;
    this.timeoutMs = timeoutMs;
  }

  private live(op: string): any {
    check(!this.destroyed, 'ERR_LLMK_ARG', `dist.${op}: the communicator was destroyed`);
    return addon();
  }
  private tensorArg(t: unknown, op: string, what = 'tensor'): asserts t is Tensor {
    checkTensor(t, `dist.${op}: ${what}`);
    check(t.device === this.device, 'ERR_LLMK_DEVICE',
      () => `dist.${op}: ${what} is on ${t.device} but the communicator (${this.backend}) uses ${this.device}`);
  }
  private outArg(out: Tensor | undefined, op: string, dtype: DType, numel: number): void {
    if (out === undefined) return;
    this.tensorArg(out, op, 'out');
    check(out.dtype === dtype, 'ERR_LLMK_DTYPE', () => `dist.${op}: out is ${out.dtype}, the input ${dtype}`);
    check(out.numel === numel, 'ERR_LLMK_SHAPE', () => `dist.${op}: out must have ${numel} elements, has ${out.numel}`);
  }

  /** Reduces `t` across ranks: in place (returns `t`), or into `out` (returns `out`). */
  allReduce(t: Tensor, opts: ReduceOptions = {}): Tensor {
    opts = opts ?? {};
    const d = this.live('allReduce');
    this.tensorArg(t, 'allReduce');
    const op = opId(opts.op, 'dist.allReduce');
    this.outArg(opts.out, 'allReduce', t.dtype, t.numel);
    d.allReduce(this._h, t.handle, opts.out?.handle ?? null, op);
    return opts.out ?? t;
  }

  /**
   * Concatenates every rank's `t` along dimension 0 (rank order): [worldSize·d0, ...] (a 0-d `t`
   * gives [worldSize]). With `out`, in place when `t` is `out.narrow(0, rank·d0, d0)`.
   */
  allGather(t: Tensor, opts: { out?: Tensor } = {}): Tensor {
    opts = opts ?? {};
    const d = this.live('allGather');
    this.tensorArg(t, 'allGather');
    this.outArg(opts.out, 'allGather', t.dtype, t.numel * this.worldSize);
    const h = d.allGather(this._h, t.handle, opts.out?.handle ?? null);
    if (opts.out) return opts.out;
    const shape = t.shape.length === 0 ? [this.worldSize] : [t.shape[0] * this.worldSize, ...t.shape.slice(1)];
    return new Tensor(h, shape, t.dtype, t.device);
  }

  /**
   * Reduces `t` across ranks and keeps chunk `rank` of the result: `t.numel` must be a multiple of
   * worldSize; the result is [d0/worldSize, ...] when d0 divides, else [numel/worldSize]. With `out`,
   * in place when `out` is `t.narrow(0, rank·m, m)`.
   */
  reduceScatter(t: Tensor, opts: ReduceOptions = {}): Tensor {
    opts = opts ?? {};
    const d = this.live('reduceScatter');
    this.tensorArg(t, 'reduceScatter');
    const op = opId(opts.op, 'dist.reduceScatter');
    check(t.numel % this.worldSize === 0, 'ERR_LLMK_SHAPE',
      () => `dist.reduceScatter: the input has ${t.numel} elements, not a multiple of worldSize ${this.worldSize}`);
    const m = t.numel / this.worldSize;
    this.outArg(opts.out, 'reduceScatter', t.dtype, m);
    const h = d.reduceScatter(this._h, t.handle, opts.out?.handle ?? null, op);
    if (opts.out) return opts.out;
    const shape = t.shape.length > 0 && t.shape[0] % this.worldSize === 0 ? [t.shape[0] / this.worldSize, ...t.shape.slice(1)] : [m];
    return new Tensor(h, shape, t.dtype, t.device);
  }

  /** Copies root's `t` to every rank: in place (returns `t`), or into `out`. */
  broadcast(t: Tensor, opts: { root?: number; out?: Tensor } = {}): Tensor {
    opts = opts ?? {};
    const d = this.live('broadcast');
    this.tensorArg(t, 'broadcast');
    const root = opts.root ?? 0;
    checkInt(root, 'dist.broadcast: root', 0, this.worldSize - 1);
    this.outArg(opts.out, 'broadcast', t.dtype, t.numel);
    d.broadcast(this._h, t.handle, opts.out?.handle ?? null, root);
    return opts.out ?? t;
  }

  /** Sends `t` to rank `peer` (matched by that rank's recv from this rank, in order). */
  send(t: Tensor, peer: number): void {
    const d = this.live('send');
    this.tensorArg(t, 'send');
    checkInt(peer, 'dist.send: peer', 0, this.worldSize - 1);
    d.send(this._h, t.handle, peer);
  }

  /** Receives into `t` from rank `peer` (dtype and size must match the send); returns `t`. */
  recv(t: Tensor, peer: number): Tensor {
    const d = this.live('recv');
    this.tensorArg(t, 'recv');
    checkInt(peer, 'dist.recv: peer', 0, this.worldSize - 1);
    d.recv(this._h, t.handle, peer);
    return t;
  }

  /**
   * Runs `fn` between ncclGroupStart and ncclGroupEnd: sends and receives inside are matched as one
   * unit (no deadlock on exchange patterns). `fn` must be synchronous.
   */
  group<T>(fn: () => T): T {
    const d = this.live('group');
    check(typeof fn === 'function', 'ERR_LLMK_ARG', 'dist.group: fn must be a function');
    d.groupStart(this._h);
    let r: T;
    try {
      r = fn();
    } finally {
      d.groupEnd(this._h);
    }
    check(!(r instanceof Promise), 'ERR_LLMK_ARG', 'dist.group: fn must be synchronous (collectives only enqueue)');
    return r;
  }

  /** Resolves when the work queued on this communicator's device is done; rejects with its error. */
  async synchronize(): Promise<void> {
    await synchronize(this.device);
    const e: [string, string] | null = addon().error(this._h);
    if (e) {
      const err = new LlmkError(e[0], 'ERR_LLMK_NCCL');
      err.ncclResult = e[1] || 'ncclRemoteError';
      throw err;
    }
  }

  /** Resolves when every rank reached the barrier (and this rank's queued work is done). */
  async barrier(): Promise<void> {
    const d = this.live('barrier');
    d.barrier(this._h);
    await this.synchronize();
  }

  /** Why the communicator failed, or null while it is healthy. */
  get error(): string | null { return addon().error(this._h)?.[0] ?? null; }

  /**
   * Ends the communicator after the work queued so far (NCCL: ncclCommFinalize, then
   * ncclCommDestroy). Later calls throw ERR_LLMK_ARG. A second call does nothing.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    try {
      await synchronize(this.device);
    } finally {
      this.destroyed = true;
      addon().destroy(this._h);
    }
    await synchronize(this.device);
  }

  /** Ends the communicator now: every rank's pending and later collectives fail (ERR_LLMK_NCCL). */
  abort(reason?: string): void {
    this.destroyed = true;
    addon().abort(this._h, reason ?? '');
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.destroy(); }
}
