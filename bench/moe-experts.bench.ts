// moe.experts on the CPU against onnxruntime-node's com.microsoft MoE (float32, swiglu, swiglu_fusion = 1,
// i.e. interleaved gate/up; as many threads as ours) and QMoE (float16, 4-bit, block_size 128),
// H = 2048, I = 1024, E = 8, k = 2, T = 1 / 16 / 256, plus the memory floor at T = 1 (bytes of the k
// chosen experts over the measured copy bandwidth) and, at T = 256, the CPU matmul (512×2048×2048,
// float32) in the same rounds. Ours = moe.topk + moe.experts (ORT's MoE does its own softmax + top-k).
// The machine is shared: ours and the peer are timed alternately, several rounds, and the median of the
// per-round ratios is reported.
//   npx tsc -p bench/tsconfig.json && node lib-bench/bench/moe-experts.bench.js [--json FILE] [--rounds N]
// LLMK_NUM_THREADS=1 runs both sides on one thread (ORT's intraOpNumThreads follows it): the steadier
// figure on a loaded machine.
import * as fs from 'fs';
import * as os from 'os';
import { synchronizeSync, tensor, type Tensor } from '../ts';
import * as moe from '../ts/moe';
import { matmul } from '../ts/ops';
import * as quant from '../ts/quant';
import { str, varint } from './onnx';

const H = 2048, I = 1024, E = 8, K = 2, G = 128;
const THREADS = Number(process.env.LLMK_NUM_THREADS ?? os.cpus().length);

type OrtSession = { run(f: object): Promise<Record<string, { data: ArrayLike<number> }>> };
type Ort = {
  InferenceSession: { create(b: Uint8Array, o?: object): Promise<OrtSession> };
  Tensor: new (t: string, d: ArrayLike<number> | Uint16Array, s: number[]) => unknown;
};

/**
 * Wall and process CPU milliseconds per call of fn over about budgetMs (after one warm-up call). On a
 * shared machine the CPU time (ours and ORT's threads both run in this process) is the steadier figure.
 */
async function timeMs(fn: () => unknown | Promise<unknown>, budgetMs: number): Promise<{ wall: number; cpu: number }> {
  await fn();
  const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
  let n = 0;
  while (Number(process.hrtime.bigint() - t0) < budgetMs * 1e6) { await fn(); n++; }
  const c = process.cpuUsage(c0);
  return { wall: Number(process.hrtime.bigint() - t0) / 1e6 / n, cpu: (c.user + c.system) / 1e3 / n };
}

const median = (a: number[]) => { const s = a.slice().sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

/** One protobuf field as bytes (wire 0 varint, wire 2 length-delimited); Buffers, for the 100+ MB initializers. */
function fb(no: number, wire: number, payload: number | Uint8Array | number[] | Buffer[]): Buffer {
  const key = Buffer.from(varint(no * 8 + wire));
  if (wire === 0) return Buffer.concat([key, Buffer.from(varint(payload as number))]);
  const p = Array.isArray(payload) && (payload.length === 0 || Buffer.isBuffer(payload[0]))
    ? Buffer.concat(payload as Buffer[]) : Buffer.from(payload as Uint8Array | number[]);
  return Buffer.concat([key, Buffer.from(varint(p.length)), p]);
}

/** ModelProto of one com.microsoft node with float inputs (elem 1 float32, 10 float16) and initializers. */
function model(op: string, elem: number, T: number, inits: { name: string; type: number; dims: number[]; raw: Uint8Array }[],
  inputs: string[], attrs: [string, number | string][]): Uint8Array {
  const dims = (ds: number[]) => ds.map((d) => fb(1, 2, [fb(1, 0, d)]));
  const vinfo = (no: number, name: string, ds: number[]) =>
    fb(no, 2, [fb(1, 2, str(name)), fb(2, 2, [fb(1, 2, [fb(1, 0, elem), fb(2, 2, dims(ds))])])]);
  const attr = (name: string, v: number | string) => fb(5, 2, typeof v === 'number'
    ? [fb(1, 2, str(name)), fb(20, 0, 2), fb(3, 0, v)]
    : [fb(1, 2, str(name)), fb(20, 0, 3), fb(4, 2, str(v))]);
  const node = [...inputs.map((n) => fb(1, 2, str(n))), fb(2, 2, str('Y')), fb(4, 2, str(op)),
    fb(7, 2, str('com.microsoft')), ...attrs.map(([n, v]) => attr(n, v))];
  const init = (x: { name: string; type: number; dims: number[]; raw: Uint8Array }) =>
    fb(5, 2, [...x.dims.map((d) => fb(1, 0, d)), fb(2, 0, x.type), fb(8, 2, str(x.name)), fb(9, 2, x.raw)]);
  const graph = [fb(1, 2, node), fb(2, 2, str('g')), ...inits.map(init),
    vinfo(11, 'X', [T, H]), vinfo(11, 'P', [T, E]), vinfo(12, 'Y', [T, H])];
  return Buffer.concat([fb(1, 0, 8), fb(7, 2, graph),
    fb(8, 2, [fb(1, 2, []), fb(2, 0, 17)]), fb(8, 2, [fb(1, 2, str('com.microsoft')), fb(2, 0, 1)])]);
}
const bytes = (a: Float32Array | Uint8Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Copy bandwidth (GB/s, read + write counted) of a 256 MiB buffer, best of 5. */
function copyGBs(): number {
  const n = 64 << 20, a = new Float32Array(n).fill(1), b = new Float32Array(n);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    b.set(a);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (2 * n * 4) / best / 1e9;
}

function f16bits(v: number): number {
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000, e = ((u >>> 23) & 0xff) - 112, m = u & 0x7fffff;
  if (e <= 0) return s;
  if (e >= 31) return s | 0x7c00;
  const r = (e << 10) | (m >>> 13), rest = m & 0x1fff;
  return s | (r + (rest > 0x1000 || (rest === 0x1000 && (r & 1)) ? 1 : 0));
}

async function main(): Promise<void> {
  const rounds = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : 7;
  const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort: Ort = require('onnxruntime-node');
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 - 0.5; };
  const gu = new Float32Array(E * 2 * I * H).map(() => rnd() * 0.05);
  const dn = new Float32Array(E * H * I).map(() => rnd() * 0.05);
  using gut = tensor(gu, { shape: [E, 2 * I, H] });
  using dnt = tensor(dn, { shape: [E, H, I] });
  // INT4: per-expert quantisation (group 128, symmetric), stacked
  const q4 = (w: Tensor, n: number, k: number) => {
    const per: quant.Int4Weight[] = [];
    for (let e = 0; e < E; e++) {
      using we = w.narrow(0, e, 1).reshape([n, k]);
      per.push(quant.quantize(we, { groupSize: G, scaleDtype: 'float32' }));
    }
    const st = quant.stackExperts(per);
    for (const p of per) p.dispose();
    return st;
  };
  using gq = q4(gut, 2 * I, H);
  using dq = q4(dnt, H, I);
  const bw = copyGBs();
  const results: object[] = [];
  for (const T of [1, 16, 256]) {
    const xs = new Float32Array(T * H).map(() => rnd());
    const logits = new Float32Array(T * E).map(() => rnd() * 4);
    using x = tensor(xs, { shape: [T, H] });
    using lg = tensor(logits, { shape: [T, E] });
    // At T = 1 the same 2 experts every call would leave their 50 MB mostly in the 32 MB L3: calls
    // rotate over 4 routings that pick experts (2c, 2c+1), so all 8 experts' weights cycle through
    // memory as in decoding (T = 16 and 256 touch every expert anyway). Both sides rotate alike.
    const sets = T === 1 ? [0, 1, 2, 3].map((c) => Float32Array.from({ length: E }, (_, e) => (e >> 1 === c ? 4 - (e & 1) : 0))) : [logits];
    const lgs = sets.map((l) => tensor(l, { shape: [T, E] }));
    let call = 0;
    const ours = (w: { gateUp: Tensor | quant.Int4Weight; down: Tensor | quant.Int4Weight }) => () => {
      using r = moe.topk(lgs[call++ % lgs.length], { k: K });
      moe.experts(x, r, w, { activation: 'swiglu', layout: 'interleaved' }).dispose();
      synchronizeSync('cpu');
    };
    // ORT MoE float32: fc1 [E, 2I, H] interleaved, fc2 [E, H, I]
    const moeSess = await ort.InferenceSession.create(model('MoE', 1, T, [
      { name: 'W1', type: 1, dims: [E, 2 * I, H], raw: bytes(gu) }, { name: 'W2', type: 1, dims: [E, H, I], raw: bytes(dn) }],
    ['X', 'P', 'W1', '', 'W2'], [['k', K], ['activation_type', 'swiglu'], ['swiglu_fusion', 1], ['normalize_routing_weights', 1]]),
    { intraOpNumThreads: THREADS });
    const feeds = { X: new ort.Tensor('float32', xs, [T, H]), P: new ort.Tensor('float32', logits, [T, E]) };
    const feedSets = sets.map((l) => ({ X: feeds.X, P: new ort.Tensor('float32', l, [T, E]) }));
    // accuracy check vs ORT (onnxruntime-node 1.30's CPU swiglu: silu(gate)·up, gate on even rows)
    using r0 = moe.topk(lg, { k: K });
    using y0 = moe.experts(x, r0, { gateUp: gut, down: dnt }, { activation: 'swiglu', layout: 'interleaved' });
    const ov = (await moeSess.run(feeds)).Y.data;
    const relTo = (yv: Float32Array) => {
      let num = 0, den = 0;
      for (let i = 0; i < yv.length; i++) { num += (yv[i] - ov[i]) ** 2; den += ov[i] ** 2; }
      return Math.sqrt(num / den);
    };
    const rel = relTo(y0.toArraySync() as Float32Array);
    // QMoE float16, 4-bit, block-wise scales (same codes and scales as ours; zero point 8)
    let qSess: OrtSession | null = null, qNote = '';
    const x16 = Uint16Array.from(xs, f16bits), p16 = Uint16Array.from(logits, f16bits);
    try {
      const s16 = (w: quant.Int4Weight) => Uint16Array.from(w.scales.toArraySync() as Float32Array, f16bits);
      qSess = await ort.InferenceSession.create(model('QMoE', 10, T, [
        { name: 'W1', type: 2, dims: [E, 2 * I, H / 2], raw: gq.qweight.toArraySync() as Uint8Array },
        { name: 'S1', type: 10, dims: [E, 2 * I, H / G], raw: bytes(s16(gq)) },
        { name: 'W2', type: 2, dims: [E, H, I / 2], raw: dq.qweight.toArraySync() as Uint8Array },
        { name: 'S2', type: 10, dims: [E, H, I / G], raw: bytes(s16(dq)) }],
      ['X', 'P', 'W1', 'S1', '', 'W2', 'S2'], [['k', K], ['activation_type', 'swiglu'], ['swiglu_fusion', 1],
        ['normalize_routing_weights', 1], ['expert_weight_bits', 4], ['block_size', G]]), { intraOpNumThreads: THREADS });
      await qSess.run({ X: new ort.Tensor('float16', x16, [T, H]), P: new ort.Tensor('float16', p16, [T, E]) });
    } catch (e) { qSess = null; qNote = `QMoE peer failed: ${(e as Error).message.split('\n')[0]}`; }
    const qFeedSets = sets.map((l) => ({ X: new ort.Tensor('float16', x16, [T, H]), P: new ort.Tensor('float16', Uint16Array.from(l, f16bits), [T, E]) }));
    const budget = T === 256 ? 1500 : 400;
    type M = { wall: number; cpu: number };
    const rows = { dense: [] as M[], denseOrt: [] as M[], int4: [] as M[], qmoe: [] as M[], matmul: [] as M[] };
    // the dense CPU matmul at a compute-bound shape, the yardstick of the T = 256 goal
    using ma = T === 256 ? tensor(new Float32Array(512 * H).map(() => rnd()), { shape: [512, H] }) : null;
    using mb = T === 256 ? tensor(new Float32Array(H * H).map(() => rnd()), { shape: [H, H] }) : null;
    for (let r = 0; r < rounds; r++) {
      if (ma && mb) rows.matmul.push(await timeMs(() => { matmul(ma, mb).dispose(); synchronizeSync('cpu'); }, budget));
      rows.dense.push(await timeMs(ours({ gateUp: gut, down: dnt }), budget));
      rows.denseOrt.push(await timeMs(() => moeSess.run(feedSets[call++ % feedSets.length]), budget));
      rows.int4.push(await timeMs(ours({ gateUp: gq, down: dq }), budget));
      if (qSess) { const s = qSess; rows.qmoe.push(await timeMs(() => s.run(qFeedSets[call++ % qFeedSets.length]), budget)); }
    }
    const med = (a: M[], key: keyof M) => median(a.map((v) => v[key]));
    const ratio = (a: M[], b: M[], key: keyof M) => median(a.map((v, i) => b[i][key] / v[key]));
    const floorMs = (K * (3 * I * H) * 4) / (bw * 1e9 / 2) * 1e3;  // k experts' float32 bytes at the copy read rate
    const flops = 2 * T * K * 3 * I * H;
    const res = {
      T, oursDenseMs: med(rows.dense, 'wall'), ortMoeMs: med(rows.denseOrt, 'wall'),
      speedupVsOrtMoe: ratio(rows.dense, rows.denseOrt, 'wall'),
      oursDenseCpuMs: med(rows.dense, 'cpu'), ortMoeCpuMs: med(rows.denseOrt, 'cpu'),
      cpuTimeRatioVsOrtMoe: ratio(rows.dense, rows.denseOrt, 'cpu'),
      oursDenseGflopsPerCpuSecond: flops / (med(rows.dense, 'cpu') * 1e6),
      oursInt4Ms: med(rows.int4, 'wall'), oursInt4CpuMs: med(rows.int4, 'cpu'),
      qmoeMs: rows.qmoe.length ? med(rows.qmoe, 'wall') : null, qmoeCpuMs: rows.qmoe.length ? med(rows.qmoe, 'cpu') : null,
      speedupInt4VsQmoe: rows.qmoe.length ? ratio(rows.int4, rows.qmoe, 'wall') : null,
      cpuTimeRatioInt4VsQmoe: rows.qmoe.length ? ratio(rows.int4, rows.qmoe, 'cpu') : null,
      ...(rows.matmul.length ? {
        matmulGflopsPerCpuSecond: (2 * 512 * H * H) / (med(rows.matmul, 'cpu') * 1e6),
        denseOverMatmulGflops: median(rows.dense.map((v, i) => (flops / v.cpu) / ((2 * 512 * H * H) / rows.matmul[i].cpu))),
      } : {}),
      relL2VsOrtMoe: rel, ...(T === 1 ? { memoryFloorDenseMs: floorMs, denseOverFloor: med(rows.dense, 'wall') / floorMs } : {}),
      note: qNote || undefined,
    };
    console.log(JSON.stringify(res));
    for (const l of lgs) l.dispose();
    results.push(res);
  }
  const out = {
    suite: 'moe-experts', date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads: THREADS,
    isa: process.env.LLMK_CPU_MATMUL_ISA ?? 'avx512 (best available)', copyGBs: bw, shape: { H, I, E, k: K, groupSize: G },
    method: `interleaved rounds (${rounds}); per-case medians; speedups are medians of per-round ratios (wall clock, and process CPU time: ORT's threads run in this process too)`, load: os.loadavg(), results,
  };
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
