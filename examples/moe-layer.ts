/**
 * A Mixtral-shaped MoE layer (router + 8 SwiGLU experts, top-2), small enough to run in well under a
 * second on the CPU, with INT4 experts imported from GPTQ-format tensors built here:
 *   logits = x · Wrᵀ;  (weights, ids) = top-2 of softmax(logits), renormalised;
 *   y[t] = Σ_j weights[t,j] · W2_e · (silu(W1_e · x[t]) ⊙ (W3_e · x[t])),  e = ids[t,j].
 * Each expert's W1 and W3 are concatenated into one [2I, H] matrix (vLLM's w13), quantised (group 64,
 * with zero points), packed the way AutoGPTQ stores it (qweight int32 [K/8, N], qzeros int32 [G, N/8]
 * with zero − 1, scales [G, N] float16), imported with quant.fromGptq, stacked with quant.stackExperts
 * and prepared for the device. The result is checked against a float64 reference of the same layer.
 *
 *   npx tsc -p tsconfig.json && npx tsc --outDir lib-examples --module commonjs --target es2022 --esModuleInterop examples/moe-layer.ts
 *   node lib-examples/examples/moe-layer.js
 * (or run the TypeScript directly with any TS runner). Runs on the first CUDA device when there is one.
 */
import { backends, matmul, tensor, type DeviceName } from '../ts/index';
import * as moe from '../ts/moe';
import * as quant from '../ts/quant';

const T = 4, H = 256, I = 512, E = 8, K = 2, GROUP = 64;

/** Seeded uniform in [−0.5, 0.5). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

/** Round-to-nearest 4-bit quantisation of W[n,k] with zero points: codes, zeros [G·n] (g-major), scales [G·n], dequantised W. */
function quantise(w: Float32Array, n: number, k: number) {
  const G = k / GROUP;
  const codes = new Uint8Array(n * k), zeros = new Uint8Array(G * n), scales = new Float32Array(G * n), deq = new Float64Array(n * k);
  for (let r = 0; r < n; r++)
    for (let g = 0; g < G; g++) {
      let lo = 0, hi = 0;
      for (let c = g * GROUP; c < (g + 1) * GROUP; c++) { lo = Math.min(lo, w[r * k + c]); hi = Math.max(hi, w[r * k + c]); }
      const s = half((hi - lo) / 15 || 1e-3), z = Math.min(15, Math.max(1, Math.round(-lo / s)));
      scales[g * n + r] = s; zeros[g * n + r] = z;
      for (let c = g * GROUP; c < (g + 1) * GROUP; c++) {
        const q = Math.min(15, Math.max(0, Math.round(w[r * k + c] / s) + z));
        codes[r * k + c] = q;
        deq[r * k + c] = s * (q - z);
      }
    }
  return { codes, zeros, scales, deq };
}

/** v (positive, in float16's normal range) rounded to the float16 grid, so the stored scales are exact. */
function half(v: number): number {
  let e = Math.floor(Math.log2(v));
  if (2 ** (e + 1) <= v) e++;
  const q = 2 ** (Math.max(e, -14) - 10);
  return Math.round(v / q) * q;
}

/** AutoGPTQ (v1) tensors of W[n,k]: qweight int32 [k/8, n], qzeros int32 [G, n/8] (zero − 1), scales [G, n]. */
function packGptq(p: ReturnType<typeof quantise>, n: number, k: number) {
  const G = k / GROUP;
  const qweight = new Int32Array((k / 8) * n), qzeros = new Int32Array(G * (n / 8));
  for (let c = 0; c < k; c++)
    for (let r = 0; r < n; r++) qweight[(c >> 3) * n + r] |= p.codes[r * k + c] << (4 * (c & 7));
  for (let g = 0; g < G; g++)
    for (let r = 0; r < n; r++) qzeros[g * (n / 8) + (r >> 3)] |= (p.zeros[g * n + r] - 1) << (4 * (r & 7));
  return { qweight, qzeros };
}

async function expertWeight(w: Float32Array, n: number, k: number) {
  const p = quantise(w, n, k);
  const { qweight, qzeros } = packGptq(p, n, k);
  using qt = tensor(qweight, { shape: [k / 8, n] });
  using zt = tensor(qzeros, { shape: [k / GROUP, n / 8] });
  using st = tensor(p.scales, { shape: [k / GROUP, n], dtype: 'float16' });
  return { w: await quant.fromGptq({ qweight: qt, qzeros: zt, scales: st, format: 'v1' }), deq: p.deq };
}

async function main(): Promise<void> {
  const device: DeviceName = backends().cuda.available ? 'cuda:0' : 'cpu';
  const r = rng(42);
  const x = new Float32Array(T * H).map(() => 2 * r());
  const router = new Float32Array(E * H).map(() => r() / 4);
  // per expert: w13 = [W1; W3] [2I, H] and W2 [H, I]
  const gateUps: quant.Int4Weight[] = [], downs: quant.Int4Weight[] = [];
  const deqGU: Float64Array[] = [], deqD: Float64Array[] = [];
  for (let e = 0; e < E; e++) {
    const gu = await expertWeight(new Float32Array(2 * I * H).map(() => r() / 8), 2 * I, H);
    const dn = await expertWeight(new Float32Array(H * I).map(() => r() / 11), H, I);
    gateUps.push(gu.w); downs.push(dn.w); deqGU.push(gu.deq); deqD.push(dn.deq);
  }
  using guStack = quant.stackExperts(gateUps), dnStack = quant.stackExperts(downs);
  for (const w of [...gateUps, ...downs]) w.dispose();
  using gateUp = quant.prepare(guStack, device), down = quant.prepare(dnStack, device);

  // the layer: router matmul, top-2, expert GEMMs (all on the device)
  const routerT = new Float32Array(H * E);
  for (let e = 0; e < E; e++) for (let h = 0; h < H; h++) routerT[h * E + e] = router[e * H + h];
  using xt = tensor(x, { shape: [T, H], device });
  using wr = tensor(routerT, { shape: [H, E], device });
  using logits = matmul(xt, wr);
  using routing = moe.topk(logits, { k: K });
  const t0 = process.hrtime.bigint();
  using y = moe.experts(xt, routing, { gateUp, down }, { activation: 'swiglu' });
  const got = (await y.toArray()) as Float32Array;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;

  // float64 reference of the same layer
  const ref = new Float64Array(T * H), hmid = new Float64Array(I);
  for (let t = 0; t < T; t++) {
    const lg = Array.from({ length: E }, (_, e) => { let s = 0; for (let h = 0; h < H; h++) s += x[t * H + h] * router[e * H + h]; return s; });
    const top = lg.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, K);
    const ex = top.map(([v]) => Math.exp(v - top[0][0])), sum = ex.reduce((a, b) => a + b, 0);
    top.forEach(([, e], j) => {
      const gu = deqGU[e], dn = deqD[e];
      for (let i = 0; i < I; i++) {
        let g = 0, u = 0;
        for (let h = 0; h < H; h++) { g += gu[i * H + h] * x[t * H + h]; u += gu[(I + i) * H + h] * x[t * H + h]; }
        hmid[i] = Math.fround(g / (1 + Math.exp(-g)) * u);  // the intermediate is rounded to x's dtype (float32)
      }
      for (let h = 0; h < H; h++) {
        let s = 0;
        for (let i = 0; i < I; i++) s += dn[h * I + i] * hmid[i];
        ref[t * H + h] += (ex[j] / sum) * s;
      }
    });
  }
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) { num += (got[i] - ref[i]) ** 2; den += ref[i] ** 2; }
  const rel = Math.sqrt(num / den);
  console.log(`MoE layer T=${T} H=${H} I=${I} E=${E} top-${K}, INT4 experts from GPTQ tensors, on ${device}: ` +
    `${ms.toFixed(2)} ms, rel L2 vs float64 reference ${rel.toExponential(2)}`);
  if (!(rel < 1e-4)) { console.error('MISMATCH'); process.exit(1); }
}

main().catch((e) => { console.error(e); process.exit(1); });
