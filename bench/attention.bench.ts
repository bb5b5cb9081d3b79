// Block-sparse attention (issue 5): B=1, Hq=32, Hkv=8, D=128, bfloat16, N = Nq = Nk in {4096, 16384, 65536};
// layouts dense, causal, sliding window 1024 (causal), strided (Phi-3-small: 64-token blocks, 16 local
// blocks, vertical stride 8), globalLocal (2 global + 3 local blocks each side); plus decode (Nq=1, Nk=65536).
// FLOPs are counted on the token-visible pairs of the kept blocks (4·D per pair per head), so TFLOP/s is
// comparable across layouts. Peers: bench/peers/attention.py (PyTorch SDPA flash / FlexAttention BlockMask).
// On the CPU the same layouts run at reduced sizes (float32, Hq=8, Hkv=2), and the issue-13 goals are measured against
// onnxruntime-node SparseAttention and against our own matmul's GFLOP/s (cpuPeer).
import { matmul, randn, synchronizeSync, type DeviceName } from '../ts';
import * as attention from '../ts/attention';
import type { BenchCase, Result, Suite } from './harness';
import { field, loadOrt, msModel, str } from './onnx';
import { peerIsaTag } from './ort-isa';
import { cpuInfo, cpuTimeMode, paired, timingNote } from './paired';

type Layout = attention.BlockLayout;
const { BlockLayout } = attention;

interface Mask { causal: boolean; left: number; right: number }

/** Query-key pairs visible through the kept blocks and the token mask (per head, all heads summed). */
function keptPairs(L: Layout, m: Mask): number {
  const off = L.kLen - L.qLen;
  let pairs = 0;
  for (let h = 0; h < L.heads; h++) {
    for (let r = 0; r < L.nQB; r++) {
      const row = L.row(r, h);
      for (let i = r * L.blockQ; i < Math.min(L.qLen, (r + 1) * L.blockQ); i++) {
        const diag = i + off;
        let lo = 0, hi = L.kLen - 1;
        if (m.causal) hi = Math.min(hi, diag);
        if (m.right >= 0) hi = Math.min(hi, diag + m.right);
        if (m.left >= 0) lo = Math.max(lo, diag - m.left);
        for (const c of row) {
          const a = Math.max(lo, c * L.blockK), b = Math.min(hi, (c + 1) * L.blockK - 1, L.kLen - 1);
          if (b >= a) pairs += b - a + 1;
        }
      }
    }
  }
  return pairs / L.heads;
}

function layouts(N: number, bs: number, window: number): { name: string; L: Layout; m: Mask }[] {
  const none = { causal: false, left: -1, right: -1 };
  return [
    { name: 'dense', L: BlockLayout.dense({ seqLen: N, blockSize: 128 }), m: none },
    { name: 'causal', L: BlockLayout.causal({ seqLen: N, blockSize: 128 }), m: { ...none, causal: true } },
    { name: `sliding${window}`, L: BlockLayout.slidingWindow({ seqLen: N, blockSize: bs, window }), m: { causal: true, left: window, right: 0 } },
    { name: 'strided', L: BlockLayout.strided({ seqLen: N, blockSize: bs, localBlocks: 16, stride: 8 }), m: { ...none, causal: true } },
    { name: 'globalLocal', L: BlockLayout.globalLocal({ seqLen: N, blockSize: bs, globalBlocks: 2, localBlocks: 3 }), m: none },
  ];
}

function makeCase(device: DeviceName, dtype: 'bfloat16' | 'float32', name: string, Nq: number, Nk: number, Hq: number, Hkv: number,
  D: number, L: Layout, m: Mask): BenchCase {
  const q = randn([1, Nq, Hq, D], { device, dtype, seed: 1 });
  const k = randn([1, Nk, Hkv, D], { device, dtype, seed: 2 });
  const v = randn([1, Nk, Hkv, D], { device, dtype, seed: 3 });
  const es = dtype === 'float32' ? 4 : 2;
  const opts: attention.BlockSparseOptions = {
    causal: m.causal,
    window: m.left >= 0 || m.right >= 0 ? { left: m.left >= 0 ? m.left : Infinity, right: m.right >= 0 ? m.right : Infinity } : undefined,
  };
  return {
    name,
    run: () => attention.blockSparse(q, k, v, L, opts).out.dispose(),
    bytes: (2 * Nq * Hq * D + 2 * Nk * Hkv * D) * es,
    flops: 4 * D * Hq * keptPairs(L, m),
    teardown: () => { q.dispose(); k.dispose(); v.dispose(); },
  };
}

// ---- CPU peer: onnxruntime-node SparseAttention (com.microsoft; causal only; one-node ONNX model) ----

/** ModelProto of SparseAttention over a prompt of S tokens with past/present buffers of S tokens, float32. */
function sparseAttentionModel(S: number, Hq: number, Hkv: number, D: number, block: number, nRow: number, nnz: number): Uint8Array {
  const dims = (ds: number[]) => ds.flatMap((d) => field(1, 2, field(1, 0, d)));
  const vinfo = (no: number, name: string, type: number, ds: number[]) =>
    field(no, 2, [...field(1, 2, str(name)), ...field(2, 2, field(1, 2, [...field(1, 0, type), ...field(2, 2, dims(ds))]))]);
  const attr = (name: string, v: number) => field(5, 2, [...field(1, 2, str(name)), ...field(20, 0, 2), ...field(3, 0, v)]);
  const ins = ['query', 'key', 'value', 'past_key', 'past_value', 'block_row_indices', 'block_col_indices',
    'total_sequence_length', 'key_total_sequence_lengths'];
  const outs = ['output', 'present_key', 'present_value'];
  const node = [...ins.flatMap((n) => field(1, 2, str(n))), ...outs.flatMap((n) => field(2, 2, str(n))),
    ...field(4, 2, str('SparseAttention')), ...field(7, 2, str('com.microsoft')),
    ...attr('num_heads', Hq), ...attr('kv_num_heads', Hkv), ...attr('sparse_block_size', block)];
  const F = 1, I32 = 6;
  const graph = [...field(1, 2, node), ...field(2, 2, str('g')),
    ...vinfo(11, 'query', F, [1, S, Hq * D]), ...vinfo(11, 'key', F, [1, S, Hkv * D]), ...vinfo(11, 'value', F, [1, S, Hkv * D]),
    ...vinfo(11, 'past_key', F, [1, Hkv, S, D]), ...vinfo(11, 'past_value', F, [1, Hkv, S, D]),
    ...vinfo(11, 'block_row_indices', I32, [1, nRow + 1]), ...vinfo(11, 'block_col_indices', I32, [1, nnz]),
    ...vinfo(11, 'total_sequence_length', I32, []), ...vinfo(11, 'key_total_sequence_lengths', I32, [1]),
    ...vinfo(12, 'output', F, [1, S, Hq * D]), ...vinfo(12, 'present_key', F, [1, Hkv, S, D]), ...vinfo(12, 'present_value', F, [1, Hkv, S, D])];
  return msModel(graph);
}

/**
 * Ours vs ORT SparseAttention at S=2048, Hq=8, Hkv=2, D=128, float32, block 64 (causal and local-4), interleaved and
 * repeated (paired.ts: wall clock with 2 threads each, or with LLMK_BENCH_CPU_TIME=1 LLMK_NUM_THREADS=1 the CPU
 * time per call with 1 thread each). Also our GFLOP/s on the kept pairs (4·D FLOPs per visible score per head)
 * against our CPU matmul's GFLOP/s at one head's Q·Kᵀ shape ([S, D]·[D, S]), paired the same way in the same run.
 */
async function cpuPeer(device: DeviceName): Promise<Result[]> {
  if (device !== 'cpu') return [];
  const ort = loadOrt();
  if (!ort) return [{ suite: 'attention', case: 'onnxruntime-node SparseAttention peer', device, ms: NaN, note: 'onnxruntime-node is not installed: no CPU peer' }];
  const S = Number(process.env.LLMK_BENCH_ATTN_S ?? 2048), Hq = 8, Hkv = 2, D = 128, bs = 64, nb = S / bs;
  const reps = Number(process.env.LLMK_BENCH_REPS ?? 5);
  const ortThreads = cpuTimeMode ? Number(process.env.LLMK_NUM_THREADS ?? 1) : 2;
  const q = randn([1, S, Hq, D], { device, seed: 1 }), k = randn([1, S, Hkv, D], { device, seed: 2 }), v = randn([1, S, Hkv, D], { device, seed: 3 });
  const qa = q.toArraySync() as Float32Array, ka = k.toArraySync() as Float32Array, va = v.toArraySync() as Float32Array;
  const ma = randn([S, D], { device, seed: 4 }), mb = randn([D, S], { device, seed: 5 });
  const mm = () => { matmul(ma, mb).dispose(); synchronizeSync('cpu'); };
  const mmFlops = 2 * S * S * D;
  const { model } = cpuInfo();
  const res: Result[] = [];
  for (const [name, local] of [['causal', nb], ['local-4', 4]] as const) {
    const mask = Array.from({ length: nb }, (_, r) => Array.from({ length: nb }, (_, c) => c <= r && c > r - local));
    const L = BlockLayout.fromBlockMask(mask, { blockSize: bs });
    const rowPtr = Int32Array.from(L.rowPtr), colIdx = Int32Array.from(L.colIdx);
    const ours = () => { attention.blockSparse(q, k, v, L, { causal: true }).out.dispose(); synchronizeSync('cpu'); };
    const flops = 4 * D * Hq * keptPairs(L, { causal: true, left: -1, right: -1 });
    const caseName = `cpu S=${S} Hq=8 Hkv=2 D=128 f32 ${name} vs ORT SparseAttention`;
    try {
      const sess = await ort.InferenceSession.create(sparseAttentionModel(S, Hq, Hkv, D, bs, nb, colIdx.length), { intraOpNumThreads: ortThreads });
      const pk = new ort.Tensor('float32', new Float32Array(Hkv * S * D), [1, Hkv, S, D]);
      const pv = new ort.Tensor('float32', new Float32Array(Hkv * S * D), [1, Hkv, S, D]);
      const feeds = {
        query: new ort.Tensor('float32', qa, [1, S, Hq * D]), key: new ort.Tensor('float32', ka, [1, S, Hkv * D]),
        value: new ort.Tensor('float32', va, [1, S, Hkv * D]), past_key: pk, past_value: pv,
        block_row_indices: new ort.Tensor('int32', rowPtr, [1, nb + 1]), block_col_indices: new ort.Tensor('int32', colIdx, [1, colIdx.length]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(S), []), key_total_sequence_lengths: new ort.Tensor('int32', Int32Array.of(S), [1]),
      };
      // present_* bound to the past buffers (ORT's CPU kernel requires them to share memory).
      const peer = () => sess.run(feeds, { output: null, present_key: pk, present_value: pv });
      const peerOut = (await peer()).output.data;
      const o = attention.blockSparse(q, k, v, L, { causal: true }).out;
      const oa = o.toArraySync() as Float32Array;
      o.dispose();
      let num = 0, den = 0;
      for (let i = 0; i < oa.length; i++) { num += (oa[i] - peerOut[i]) ** 2; den += peerOut[i] ** 2; }
      const p = await paired(ours, peer, reps, 300);
      // kept-pair GFLOP/s over matmul GFLOP/s per round = (flops / ours) / (mmFlops / mm) = flops / mmFlops · mm / ours
      const m = await paired(ours, mm, reps, 300);
      const frac = (flops / mmFlops) * m.speedup, gflops = flops / m.ms / 1e6, mmGflops = mmFlops / m.peerMs / 1e6;
      res.push({ suite: 'attention', case: caseName, device, ms: p.ms, peer: `onnxruntime-node 1.30.0 SparseAttention (${ortThreads} thread${ortThreads > 1 ? 's' : ''}${peerIsaTag()})`,
        peerMs: p.peerMs, speedup: p.speedup, tflops: gflops / 1e3,
        note: `${timingNote()}; median of ${p.rounds} interleaved ratios (range ${p.minSpeedup.toFixed(2)}–${p.maxSpeedup.toFixed(2)}); ` +
          `rel L2 vs ORT ${Math.sqrt(num / den).toExponential(1)}; kept pairs ${(flops / 1e9).toFixed(2)} GFLOP at ${gflops.toFixed(1)} GFLOP/s = ` +
          `${(100 * frac).toFixed(0)}% of our matmul [${S},${D}]·[${D},${S}] at ${mmGflops.toFixed(1)} GFLOP/s (median of ${m.rounds} paired ratios, ` +
          `range ${(100 * (flops / mmFlops) * m.minSpeedup).toFixed(0)}–${(100 * (flops / mmFlops) * m.maxSpeedup).toFixed(0)}%); ` +
          `ISA ${attention.cpuIsa()} (matmul ${process.env.LLMK_CPU_MATMUL_ISA ?? 'default'}); ${model}` });
    } catch (e) {
      res.push({ suite: 'attention', case: caseName, device, ms: NaN, note: `ORT peer failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }
  [q, k, v, ma, mb].forEach((t) => t.dispose());
  return res;
}

const suite: Suite & { extra: (d: DeviceName) => Promise<Result[]> } = {
  name: 'attention',
  extra: cpuPeer,
  cases(device, quick) {
    const gpu = device !== 'cpu';
    const cases: BenchCase[] = [];
    if (gpu) {
      const sizes = quick ? [4096, 16384] : [4096, 16384, 65536];
      for (const N of sizes) {
        for (const { name, L, m } of layouts(N, 64, 1024)) {
          cases.push(makeCase(device, 'bfloat16', `${name} N=${N}`, N, N, 32, 8, 128, L, m));
        }
      }
      const dec = BlockLayout.dense({ qLen: 1, kLen: 65536, blockSize: 128 });
      cases.push(makeCase(device, 'bfloat16', 'decode Nk=65536', 1, 65536, 32, 8, 128, dec, { causal: false, left: -1, right: -1 }));
    } else if (process.env.LLMK_BENCH_ATTN_GOALS !== '1') {  // 1: only the goal comparisons (extra)
      const sizes = quick ? [1024] : [1024, 4096];
      for (const N of sizes) {
        for (const { name, L, m } of layouts(N, 64, 256)) {
          cases.push(makeCase(device, 'float32', `cpu ${name} N=${N}`, N, N, 8, 2, 128, L, m));
        }
      }
      const dec = BlockLayout.dense({ qLen: 1, kLen: 16384, blockSize: 128 });
      cases.push(makeCase(device, 'float32', 'cpu decode Nk=16384', 1, 16384, 8, 2, 128, dec, { causal: false, left: -1, right: -1 }));
    }
    return cases;
  },
};
export default suite;
