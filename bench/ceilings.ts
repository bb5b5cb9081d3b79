// The device ceilings the figures are compared with, measured once per run: a large same-device copy
// (bytes read + written) for bandwidth, and the best matmul the library has for FLOP/s.
import { matmul, randn, type DeviceName } from '../ts';
import type { Ceilings } from './harness';
import { timeCase } from './harness';

export function measureCeilings(device: DeviceName): Ceilings {
  const gpu = device !== 'cpu';
  const n = gpu ? 256 * 1024 * 1024 : 32 * 1024 * 1024; // floats: 1 GiB on a GPU, 128 MiB on the CPU
  // CPU: memmove between two buffers written before timing (no allocation, no first-touch page faults: a new
  // tensor per copy measured 0.55–0.8× of this, see bench/attention-serving.bench.ts); a GPU copies into a new tensor
  // (stream-ordered allocator, no faults).
  let copyMs: number;
  if (gpu) {
    const src = randn([n], { device, seed: 1 });
    copyMs = timeCase(device, { name: 'copy', run: () => src.to(device).dispose() }, 50, 3);
    src.dispose();
  } else {
    const src = new Float32Array(n).fill(0.5), dst = new Float32Array(n).fill(1);  // written: no zero page, no faults
    copyMs = timeCase(device, { name: 'copy', run: () => dst.set(src) }, 50, 3);
  }
  const bandwidthGBs = (2 * n * 4) / (copyMs / 1e3) / 1e9;
  const m = gpu ? 4096 : 1024;  // large enough that packing and threading overheads do not hide the kernel
  const dtype = gpu ? 'bfloat16' : 'float32';
  const a = randn([m, m], { device, dtype, seed: 2 }), b = randn([m, m], { device, dtype, seed: 3 });
  const mmMs = timeCase(device, { name: 'matmul', run: () => matmul(a, b).dispose() }, 100, 5);
  a.dispose(); b.dispose();
  const tflops = (2 * m * m * m) / (mmMs / 1e3) / 1e12;
  return { bandwidthGBs, tflops, how: `copy of ${(n * 4) / 2 ** 20} MiB${gpu ? '' : ' between pre-touched buffers'}; llm-kernels ${dtype} matmul ${m}^3 (on a GPU the PyTorch/cuBLAS figure from the peers is the real matrix ceiling)` };
}
