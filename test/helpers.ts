// Shared test helpers: the device matrix, seeded random data and error metrics.
import { backends, synchronizeSync, type DeviceName } from '../ts';
import { native } from '../ts/native';

export interface TestDevice { device: DeviceName; skip: string | null }

/**
 * Devices the suites run on: the CPU always, each CUDA device when one is available (else listed as
 * skipped with the reason). LLMK_TEST_DEVICES=cuda (or cpu) restricts the matrix, as gpu-check does.
 */
export function testDevices(): TestDevice[] {
  const b = backends();
  const only = process.env.LLMK_TEST_DEVICES;
  const out: TestDevice[] = [];
  if (!only || only === 'cpu') out.push({ device: 'cpu', skip: null });
  if (!only || only.startsWith('cuda')) {
    if (b.cuda.available) for (let i = 0; i < b.cuda.deviceCount; i++) out.push({ device: `cuda:${i}`, skip: null });
    else out.push({ device: 'cuda:0', skip: b.cuda.reason ?? 'CUDA unavailable' });
  }
  return out;
}

/** describe() once per test device; unavailable devices are reported as skipped with their reason. */
export function describeDevices(name: string, fn: (device: DeviceName) => void): void {
  for (const d of testDevices()) {
    const title = `${name} [${d.device}]${d.skip ? ` (skipped: ${d.skip})` : ''}`;
    (d.skip ? describe.skip : describe)(title, () => fn(d.device));
  }
}

/**
 * Sets (value undefined: unsets) an environment variable for this file's process.env and for the addon's
 * getenv: Jest gives each test file a copy of process.env that native code never sees, so this is how a test
 * forces LLMK_CPU_*_ISA. Runs on the CPU stream after the kernels already queued, and returns once it has.
 */
export function setEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  native.debugSetEnv(name, value);
  synchronizeSync('cpu');
}

/** Runs fn with the CPU attention's split-K chunks of `keys` keys (LLMK_CPU_ATTN_SPLIT_KEYS; undefined: its own). */
export async function withSplitKeys<T>(keys: number | undefined, fn: () => Promise<T>): Promise<T> {
  setEnv('LLMK_CPU_ATTN_SPLIT_KEYS', keys === undefined ? undefined : String(keys));
  try {
    return await fn();
  } finally {
    setEnv('LLMK_CPU_ATTN_SPLIT_KEYS', undefined);
  }
}

/** The run's seed: LLMK_TEST_SEED or a fresh one. Put it in test titles so failures show it. */
export const SEED = Number(process.env.LLMK_TEST_SEED ?? Math.floor(Math.random() * 1e9));

export { rng } from './reference/random';

/** n standard-normal values (Box-Muller) scaled by `scale`. */
export function randnArray(n: number, r: () => number, scale = 1): Float32Array {
  // Math's functions taken once: under Jest a global read in a loop cost ~0.3 µs (measured; bound to a local,
  // plain Node's speed), which made 6.5 M values take 9 s instead of 0.4 s.
  const { sqrt, log, cos, PI } = Math;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - r(), v = r();
    out[i] = scale * sqrt(-2 * log(u)) * cos(2 * PI * v);
  }
  return out;
}

/** ‖out − ref‖ / ‖ref‖ (Infinity when NaN appears in out but not in ref). */
export function relL2(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  const isNaNum = Number.isNaN;  // bound once (randnArray)
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = out[i], r = ref[i];
    if (isNaNum(r) && isNaNum(o)) continue;
    if (isNaNum(o) !== isNaNum(r)) return Infinity;
    num += (o - r) ** 2;
    den += r * r;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Expects fn to throw an LlmkError with `code`. */
export function expectCode(fn: () => unknown, code: string): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeDefined();
  expect((err as { name?: string }).name).toBe('LlmkError');
  expect((err as { code?: string }).code).toBe(code);
}

/** Tolerance of docs/architecture.md §6 for a dtype. */
export function tol(dtype: string): number { return dtype === 'float32' ? 1e-5 : 1e-2; }
