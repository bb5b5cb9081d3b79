// attention.blockSparse on every available device against the float64 reference (dense mask expansion).
import * as attention from '../ts/attention';
import { BlockLayout } from '../ts/attention';
import { native } from '../ts/native';
import { tensor } from '../ts/tensor';
import type { DType } from '../ts/dtype';
import { backends, parseDevice } from '../ts/device';
import { describeDevices, expectCode, randnArray, relL2, rng, SEED, tol } from './helpers';
import { attentionRef, RefOptions } from './reference/attention';

type FDType = 'float32' | 'float16' | 'bfloat16';

interface Case {
  name: string;
  dtype: FDType;
  B?: number; Nq: number; Nk: number; Hq: number; Hkv: number; D: number;
  layout: BlockLayout;
  opts?: attention.BlockSparseOptions;
  qScale?: number;
  /** Output tolerance when the case is worse conditioned than the defaults of docs/architecture.md §6 assume. */
  tol?: number;
  mutate?: (q: Float32Array, k: Float32Array, v: Float32Array) => void;
}

let caseNo = 0;

async function runCase(device: string, c: Case): Promise<{ out: Float32Array; lse: Float32Array; ref: ReturnType<typeof attentionRef> }> {
  const B = c.B ?? 1;
  const seed = SEED + 7919 * ++caseNo;
  const r = rng(seed);
  const qd = randnArray(B * c.Nq * c.Hq * c.D, r, c.qScale ?? 1);
  const kd = randnArray(B * c.Nk * c.Hkv * c.D, r, c.qScale ?? 1);
  const vd = randnArray(B * c.Nk * c.Hkv * c.D, r);
  c.mutate?.(qd, kd, vd);
  const mk = (d: Float32Array, shape: number[]) => tensor(d, { dtype: c.dtype as DType, device: device as never, shape });
  const q = mk(qd, [B, c.Nq, c.Hq, c.D]), k = mk(kd, [B, c.Nk, c.Hkv, c.D]), v = mk(vd, [B, c.Nk, c.Hkv, c.D]);
  try {
    // the reference sees exactly the (dtype-rounded) inputs the kernel sees
    const [qr, kr, vr] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]) as Float32Array[];
    const res = attention.blockSparse(q, k, v, c.layout, { ...c.opts, returnLse: true });
    const out = await res.out.toArray() as Float32Array;
    const lse = await res.lse!.toArray() as Float32Array;
    res[Symbol.dispose]();
    const ro: RefOptions = { scale: c.opts?.scale, causal: c.opts?.causal, window: c.opts?.window, softcap: c.opts?.softcap };
    const ref = attentionRef(qr, kr, vr, B, c.Nq, c.Nk, c.Hq, c.Hkv, c.D, c.layout, ro);
    const eOut = relL2(out, ref.out);
    const fin: number[] = [], finRef: number[] = [];
    for (let i = 0; i < lse.length; i++) {
      const refInf = ref.lse[i] === -Infinity;
      if (refInf !== (lse[i] === -Infinity)) throw new Error(`${c.name} (seed ${seed}): lse[${i}] = ${lse[i]}, reference ${ref.lse[i]}`);
      if (!refInf) { fin.push(lse[i]); finRef.push(ref.lse[i]); }
    }
    const eLse = relL2(fin, finRef);
    const ctx = `${c.name} on ${device} (seed ${seed}): out rel L2 ${eOut.toExponential(2)}, lse rel L2 ${eLse.toExponential(2)}`;
    if (!(eOut < (c.tol ?? tol(c.dtype)))) throw new Error(ctx);
    if (!(eLse < (c.dtype === 'float32' ? 1e-5 : 1e-3))) throw new Error(ctx);
    for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) throw new Error(`${ctx}: NaN at ${i}`);
    return { out, lse, ref };
  } finally {
    q.dispose(); k.dispose(); v.dispose();
  }
}

const DTYPES: FDType[] = ['float32', 'float16', 'bfloat16'];

describeDevices('attention.blockSparse', (device) => {
  describe.each(DTYPES)('%s', (dtype) => {
    test('dense, GQA 4:2, batch 2, tails (Nq 70, Nk 150)', async () => {
      await runCase(device, { name: 'dense', dtype, B: 2, Nq: 70, Nk: 150, Hq: 4, Hkv: 2, D: 64,
        layout: BlockLayout.dense({ qLen: 70, kLen: 150, blockSize: 64 }) });
    });
    test('causal layout + causal mask, blockQ 128 / blockK 64, D 128', async () => {
      await runCase(device, { name: 'causal', dtype, Nq: 200, Nk: 200, Hq: 2, Hkv: 1, D: 128,
        layout: BlockLayout.causal({ seqLen: 200, blockQ: 128, blockK: 64 }), opts: { causal: true } });
    });
    test('KV cache: Nq 40 < Nk 300, causal bottom-right', async () => {
      await runCase(device, { name: 'kv cache', dtype, Nq: 40, Nk: 300, Hq: 2, Hkv: 2, D: 64,
        layout: BlockLayout.causal({ qLen: 40, kLen: 300, blockSize: 64 }), opts: { causal: true } });
    });
    test('decode: Nq 1, Nk 700, MQA (Hq 4, Hkv 1)', async () => {
      await runCase(device, { name: 'decode', dtype, Nq: 1, Nk: 700, Hq: 4, Hkv: 1, D: 64,
        layout: BlockLayout.dense({ qLen: 1, kLen: 700, blockSize: 128 }) });
    });
    test('sliding window layout + window mask (left 90, right 0) + causal', async () => {
      await runCase(device, { name: 'sliding', dtype, Nq: 260, Nk: 260, Hq: 2, Hkv: 1, D: 64,
        layout: BlockLayout.slidingWindow({ seqLen: 260, blockSize: 64, window: 90 }),
        opts: { causal: true, window: { left: 90, right: 0 } } });
    });
    test('two-sided window without a layout restriction', async () => {
      await runCase(device, { name: 'window', dtype, Nq: 150, Nk: 190, Hq: 2, Hkv: 2, D: 32,
        layout: BlockLayout.dense({ qLen: 150, kLen: 190, blockSize: 64 }), opts: { window: { left: 20, right: 7 } } });
    });
    test('globalLocal with random blocks, per head', async () => {
      await runCase(device, { name: 'globalLocal', dtype, Nq: 320, Nk: 320, Hq: 3, Hkv: 1, D: 64,
        layout: BlockLayout.globalLocal({ seqLen: 320, blockSize: 64, globalBlocks: 1, localBlocks: 1, randomBlocks: 1, seed: 3, heads: 3 }) });
    });
    test('strided (Phi-3-small) + causal', async () => {
      await runCase(device, { name: 'strided', dtype, Nq: 384, Nk: 384, Hq: 2, Hkv: 1, D: 64,
        layout: BlockLayout.strided({ seqLen: 384, blockSize: 64, localBlocks: 2, stride: 2 }), opts: { causal: true } });
    });
    test('document (block-diagonal) layout', async () => {
      await runCase(device, { name: 'document', dtype, Nq: 256, Nk: 256, Hq: 2, Hkv: 2, D: 64,
        layout: BlockLayout.document({ lengths: [64, 128, 64], blockSize: 64 }) });
    });
    test('fromBlockMask layout with an empty row, union of layouts', async () => {
      const m = BlockLayout.fromBlockMask([[true, false, true], [false, false, false], [false, true, false]], { seqLen: 170, blockSize: 64 });
      const u = BlockLayout.union(m, BlockLayout.intersect(BlockLayout.causal({ seqLen: 170, blockSize: 64 }), m));
      const res = await runCase(device, { name: 'empty row', dtype, Nq: 170, Nk: 170, Hq: 2, Hkv: 1, D: 64, layout: u });
      // rows 64..127 (block row 1) see nothing: out 0, lse -inf
      for (let i = 64; i < 128; i++) {
        expect(res.lse[i]).toBe(-Infinity);
        for (let d = 0; d < 64; d++) expect(res.out[(i * 2) * 64 + d]).toBe(0);
      }
    });
    test('fully masked rows (Nq > Nk with causal): out 0, lse -Inf, no NaN', async () => {
      const res = await runCase(device, { name: 'masked', dtype, Nq: 150, Nk: 100, Hq: 1, Hkv: 1, D: 64,
        layout: BlockLayout.dense({ qLen: 150, kLen: 100, blockSize: 64 }), opts: { causal: true } });
      for (let i = 0; i < 50; i++) {
        expect(res.lse[i]).toBe(-Infinity);
        for (let d = 0; d < 64; d++) expect(res.out[i * 64 + d]).toBe(0);
      }
      expect(Number.isFinite(res.lse[50])).toBe(true);
    });
    test('D = 96 and D = 256', async () => {
      await runCase(device, { name: 'D96', dtype, Nq: 90, Nk: 130, Hq: 2, Hkv: 1, D: 96,
        layout: BlockLayout.causal({ qLen: 90, kLen: 130, blockSize: 64 }), opts: { causal: true } });
      await runCase(device, { name: 'D256', dtype, Nq: 65, Nk: 70, Hq: 1, Hkv: 1, D: 256,
        layout: BlockLayout.dense({ qLen: 65, kLen: 70, blockSize: 64 }) });
    });
    test('softcap with huge logits and -Inf logits', async () => {
      await runCase(device, { name: 'softcap huge', dtype, Nq: 80, Nk: 100, Hq: 2, Hkv: 1, D: 64, qScale: 30,
        layout: BlockLayout.dense({ qLen: 80, kLen: 100, blockSize: 64 }), opts: { softcap: 20 } });
      // query row 3 of head 0 has q[0] = -Inf and every k[.,0] > 0: all its logits are -Inf
      const mutate = (q: Float32Array, k: Float32Array) => {
        for (let j = 0; j < 100; j++) k[j * 64] = 1 + Math.abs(k[j * 64]);
        q[(3 * 2 + 0) * 64] = -Infinity;
      };
      const capped = await runCase(device, { name: 'softcap -inf', dtype, Nq: 80, Nk: 100, Hq: 2, Hkv: 1, D: 64, mutate,
        layout: BlockLayout.dense({ qLen: 80, kLen: 100, blockSize: 64 }), opts: { softcap: 5 } });
      expect(Number.isFinite(capped.lse[3])).toBe(true);  // tanh(-inf) = -1: uniform weights
      const plain = await runCase(device, { name: '-inf logits', dtype, Nq: 80, Nk: 100, Hq: 2, Hkv: 1, D: 64, mutate,
        layout: BlockLayout.dense({ qLen: 80, kLen: 100, blockSize: 64 }) });
      expect(plain.lse[3]).toBe(-Infinity);
    });
    test('unaligned views (narrow of a flat buffer by one element): prefill and decode', async () => {
      // q, k, v start 2 or 4 bytes past a 16-byte boundary: CUDA must not use 16-byte loads / cp.async
      // on them (the tensor-core path falls back to the generic kernel, decode to scalar loads).
      const shapes: Array<{ name: string; B: number; Nq: number; Nk: number; Hq: number; Hkv: number; D: number; causal: boolean }> = [
        { name: 'prefill D64', B: 2, Nq: 130, Nk: 190, Hq: 4, Hkv: 2, D: 64, causal: true },
        { name: 'prefill D128', B: 1, Nq: 70, Nk: 70, Hq: 2, Hkv: 1, D: 128, causal: false },
        { name: 'decode', B: 2, Nq: 1, Nk: 700, Hq: 4, Hkv: 1, D: 64, causal: false },
      ];
      for (const sh of shapes) {
        const seed = SEED + 7919 * ++caseNo;
        const r = rng(seed);
        const nq = sh.B * sh.Nq * sh.Hq * sh.D, nk = sh.B * sh.Nk * sh.Hkv * sh.D;
        const view = (n: number, shape: number[]) => {
          const base = tensor(randnArray(n + 1, r), { dtype: dtype as DType, device: device as never, shape: [n + 1] });
          return { base, t: base.narrow(0, 1, n).reshape(shape) };
        };
        const q = view(nq, [sh.B, sh.Nq, sh.Hq, sh.D]), k = view(nk, [sh.B, sh.Nk, sh.Hkv, sh.D]), v = view(nk, [sh.B, sh.Nk, sh.Hkv, sh.D]);
        try {
          const layout = sh.causal ? BlockLayout.causal({ qLen: sh.Nq, kLen: sh.Nk, blockSize: 64 })
            : BlockLayout.dense({ qLen: sh.Nq, kLen: sh.Nk, blockSize: 64 });
          const [qr, kr, vr] = await Promise.all([q.t.toArray(), k.t.toArray(), v.t.toArray()]) as Float32Array[];
          expect(qr.length).toBe(nq);
          const res = attention.blockSparse(q.t, k.t, v.t, layout, { causal: sh.causal, returnLse: true });
          const out = await res.out.toArray() as Float32Array;
          const lse = await res.lse!.toArray() as Float32Array;
          res[Symbol.dispose]();
          const ref = attentionRef(qr, kr, vr, sh.B, sh.Nq, sh.Nk, sh.Hq, sh.Hkv, sh.D, layout, { causal: sh.causal });
          const eOut = relL2(out, ref.out), eLse = relL2(lse, ref.lse);
          const ctx = `unaligned ${sh.name} ${dtype} on ${device} (seed ${seed}): out rel L2 ${eOut.toExponential(2)}, lse ${eLse.toExponential(2)}`;
          if (!(eOut < tol(dtype)) || !(eLse < (dtype === 'float32' ? 1e-5 : 1e-3))) throw new Error(ctx);
        } finally {
          for (const x of [q, k, v]) { x.t.dispose(); x.base.dispose(); }
        }
      }
    });
    test('extreme scales (1e3 and 1e-6)', async () => {
      // Logits of order 1e3·|q·k| ≈ 1e4 carry a float32 rounding error of about 1e-3 (absolute), which the
      // softmax turns into relative errors of that order: 1e-5 is below float32's own resolution here.
      await runCase(device, { name: 'scale 1e3', dtype, Nq: 64, Nk: 64, Hq: 1, Hkv: 1, D: 64,
        layout: BlockLayout.dense({ seqLen: 64 }), opts: { scale: 1e3 }, tol: dtype === 'float32' ? 2e-3 : undefined });
      await runCase(device, { name: 'scale 1e-6', dtype, Nq: 64, Nk: 64, Hq: 1, Hkv: 1, D: 64,
        layout: BlockLayout.dense({ seqLen: 64 }), opts: { scale: 1e-6 } });
    });
  });

  test('LSE merges across key splits (flash-decoding identity)', async () => {
    const Nq = 64, Nk = 256, D = 64;
    const r = rng(SEED + 1);
    const qd = randnArray(Nq * D, r), kd = randnArray(Nk * D, r), vd = randnArray(Nk * D, r);
    const q = tensor(qd, { device: device as never, shape: [1, Nq, 1, D] });
    const k = tensor(kd, { device: device as never, shape: [1, Nk, 1, D] });
    const v = tensor(vd, { device: device as never, shape: [1, Nk, 1, D] });
    const half = (first: boolean) => BlockLayout.fromBlockMask([[first, first, !first, !first]], { qLen: Nq, kLen: Nk });
    const full = attention.blockSparse(q, k, v, BlockLayout.dense({ qLen: Nq, kLen: Nk }), { returnLse: true });
    const a = attention.blockSparse(q, k, v, half(true), { returnLse: true });
    const b = attention.blockSparse(q, k, v, half(false), { returnLse: true });
    const [fo, ao, bo, al, bl] = await Promise.all([full.out.toArray(), a.out.toArray(), b.out.toArray(), a.lse!.toArray(), b.lse!.toArray()]) as Float32Array[];
    const merged = new Float64Array(Nq * D);
    for (let i = 0; i < Nq; i++) {
      const m = Math.max(al[i], bl[i]);
      const wa = Math.exp(al[i] - m), wb = Math.exp(bl[i] - m);
      for (let d = 0; d < D; d++) merged[i * D + d] = (wa * ao[i * D + d] + wb * bo[i * D + d]) / (wa + wb);
    }
    expect(relL2(merged, fo)).toBeLessThan(1e-5);
    for (const t of [q, k, v]) t.dispose();
    for (const t of [full, a, b]) t[Symbol.dispose]();
  });

  test('returnLse defaults to false', () => {
    const q = tensor(new Float32Array(64 * 8), { device: device as never, shape: [1, 64, 1, 8] });
    const res = attention.blockSparse(q, q, q, BlockLayout.dense({ seqLen: 64 }));
    expect(res.lse).toBeUndefined();
    expect(res.out.shape).toEqual([1, 64, 1, 8]);
    res[Symbol.dispose]();
    q.dispose();
  });

  test('argument errors: dtype, shape, layout, options, disposed', () => {
    const f = (shape: number[], dtype: DType = 'float32') => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), { device: device as never, dtype, shape });
    const q = f([1, 64, 4, 64]), k = f([1, 64, 2, 64]);
    const L = BlockLayout.dense({ seqLen: 64 });
    const kh = tensor(new Float32Array(64 * 2 * 64), { device: device as never, dtype: 'float16', shape: [1, 64, 2, 64] });
    expectCode(() => attention.blockSparse(q, kh, k, L), 'ERR_LLMK_DTYPE');
    const qi = tensor(new Int32Array(64 * 4 * 64), { device: device as never, shape: [1, 64, 4, 64] });
    expectCode(() => attention.blockSparse(qi, qi, qi, L), 'ERR_LLMK_DTYPE');
    const k3 = f([1, 64, 3, 64]);
    expectCode(() => attention.blockSparse(q, k3, k3, L), 'ERR_LLMK_SHAPE');        // Hq % Hkv != 0
    expectCode(() => attention.blockSparse(q, k, f([1, 64, 2, 32]), L), 'ERR_LLMK_SHAPE');
    expectCode(() => attention.blockSparse(f([1, 64, 4, 12]), f([1, 64, 2, 12]), f([1, 64, 2, 12]), L), 'ERR_LLMK_SHAPE');  // D % 8
    expectCode(() => attention.blockSparse(f([64, 4, 64]), k, k, L), 'ERR_LLMK_SHAPE');
    expectCode(() => attention.blockSparse(q, k, k, BlockLayout.dense({ seqLen: 128 })), 'ERR_LLMK_SHAPE');  // layout vs sequence
    expectCode(() => attention.blockSparse(q, k, k, BlockLayout.dense({ seqLen: 64, heads: 2 })), 'ERR_LLMK_SHAPE');
    expectCode(() => attention.blockSparse(q, k, k, { rowPtr: [0, 1] } as never), 'ERR_LLMK_ARG');
    expectCode(() => attention.blockSparse(q, k, k, L, { scale: NaN }), 'ERR_LLMK_ARG');
    expectCode(() => attention.blockSparse(q, k, k, L, { scale: 1e300 }), 'ERR_LLMK_ARG');
    expectCode(() => attention.blockSparse(q, k, k, L, { softcap: -1 }), 'ERR_LLMK_ARG');
    expectCode(() => attention.blockSparse(q, k, k, L, { window: { left: -3 } }), 'ERR_LLMK_ARG');
    expectCode(() => attention.blockSparse(q, k, k, L, { window: { right: 1.5 } }), 'ERR_LLMK_ARG');
    kh.dispose(); qi.dispose(); k3.dispose();
    k.dispose();
    expectCode(() => attention.blockSparse(q, k, k, L), 'ERR_LLMK_DISPOSED');
    q.dispose();
  });

  test('the native plan re-checks the layout arrays it is given (hostile input never reaches a kernel)', () => {
    const q = tensor(new Float32Array(128 * 8), { device: device as never, shape: [1, 128, 1, 8] });
    const meta = { heads: 1, blockQ: 64, blockK: 64, qLen: 128, kLen: 128 };
    const { kind, index } = parseDevice(device);
    const plan = (rowPtr: Int32Array, colIdx: Int32Array, m = meta) => native.attention.plan(rowPtr, colIdx, m, kind, index);
    const call = (rowPtr: Int32Array, colIdx: Int32Array, m = meta) => () =>
      native.attention.blockSparse(q.handle, q.handle, q.handle, plan(rowPtr, colIdx, m), { causal: false, returnLse: false });
    const code = (fn: () => unknown) => { try { fn(); } catch (e) { return (e as { code?: string }).code; } return 'none'; };
    expect(code(call(new Int32Array([0, 1, 2]), new Int32Array([0, 5])))).toBe('ERR_LLMK_INDEX');
    expect(code(call(new Int32Array([0, 0, 2]), new Int32Array([1, 0])))).toBe('ERR_LLMK_INDEX');
    expect(code(call(new Int32Array([0, 0, 2]), new Int32Array([1, 1])))).toBe('ERR_LLMK_INDEX');
    expect(code(call(new Int32Array([0, 3, 2]), new Int32Array([0, 1])))).toBe('ERR_LLMK_INDEX');
    expect(code(call(new Int32Array([0, 1, 9]), new Int32Array([0, 1])))).toBe('ERR_LLMK_INDEX');
    expect(code(call(new Int32Array([0, 2]), new Int32Array([0, 1])))).toBe('ERR_LLMK_SHAPE');
    expect(code(call(new Int32Array([0, 1, 2]), new Int32Array([0, 1]), { ...meta, qLen: 100 }))).toBe('ERR_LLMK_SHAPE');
    expect(code(call(new Int32Array([0, 1, 2]), new Int32Array([0, 1]), { ...meta, blockK: 32 }))).toBe('ERR_LLMK_ARG');
    expect(code(() => native.attention.plan([0, 1, 2], new Int32Array([0, 1]), meta, kind, index))).toBe('ERR_LLMK_ARG');
    expect(code(call(new Int32Array([0, 1, 2]), new Int32Array([0, 1])))).toBe('none');
    // only a plan made by native.attention.plan passes for one
    for (const fake of [{}, [0, 1, 2], null, new Int32Array(3), () => 0]) {
      expect(code(() => native.attention.blockSparse(q.handle, q.handle, q.handle, fake, {}))).toBe('ERR_LLMK_ARG');
    }
    // heads · (nQB + 1) = 4427323 · 4166568392166 = 2^64 + 2 wraps around to rowPtr's length 2 in 64-bit
    // arithmetic: the check must refuse the sizes, not walk 4.4 million heads past the end of rowPtr.
    const wrap = { heads: 19 * 43 * 5419, blockQ: 64, blockK: 64, qLen: (4166568392166 - 1) * 64, kLen: 64 };
    expect(code(() => native.attention.checkLayout(new Int32Array(2), new Int32Array(0), wrap))).toBe('ERR_LLMK_SHAPE');
    expect(code(() => native.attention.checkLayout(new Int32Array([0, 0, 0]), new Int32Array(0), { ...wrap, heads: 2, qLen: 64 }))).toBe('ERR_LLMK_SHAPE');
    expect(code(() => native.attention.checkLayout(new Int32Array([0, 0, 0, 0]), new Int32Array(0), { ...wrap, heads: 2, qLen: 64 }))).toBe('none');
    q.dispose();
  });

  if (device.startsWith('cuda')) {
    test('every CUDA path (generic, tensor core, split-K) on one problem', async () => {
      for (const forcePath of [0, 1, 2]) {
        for (const dtype of ['float16', 'bfloat16'] as FDType[]) {
          await runCase(device, { name: `path ${forcePath}`, dtype, Nq: 200, Nk: 333, Hq: 4, Hkv: 2, D: 128,
            layout: BlockLayout.globalLocal({ qLen: 200, kLen: 333, blockSize: 64, randomBlocks: 1, seed: 5 }),
            opts: { causal: true, forcePath } });
        }
      }
    });
  }
});

describe('attention devices', () => {
  test('q, k, v on different devices → ERR_LLMK_DEVICE', () => {
    if (!backends().cuda.available) return;  // needs two devices
    const q = tensor(new Float32Array(64 * 8), { shape: [1, 64, 1, 8] });
    const k = tensor(new Float32Array(64 * 8), { shape: [1, 64, 1, 8], device: 'cuda' });
    expectCode(() => attention.blockSparse(q, k, k, BlockLayout.dense({ seqLen: 64 })), 'ERR_LLMK_DEVICE');
    q.dispose(); k.dispose();
  });
});
