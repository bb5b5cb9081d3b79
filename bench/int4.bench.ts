// INT4 weight-only matmul (issue 4): y[M,N] = x[M,K] · dequant(W)ᵀ, float16 activations, g = 128,
// prepared weights. GPU shapes (N×K): 4096×4096, 8192×8192, 28672×8192, 8192×28672 and the awkward TP
// shard 7392×8192, M in {1, 4, 16, 64, 256, 1024, 4096} (--quick: M in {1, 16, 256, 4096}).
// Bytes = packed weights + scales + activations + output; FLOPs = 2·M·N·K. Peer: bench/peers/int4.py
// (torch.matmul in fp16 = cuBLAS on the same shapes, same case names). CPU: float32 activations,
// 4096×4096 (M = 1, 16) and 7392×8192 (M = 1); onnxruntime-node MatMulNBits is not wired in here.
import { randn, type DeviceName } from '../ts';
import * as quant from '../ts/quant';
import type { BenchCase, Suite } from './harness';

const GPU_SHAPES: [number, number][] = [[4096, 4096], [8192, 8192], [28672, 8192], [8192, 28672], [7392, 8192]];
const GPU_MS = [1, 4, 16, 64, 256, 1024, 4096];
const GPU_MS_QUICK = [1, 16, 256, 4096];

function cases(device: DeviceName, quick: boolean): BenchCase[] {
  const gpu = device !== 'cpu';
  const dtype = gpu ? 'float16' : 'float32';
  const xsize = gpu ? 2 : 4;
  const groupSize = 128;
  const plan: [number, number, number[]][] = gpu
    ? GPU_SHAPES.map(([n, k]) => [n, k, quick ? GPU_MS_QUICK : GPU_MS])
    : quick ? [[4096, 4096, [1]]] : [[4096, 4096, [1, 16]], [7392, 8192, [1]]];
  const out: BenchCase[] = [];
  for (const [N, K, ms] of plan) {
    const w = randn([N, K], { device, dtype: gpu ? 'float16' : 'float32', seed: 7 });
    const canon = quant.quantize(w, { groupSize });
    w.dispose();
    const pw = quant.prepare(canon, device);
    canon.dispose();
    const wbytes = N * (K / 2) + N * (K / groupSize) * (gpu ? 2 : 4);
    ms.forEach((M, i) => {
      const x = randn([M, K], { device, dtype, seed: 11 + M });
      out.push({
        name: `${N}x${K} M=${M}`,
        run: () => quant.matmul(x, pw).dispose(),
        bytes: wbytes + M * K * xsize + M * N * xsize,
        flops: 2 * M * N * K,
        graph: gpu && M <= 64,
        teardown: () => { x.dispose(); if (i === ms.length - 1) pw.dispose(); },
      });
    });
  }
  return out;
}

const suite: Suite = { name: 'int4', cases };
export default suite;
