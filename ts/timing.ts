// Device-side timing for benchmarks (used by bench/).
import { assertDeviceAvailable, DeviceSpec, parseDevice } from './device';
import { check } from './errors';
import { native } from './native';

/**
 * Milliseconds per call of `enqueue`, measured on the device: CUDA events around `iters` calls, or around
 * `iters` replays of a CUDA graph captured from one call (`graph: true`; `enqueue` must dispose what it creates).
 * On the CPU: the host clock until the stream has drained.
 */
export function deviceTime(device: DeviceSpec, iters: number, enqueue: () => void, opts: { graph?: boolean } = {}): number {
  opts = opts ?? {};
  const d = parseDevice(device);
  assertDeviceAvailable(d);
  check(Number.isInteger(iters) && iters >= 1 && iters <= 2 ** 31 - 1, 'ERR_LLMK_ARG', 'deviceTime: iters must be an integer in [1, 2^31 - 1]');
  check(typeof enqueue === 'function', 'ERR_LLMK_ARG', 'deviceTime: enqueue must be a function');
  return native.deviceTime(d.kind, d.index, iters, enqueue, Boolean(opts.graph) && d.kind === 1);
}

/**
 * Allocator counters of a device kind (live bytes and blocks, total allocations): 'cpu', or 'cuda' /
 * 'cuda:N' (the counters cover every CUDA device). Anything else is ERR_LLMK_DEVICE.
 */
export function memoryStats(device: DeviceSpec = 'cpu'): { liveBytes: number; liveBlocks: number; totalAllocs: number } {
  return native.memoryStats(parseDevice(device).kind);
}
