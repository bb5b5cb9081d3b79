import { check, describe, LlmkError } from './errors';
import { native } from './native';

/** 'cpu', 'cuda' (the current CUDA device, cuda:0) or 'cuda:N'. */
export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}`;
/** Normalised device name: 'cpu' or 'cuda:N'. */
export type DeviceName = 'cpu' | `cuda:${number}`;

export interface ParsedDevice { name: DeviceName; kind: 0 | 1; index: number }

const cache = new Map<string, ParsedDevice>();

export function parseDevice(spec: DeviceSpec | string | undefined): ParsedDevice {
  const key = spec ?? 'cpu';
  check(typeof key === 'string', 'ERR_LLMK_DEVICE', () => `unknown device ${describe(spec)} (expected 'cpu', 'cuda' or 'cuda:N')`);
  const hit = cache.get(key);
  if (hit) return hit;
  let d: ParsedDevice;
  if (key === 'cpu') d = { name: 'cpu', kind: 0, index: 0 };
  else {
    const m = /^cuda(?::(\d+))?$/.exec(key);
    check(m, 'ERR_LLMK_DEVICE', () => `unknown device ${describe(spec)} (expected 'cpu', 'cuda' or 'cuda:N')`);
    const index = m[1] === undefined ? 0 : Number(m[1]);
    d = { name: `cuda:${index}`, kind: 1, index };
  }
  cache.set(key, d);
  return d;
}

export interface BackendInfo {
  cpu: { available: true; threads: number };
  cuda: { compiled: boolean; available: boolean; deviceCount: number; reason?: string };
}

/** Which backends work here, and for an unavailable one, why. */
export function backends(): BackendInfo { return native.backends(); }

/** Devices usable in this process: 'cpu' and every 'cuda:N'. */
export function devices(): DeviceName[] {
  const b = backends();
  const out: DeviceName[] = ['cpu'];
  for (let i = 0; i < b.cuda.deviceCount; i++) out.push(`cuda:${i}`);
  return out;
}

/** Throws ERR_LLMK_UNAVAILABLE (with the reason) when a device cannot be used. */
export function assertDeviceAvailable(d: ParsedDevice): void {
  if (d.kind === 0) return;
  const b = backends();
  if (!b.cuda.available) throw new LlmkError(`CUDA is unavailable: ${b.cuda.reason}`, 'ERR_LLMK_UNAVAILABLE');
  check(d.index < b.cuda.deviceCount, 'ERR_LLMK_DEVICE', `${d.name} does not exist (${b.cuda.deviceCount} CUDA device(s))`);
}
