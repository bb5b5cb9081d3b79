// MoE routing (issue 3). moe.topk for T in {1, 16, 256, 4096, 65536} × (E=8,k=2 softmax), (E=64,k=8
// softmax), (E=128,k=8 softmax), (E=256,k=8 sigmoid, 8 groups, top-4 groups, bias); bfloat16 logits on a
// GPU, float32 on the CPU (--quick: T in {16, 4096, 65536}; the CPU stops at T = 4096 with --quick).
// Bytes = the floor T·E·sizeof(logit) + 8·T·k (weights + ids written once). Plus moe.align at k=8,
// E=256, blockSize 64. Peers: bench/peers/moe.py (PyTorch eager softmax/sigmoid + topk + gather +
// renormalise, same case names, suite "moe") on the GPU machine; on the CPU, onnxruntime-node TopK on the
// same logits through a one-node ONNX model built here, when onnxruntime-node is installed.
import { randn, tensor, type DeviceName } from '../ts';
import * as moe from '../ts/moe';
import type { BenchCase, Result, Suite } from './harness';
import { timeCase } from './harness';
import { field, str } from './onnx';

export const TOPK_CASES = [
  { tag: 'E8k2-softmax', E: 8, k: 2, scoring: 'softmax' as const },
  { tag: 'E64k8-softmax', E: 64, k: 8, scoring: 'softmax' as const },
  { tag: 'E128k8-softmax', E: 128, k: 8, scoring: 'softmax' as const },
  { tag: 'E256k8-sigmoid-g8t4-bias', E: 256, k: 8, scoring: 'sigmoid' as const, groups: { count: 8, topk: 4 }, bias: true },
];
const TOKENS = [1, 16, 256, 4096, 65536];

function cases(device: DeviceName, quick: boolean): BenchCase[] {
  const gpu = device !== 'cpu';
  const dtype = gpu ? 'bfloat16' : 'float32';
  const esize = gpu ? 2 : 4;
  const tokens = quick ? (gpu ? [16, 4096, 65536] : [16, 4096]) : TOKENS;
  const out: BenchCase[] = [];
  for (const c of TOPK_CASES) {
    const bias = c.bias ? tensor(Float32Array.from({ length: c.E }, (_, e) => 0.1 * Math.sin(e * 12.9898)), { device }) : undefined;
    tokens.forEach((T, i) => {
      const logits = randn([T, c.E], { device, dtype, seed: 5 + T });
      out.push({
        name: `${c.tag} T=${T} ${dtype}`,
        run: () => moe.topk(logits, { k: c.k, scoring: c.scoring, groups: c.groups, bias }).dispose(),
        bytes: T * c.E * esize + 8 * T * c.k,
        graph: gpu && T <= 4096,
        teardown: () => { logits.dispose(); if (i === tokens.length - 1) bias?.dispose(); },
      });
    });
  }
  for (const T of quick ? [256, 65536] : [16, 256, 4096, 65536]) {
    if (!gpu && T > 4096 && quick) continue;
    const k = 8, E = 256;
    const data = new Int32Array(T * k);
    let s = 12345;
    for (let i = 0; i < data.length; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s >>> 8) % E; }
    const ids = tensor(data, { device, shape: [T, k] });
    out.push({
      name: `align T=${T} k=8 E=256 bs=64`,
      run: () => moe.align(ids, { numExperts: E, blockSize: 64 }).dispose(),
      bytes: T * k * 4 * 2,
      graph: gpu,
      teardown: () => ids.dispose(),
    });
  }
  return out;
}

// ---- CPU peer: onnxruntime-node TopK (one-node ONNX model, protobuf encoded here) ----


/** ModelProto of V,I = TopK(X[T,E], K=[k]) (opset 11: axis -1, largest, sorted). */
function topkModel(T: number, E: number, k: number): Uint8Array {
  const dims = (ds: number[]) => ds.flatMap((d) => field(1, 2, field(1, 0, d)));            // TensorShapeProto.dim
  const vinfo = (no: number, name: string, elem: number, ds: number[]) =>                   // ValueInfoProto
    field(no, 2, [...field(1, 2, str(name)), ...field(2, 2, field(1, 2, [...field(1, 0, elem), ...field(2, 2, dims(ds))]))]);
  const kTensor = [...field(1, 0, 1), ...field(2, 0, 7), ...field(7, 0, k), ...field(8, 2, str('K'))]; // dims, INT64, int64_data, name
  const node = [...field(1, 2, str('X')), ...field(1, 2, str('K')), ...field(2, 2, str('V')), ...field(2, 2, str('I')),
    ...field(4, 2, str('TopK'))];
  const graph = [...field(1, 2, node), ...field(2, 2, str('g')), ...field(5, 2, kTensor),
    ...vinfo(11, 'X', 1, [T, E]), ...vinfo(12, 'V', 1, [T, k]), ...vinfo(12, 'I', 7, [T, k])];
  return Uint8Array.from([...field(1, 0, 7), ...field(7, 2, graph), ...field(8, 2, [...field(1, 2, []), ...field(2, 0, 11)])]);
}

async function cpuPeer(device: DeviceName): Promise<Result[]> {
  if (device !== 'cpu') return [];
  let ort: { InferenceSession: { create(b: Uint8Array, o?: object): Promise<{ run(f: object): Promise<object> }> }; Tensor: new (t: string, d: Float32Array | BigInt64Array, s: number[]) => unknown };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ort = require('onnxruntime-node');
  } catch {
    return [{ suite: 'moe', case: 'onnxruntime-node TopK peer', device, ms: NaN, note: 'onnxruntime-node is not installed: no CPU peer' }];
  }
  const res: Result[] = [];
  for (const c of TOPK_CASES) {
    for (const T of [16, 4096]) {
      const name = `softmax top-k E=${c.E} k=${c.k} T=${T} float32 vs ORT TopK`;
      try {
        const data = new Float32Array(T * c.E).map(() => Math.random() * 4 - 2);
        const sess = await ort.InferenceSession.create(topkModel(T, c.E, c.k), { intraOpNumThreads: 0 });
        const x = new ort.Tensor('float32', data, [T, c.E]);
        const outs = (await sess.run({ X: x })) as Record<string, { data: BigInt64Array }>;
        const t0 = process.hrtime.bigint();
        let n = 0;
        while (Number(process.hrtime.bigint() - t0) < 3e8) { await sess.run({ X: x }); n++; }
        const ms = Number(process.hrtime.bigint() - t0) / 1e6 / n;
        // ours on the same logits (softmax top-k selects by logit, as TopK does), same wall-clock method
        const logits = tensor(data, { device, shape: [T, c.E] });
        const r = moe.topk(logits, { k: c.k });
        const ids = r.ids.toArraySync() as Int32Array;
        r.dispose();
        const same = ids.every((v, i) => BigInt(v) === outs.I.data[i]);
        const t1 = process.hrtime.bigint();
        let m = 0;
        while (Number(process.hrtime.bigint() - t1) < 3e8) { moe.topk(logits, { k: c.k }).ids.toArraySync(); m++; }
        const ourMs = Number(process.hrtime.bigint() - t1) / 1e6 / m;
        logits.dispose();
        res.push({ suite: 'moe', case: name, device, ms: ourMs, peer: 'onnxruntime-node TopK', peerMs: ms, speedup: ms / ourMs,
          note: same ? 'ids equal' : 'ids differ from TopK' });
      } catch (e) {
        res.push({ suite: 'moe', case: name, device, ms: NaN, note: `ORT peer failed: ${(e as Error).message.split('\n')[0]}` });
      }
    }
  }
  return res;
}

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = { name: 'moe', cases, extra: cpuPeer };
export default suite;
