// Tensor-parallel layers on the local backend equal the unsharded layer (float64 reference):
// ColumnParallelLinear (with and without gatherOutput), RowParallelLinear (split and full input),
// the Megatron MLP (column → row), dense float32/float16 and INT4 shards; dist.shard.
import * as path from 'path';
import * as dist from '../ts/dist';
import { tensor } from '../ts/tensor';
import * as ref from './reference/dist';

// CPU / local-backend suite: gpu-check's CUDA-only jest run (LLMK_TEST_DEVICES=cuda) leaves it to CI.
const CPU_RUN = !process.env.LLMK_TEST_DEVICES || process.env.LLMK_TEST_DEVICES === 'cpu';
const cpuDescribe = (CPU_RUN ? describe : describe.skip) as typeof describe;

const SEED = Number(process.env.LLMK_TEST_SEED ?? Date.now() % 1e9);
const QUANT = path.join(__dirname, '..', 'ts', 'quant');

cpuDescribe('dist.shard', () => {
  test('splits along any dimension, copies, refuses uneven splits', () => {
    const t = tensor(Float32Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4] });
    const a = dist.shard(t, 0, 1, 2);
    expect(a.shape).toEqual([1, 3, 4]);
    expect(Array.from(a.toArraySync() as ArrayLike<number | bigint>)).toEqual(Array.from({ length: 12 }, (_, i) => 12 + i));
    const b = dist.shard(t, -1, 1, 2);
    expect(b.shape).toEqual([2, 3, 2]);
    expect(Array.from(b.toArraySync() as ArrayLike<number | bigint>)).toEqual([2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23]);
    const h = tensor(Float32Array.from([1, 2, 3, 4]), { shape: [2, 2], dtype: 'bfloat16' });
    expect(Array.from(dist.shard(h, 1, 0, 2).toArraySync() as ArrayLike<number | bigint>)).toEqual([1, 3]);
    expect(() => dist.shard(t, 1, 0, 2)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_SHAPE' }));
    expect(() => dist.shard(t, 3, 0, 2)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    expect(() => dist.shard(t, 0, 2, 2)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    t.dispose();
    expect(Array.from(a.toArraySync() as ArrayLike<number | bigint>)[0]).toBe(12); // a copy: independent of t
  });
});

// One rank: builds the layers from the full weights and returns their outputs.
async function rankFn({ comm, dist: d, lib, require: req, args }: any): Promise<any> {
  const out: any = {};
  const T = (data: Float32Array, shape: number[], dtype = args.dtype) => lib.tensor(data, { shape, dtype });
  const x = T(args.x, [args.M, args.K]);
  const W1 = T(args.w1, [args.H, args.K]), b1 = T(args.b1, [args.H]);
  const W2 = T(args.w2, [args.N, args.H]), b2 = T(args.b2, [args.N]);
  out.x = await x.toArray();
  out.w1 = await W1.toArray(); out.b1 = await b1.toArray(); out.w2 = await W2.toArray(); out.b2 = await b2.toArray();

  const colG = d.ColumnParallelLinear.fromFull(comm, { weight: W1, bias: b1, gatherOutput: true });
  out.colGather = await (await colG.forward(x)).toArray();
  const colG1 = await colG.forward(x.narrow(0, 0, 1));
  out.colGather1 = { shape: colG1.shape, data: await colG1.toArray() };
  const col = d.ColumnParallelLinear.fromFull(comm, { weight: W1, bias: b1 });
  const h = await col.forward(x); // [M, H/p]
  out.colShard = { shape: h.shape, data: await h.toArray() };
  const row = d.RowParallelLinear.fromFull(comm, { weight: W2, bias: b2 });
  out.mlp = await (await row.forward(h)).toArray();
  const rowFull = d.RowParallelLinear.fromFull(comm, { weight: W1, bias: b1, inputIsParallel: false });
  out.rowFull = await (await rowFull.forward(x)).toArray();

  if (args.int4) {
    const quant = req(args.quantPath);
    const q1 = quant.quantize(W1, { groupSize: 32 }), q2 = quant.quantize(W2, { groupSize: 32 });
    out.dq1 = await quant.dequantize(q1, { dtype: 'float32' }).toArray();
    out.dq2 = await quant.dequantize(q2, { dtype: 'float32' }).toArray();
    const c = d.ColumnParallelLinear.fromFull(comm, { weight: q1, bias: b1 });
    const r = d.RowParallelLinear.fromFull(comm, { weight: q2, bias: b2 });
    const hq = await c.forward(x);
    out.int4Mlp = await (await r.forward(hq)).toArray();
    const cg = d.ColumnParallelLinear.fromFull(comm, { weight: q1, bias: b1, gatherOutput: true });
    out.int4ColGather = await (await cg.forward(x)).toArray();
    // A K split that does not hold whole groups is refused.
    try { d.shard(q1, 1, 0, 3); out.badSplit = 'none'; } catch (e: any) { out.badSplit = e.code; }
  }
  await comm.barrier();
  return out;
}

cpuDescribe.each([
  [1, 'float32'], [2, 'float32'], [4, 'float32'], [2, 'float16'], [3, 'float32'],
] as const)('tensor-parallel layers, %i rank(s), %s', (p, dtype) => {
  test('equal the unsharded layers', async () => {
    const seed = SEED + p * 10 + (dtype === 'float16' ? 1 : 0);
    const r = ref.rng(seed);
    const M = 5, K = 64 * p, H = 32 * p, N = 24 * p;
    const args = {
      dtype, M, K, H, N, quantPath: QUANT, int4: dtype === 'float32' && p !== 3,
      x: ref.randn(r, M * K), w1: ref.randn(r, H * K, 0.1), b1: ref.randn(r, H), w2: ref.randn(r, N * H, 0.1), b2: ref.randn(r, N),
    };
    const res = await dist.runLocal(p, rankFn, { args, timeoutMs: 60000 }) as any[];
    const tol = dtype === 'float32' ? 1e-5 : 1e-2;
    const o = res[0];
    const y1 = ref.linear(o.x, o.w1, o.b1, M, H, K);
    const mlp = ref.linear(y1, o.w2, o.b2, M, N, H);
    const msg = (what: string, e: number) => `${what}: rel L2 ${e} (seed ${seed}, LLMK_TEST_SEED=${SEED})`;
    for (let rank = 0; rank < p; rank++) {
      const g = res[rank];
      expect(msg('column gather', ref.relL2(g.colGather, y1))).toBe(msg('column gather', Math.min(ref.relL2(g.colGather, y1), tol)));
      expect(g.colGather1.shape).toEqual([1, H]);
      expect(ref.relL2(g.colGather1.data, y1.subarray(0, H))).toBeLessThanOrEqual(tol);
      // Column shard r holds output columns r·H/p ..
      expect(g.colShard.shape).toEqual([M, H / p]);
      const want = new Float64Array(M * H / p);
      for (let m = 0; m < M; m++) for (let j = 0; j < H / p; j++) want[m * (H / p) + j] = y1[m * H + rank * (H / p) + j];
      expect(ref.relL2(g.colShard.data, want)).toBeLessThanOrEqual(tol);
      // The MLP output is the same on every rank. float16: the hidden activations are rounded.
      expect(msg('mlp', ref.relL2(g.mlp, mlp))).toBe(msg('mlp', Math.min(ref.relL2(g.mlp, mlp), tol)));
      expect(ref.relL2(g.rowFull, y1)).toBeLessThanOrEqual(tol);
      if (args.int4) {
        const yq = ref.linear(o.x, g.dq1, o.b1, M, H, K);
        const mq = ref.linear(yq, g.dq2, o.b2, M, N, H);
        expect(msg('int4 mlp', ref.relL2(g.int4Mlp, mq))).toBe(msg('int4 mlp', Math.min(ref.relL2(g.int4Mlp, mq), 1e-5)));
        expect(ref.relL2(g.int4ColGather, yq)).toBeLessThanOrEqual(1e-5);
        expect(g.badSplit).toBe('ERR_LLMK_SHAPE');
      }
    }
  });
});

cpuDescribe('examples/tp-mlp.ts', () => {
  test('runs a 2-layer MLP on 2 local ranks and matches the unsharded MLP', async () => {
    const { spawn } = await import('child_process');
    const ex = path.join(__dirname, '..', 'examples', 'tp-mlp.ts');
    const code = `
      const ts = require(${JSON.stringify(require.resolve('typescript'))}), fs = require('fs');
      require.extensions['.ts'] = (m, f) => m._compile(ts.transpileModule(fs.readFileSync(f, 'utf8'),
        { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: f }).outputText, f);
      process.argv = [process.argv[0], ${JSON.stringify(ex)}, '2'];
      require(${JSON.stringify(ex)});`;
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn(process.execPath, ['-e', code]);
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (out += d));
      c.on('exit', (code) => resolve({ code, out }));
    });
    expect(r.out).toMatch(/tp-mlp: 2 rank\(s\), backend local, y \[4, 128\], max relative error vs unsharded \d/);
    expect(r.code).toBe(0);
  });
});
