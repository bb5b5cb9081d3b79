// Tensors typed by their dtype. `npx tsc -p test/tsconfig.json --noEmit` checks the declarations
// below (a `@ts-expect-error` line that stops being an error fails the type check); jest runs them
// and checks that the runtime agrees with the types.
import { attention, matmul, moe, quant, randn, tensor, zeros, type DType, type Tensor } from '../ts';

describe('Tensor<D>: toArray() resolves to the array of the dtype', () => {
  it('op results declare their dtypes (moe.topk ids are int32, weights float32)', async () => {
    using logits = randn([4, 8], { seed: 1 });
    using r = moe.topk(logits, { k: 2 });
    const ids: Int32Array = await r.ids.toArray();
    const weights: Float32Array = await r.weights.toArray();
    // @ts-expect-error ids are int32, not float32
    const wrong: Float32Array = await r.ids.toArray();
    expect(ids).toBeInstanceOf(Int32Array);
    expect(weights).toBeInstanceOf(Float32Array);
    expect(wrong).toBeInstanceOf(Int32Array);
    using counts = moe.expertCounts(r.ids, 8);
    const c: Int32Array = counts.toArraySync();
    expect(Array.from(c).reduce((a, b) => a + b, 0)).toBe(8);
  });

  it('creation functions take the dtype from the options or the data', async () => {
    using a = zeros([3]);                                     // float32 by default
    using b = zeros([3], { dtype: 'int64' });
    using h = zeros([3], { dtype: 'bfloat16' });
    using i8 = tensor(Int8Array.from([1, -2]));
    const fa: Float32Array = await a.toArray();
    const bb: BigInt64Array = await b.toArray();
    const hf: Float32Array = await h.toArray();               // converted natively
    const hr: Uint16Array = await h.toArray({ raw: true });   // the bfloat16 bits
    const ia: Int8Array = i8.toArraySync();
    expect([fa, bb, hf, hr, ia].map((x) => x.constructor.name))
      .toEqual(['Float32Array', 'BigInt64Array', 'Float32Array', 'Uint16Array', 'Int8Array']);
    using c = a.cast('int32');
    const ci: Int32Array = await c.toArray();
    expect(ci).toBeInstanceOf(Int32Array);
  });

  it('ops keep the input dtype; an untyped Tensor still gives the union', async () => {
    using x = randn([2, 4], { dtype: 'float16', seed: 2 }), w = randn([4, 3], { dtype: 'float16', seed: 3 });
    using y = matmul(x, w);
    const yd: 'float16' = y.dtype;
    expect(yd).toBe('float16');
    const any: Tensor = y;                                    // Tensor<D> is a Tensor
    const arr: Float32Array | Int32Array | BigInt64Array | Int8Array | Uint8Array = await any.toArray();
    expect(arr).toBeInstanceOf(Float32Array);
    const dt: DType = any.dtype;
    expect(dt).toBe('float16');
    expect(typeof quant.matmul).toBe('function');
  });

  it('attention results have dispose() as well as Symbol.dispose', async () => {
    const layout = attention.BlockLayout.dense({ seqLen: 64, blockSize: 64 });
    const q = randn([1, 64, 2, 8], { seed: 4 }), k = randn([1, 64, 2, 8], { seed: 5 }), v = randn([1, 64, 2, 8], { seed: 6 });
    const r = attention.blockSparse(q, k, v, layout, { returnLse: true });
    const out: Float32Array = await r.out.toArray();
    const lse: Float32Array | undefined = await r.lse?.toArray();
    expect(out.length).toBe(64 * 2 * 8);
    expect(lse?.length).toBe(2 * 64);
    r.dispose();
    expect(r.out.disposed).toBe(true);
    expect(r.lse!.disposed).toBe(true);
    q.dispose(); k.dispose(); v.dispose();
  });
});
