// INT4 weight-only matmul (issue 4): y[M,N] = x[M,K] · dequant(W)ᵀ, float16 activations, g = 128,
// prepared weights. GPU shapes (N×K): 4096×4096, 8192×8192, 28672×8192, 8192×28672 and the awkward TP
// shard 7392×8192, M in {1, 4, 16, 64, 256, 1024, 4096} (--quick: M in {1, 16, 256, 4096}).
// Bytes = packed weights + scales + activations + output; FLOPs = 2·M·N·K. Peer: bench/peers/int4.py
// (torch.matmul in fp16 = cuBLAS on the same shapes, same case names). CPU: float32 activations,
// 4096×4096 (M = 1, 16; vs the peer: M = 1, 4, 16) and 7392×8192 (M = 1); the CPU peer is onnxruntime-node's com.microsoft
// MatMulNBits (accuracy_level 0 = float math and 4 = int8 math) on the same weight, through a one-node
// ONNX model encoded here, when onnxruntime-node is installed (both timed the same wall-clock way).
import { randn, synchronizeSync, tensor, type DeviceName } from '../ts';
import * as quant from '../ts/quant';
import type { BenchCase, Result, Suite } from './harness';
import { field, str } from './onnx';
import { ortPackageDir, peerIsaTag } from './ort-isa';
import { cpuInfo, cpuTimeMode, paired, timingNote } from './paired';

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

// ---- CPU peer: onnxruntime-node MatMulNBits (one-node ONNX model, protobuf encoded here) ----


/**
 * ModelProto of Y[M,N] = MatMulNBits(A[M,K], B, scales) (com.microsoft, bits 4, block_size g, no zero
 * points: zero point 8), B and scales as initializers. B[N, K/g, g/2] is exactly the canonical qweight.
 */
export function matMulNBitsModel(M: number, N: number, K: number, g: number, accuracy: number, b: Uint8Array, scales: Float32Array): Uint8Array {
  const dims = (ds: number[]) => ds.flatMap((d) => field(1, 2, field(1, 0, d)));
  const vinfo = (no: number, name: string, ds: number[]) =>
    field(no, 2, [...field(1, 2, str(name)), ...field(2, 2, field(1, 2, [...field(1, 0, 1), ...field(2, 2, dims(ds))]))]);
  const init = (name: string, type: number, ds: number[], raw: Uint8Array) =>
    field(5, 2, [...ds.flatMap((d) => field(1, 0, d)), ...field(2, 0, type), ...field(8, 2, str(name)), ...field(9, 2, raw)]);
  const attr = (name: string, v: number) => field(5, 2, [...field(1, 2, str(name)), ...field(20, 0, 2), ...field(3, 0, v)]);
  const node = [...field(1, 2, str('A')), ...field(1, 2, str('B')), ...field(1, 2, str('S')), ...field(2, 2, str('Y')),
    ...field(4, 2, str('MatMulNBits')), ...field(7, 2, str('com.microsoft')),
    ...attr('K', K), ...attr('N', N), ...attr('bits', 4), ...attr('block_size', g), ...attr('accuracy_level', accuracy)];
  const graph = [...field(1, 2, node), ...field(2, 2, str('g')),
    ...init('B', 2, [N, K / g, g / 2], b), ...init('S', 1, [N * (K / g)], new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength)),
    ...vinfo(11, 'A', [M, K]), ...vinfo(12, 'Y', [M, N])];
  return Uint8Array.from([...field(1, 0, 8), ...field(7, 2, graph),
    ...field(8, 2, [...field(1, 2, []), ...field(2, 0, 17)]), ...field(8, 2, [...field(1, 2, str('com.microsoft')), ...field(2, 0, 1)])]);
}

type Ort = {
  InferenceSession: { create(b: Uint8Array, o?: object): Promise<{ run(f: object): Promise<Record<string, { data: Float32Array }>> }> };
  Tensor: new (t: string, d: Float32Array, s: number[]) => unknown;
};


// Ours against MatMulNBits at 4096², g = 128, M = 1 and 16: compute 'float' against accuracy_level 0 (float
// math) and compute 'int8' against accuracy_level 4 (int8 activations), interleaved and repeated (paired.ts);
// our weight prepared (quant.prepare), as ORT prepacks its initializer.
// The ISA is ours as picked (LLMK_CPU_INT4_ISA forces a lesser one); ORT picks its own kernels
// (LLMK_BENCH_PEER_ISA=avx2: the ones it picks on an AVX2+FMA CPU, bench/ort-isa.ts).
async function cpuPeer(device: DeviceName): Promise<Result[]> {
  if (device !== 'cpu') return [];
  let ort: Ort;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require.resolve('onnxruntime-node');
  } catch {
    return [{ suite: 'int4', case: 'onnxruntime-node MatMulNBits peer', device, ms: NaN, note: 'onnxruntime-node is not installed: no CPU peer' }];
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ort = require(ortPackageDir());
  const res: Result[] = [];
  const isa = process.env.LLMK_CPU_INT4_ISA ?? 'best';
  const { model, isa: flags } = cpuInfo();
  for (const [M, N, K] of [[1, 4096, 4096], [16, 4096, 4096]] as const) {
    const g = 128;
    const w = randn([N, K], { device, seed: 5 });
    const qw = quant.quantize(w, { groupSize: g });
    w.dispose();
    const b = qw.qweight.toArraySync() as Uint8Array, sc = qw.scales.toArraySync() as Float32Array;
    const pw = quant.prepare(qw, device);  // ours prepared, as ORT prepacks its initializers (the CPU's quads)
    const xs = new Float32Array(M * K).map((_, i) => Math.sin(i * 0.37));
    const x = tensor(xs, { device, shape: [M, K] });
    for (const [compute, acc] of [['float', 0], ['int8', 4]] as const) {
      const name = `${N}x${K} M=${M} ${compute} vs ORT MatMulNBits accuracy_level ${acc}`;
      try {
        const sess = await ort.InferenceSession.create(matMulNBitsModel(M, N, K, g, acc, b, sc),
          { intraOpNumThreads: cpuTimeMode ? Number(process.env.LLMK_NUM_THREADS ?? 0) : 0 });
        const a = new ort.Tensor('float32', xs, [M, K]);
        const out = (await sess.run({ A: a })).Y.data;
        const y = quant.matmul(x, pw, { compute });
        const yv = y.toArraySync() as Float32Array;
        y.dispose();
        let num = 0, den = 0;
        for (let i = 0; i < yv.length; i++) { num += (yv[i] - out[i]) ** 2; den += out[i] ** 2; }
        const p = await paired(() => { quant.matmul(x, pw, { compute }).dispose(); synchronizeSync('cpu'); }, () => sess.run({ A: a }));
        res.push({ suite: 'int4', case: name, device, ms: p.ms, peer: `onnxruntime-node MatMulNBits acc${acc}${peerIsaTag()}`, peerMs: p.peerMs,
          speedup: p.speedup,
          note: `ISA ${isa} (${flags.join(' ')}, ${model}); weight ${pw.layout}; ${timingNote()}; median of ${p.rounds} interleaved ratios, range ${p.minSpeedup.toFixed(2)}–${p.maxSpeedup.toFixed(2)}; rel L2 vs ORT ${Math.sqrt(num / den).toExponential(1)}` });
      } catch (e) {
        res.push({ suite: 'int4', case: name, device, ms: NaN, note: `ORT peer failed: ${(e as Error).message.split('\n')[0]}` });
      }
    }
    x.dispose();
    qw.dispose();
    pw.dispose();
  }
  return res;
}

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = { name: 'int4', cases, extra: cpuPeer };
export default suite;
