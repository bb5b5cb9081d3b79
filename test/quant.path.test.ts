// quant.matmulPath reports the kernel matmul actually runs. An act-order weight gathers x into aligned
// workspace first, so x's own alignment must not send the report to 'general' (the matmul itself
// takes the tensor-core path there); without act-order an unaligned x does run the general path.
import { tensor, type DeviceName } from '../ts';
import * as quant from '../ts/quant';
import { describeDevices, relL2, rng, randnArray, SEED } from './helpers';
import { linearRef, packGptq } from './reference/quant';

describeDevices(`quant.matmulPath (seed ${SEED})`, (device: DeviceName) => {
  it('follows act-order and x alignment', async () => {
    const N = 64, K = 256, gs = 64, G = K / gs, M = 4;
    const r = rng(SEED + 5);
    const codes = Uint8Array.from({ length: N * K }, () => Math.floor(r() * 16));
    const zeros = Uint8Array.from({ length: G * N }, () => 1 + Math.floor(r() * 15));
    const scalesGN = Float32Array.from(randnArray(G * N, r, 0.05), (v) => Math.abs(v) + 0.01);
    const pi = Array.from({ length: K }, (_, i) => i);
    for (let i = K - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [pi[i], pi[j]] = [pi[j], pi[i]]; }
    const p = packGptq(codes, zeros, N, K, G, 'v2');
    using qweight = tensor(p.qweight, { shape: [K / 8, N], device });
    using qzeros = tensor(p.qzeros, { shape: [G, N / 8], device });
    using scales = tensor(scalesGN, { shape: [G, N], dtype: 'float16', device });
    using gIdx = tensor(Int32Array.from(pi, (v) => Math.floor(v / gs)), { device });
    using plainIdx = tensor(Int32Array.from({ length: K }, (_, k) => Math.floor(k / gs)), { device });
    using actOrder = await quant.fromGptq({ qweight, qzeros, scales, gIdx, format: 'v2' });
    using plain = await quant.fromGptq({ qweight, qzeros, scales, gIdx: plainIdx, format: 'v2' });
    expect(actOrder.perm).not.toBeNull();
    expect(plain.perm).toBeNull();
    using pa = quant.prepare(actOrder, device);
    using pp = quant.prepare(plain, device);
    const flat = randnArray(M * K + 1, rng(SEED + 6));
    using base = tensor(flat, { dtype: 'float16', device });
    using view = base.narrow(0, 1, M * K);
    using xOdd = view.reshape([M, K]);  // 2 bytes off 16-byte alignment
    using view0 = base.narrow(0, 0, M * K);
    using xAligned = view0.reshape([M, K]);
    // the act-order matmul on the unaligned view is right on every device
    using y = quant.matmul(xOdd, pa);
    const scales16 = Array.from((await scales.toArray()) as Float32Array);
    const W = new Float64Array(N * K);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const g = Math.floor(pi[k] / gs);
        W[n * K + k] = scales16[g * N + n] * (codes[n * K + k] - zeros[g * N + n]);
      }
    const xs = Array.from((await xOdd.toArray()) as Float32Array);
    expect(relL2((await y.toArray()) as Float32Array, linearRef(xs, W, M, N, K))).toBeLessThan(1e-2);
    if (device === 'cpu') {
      expect(quant.matmulPath(xOdd, pa)).toBe('cpu');
      return;
    }
    const fast = quant.matmulPath(xAligned, pp);
    expect(fast).not.toBe('general');
    expect(quant.matmulPath(xOdd, pp)).toBe('general');
    expect(quant.matmulPath(xOdd, pa)).toBe(fast);
  });
});
