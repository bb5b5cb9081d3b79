import { assertDeviceAvailable, DeviceSpec, parseDevice, DeviceName } from './device';
import { check } from './errors';
import { native } from './native';

/** An extra in-order queue of work on a device (a CUDA stream, or a CPU worker queue). */
export class Stream {
  /** @internal */ readonly _h: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly device: DeviceName;
  constructor(device: DeviceSpec = 'cpu') {
    const d = parseDevice(device);
    assertDeviceAvailable(d);
    this._h = new native.NativeStream(d.kind, d.index);
    this.device = d.name;
  }
  /** Blocks until the stream's queued work is done (rethrows the first error it raised). */
  synchronizeSync(): void { this._h.synchronizeSync(); }
}

// The stream withStream() made current, per device name, on this thread (absent: the default stream).
const current = new Map<DeviceName, Stream>();

/**
 * Runs fn with `stream` as its device's current stream; ops inside are queued on it. Nests: when fn
 * returns or throws, the stream that was current before (an outer withStream's, or the default) is again.
 */
export function withStream<T>(stream: Stream, fn: () => T): T {
  check(stream instanceof Stream, 'ERR_LLMK_ARG', 'withStream: stream must be a Stream');
  check(typeof fn === 'function', 'ERR_LLMK_ARG', 'withStream: fn must be a function');
  const outer = current.get(stream.device);
  native.setCurrentStream(stream._h);
  current.set(stream.device, stream);
  try {
    const r = fn();
    check(!(r instanceof Promise), 'ERR_LLMK_ARG', 'withStream: fn must be synchronous (the current stream is per thread, not per async task)');
    return r;
  } finally {
    if (outer) {
      native.setCurrentStream(outer._h);
      current.set(stream.device, outer);
    } else {
      const d = parseDevice(stream.device);
      native.setCurrentStream(null, d.kind, d.index);
      current.delete(stream.device);
    }
  }
}

/** Resolves when all work queued on the device's streams of this thread is done; rejects with its error. */
export function synchronize(device: DeviceSpec = 'cpu'): Promise<void> {
  const d = parseDevice(device);
  assertDeviceAvailable(d);
  return native.synchronizeAsync(d.kind, d.index);
}
/** Blocking synchronize() for scripts. */
export function synchronizeSync(device: DeviceSpec = 'cpu'): void {
  const d = parseDevice(device);
  assertDeviceAvailable(d);
  native.synchronizeSync(d.kind, d.index);
}
