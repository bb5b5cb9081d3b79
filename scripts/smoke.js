#!/usr/bin/env node
// Smoke test of an installed package, one call per family on the CPU, each checked against a value worked
// out here in float64: run from a project that has llm-kernels installed (scripts/load-test.sh runs it in
// the old userland, x64 and arm64). Prints one JSON line; exits non-zero on any failure.
'use strict';
const fs = require('fs');
const l = require('llm-kernels');

const near = (got, want, tol, what) => {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) throw new Error(`${what}: [${i}] = ${got[i]}, expected ${want[i]}`);
  }
};

async function main() {
  const checked = [];
  // tensors + ops
  const sum = l.add(l.tensor(new Float32Array([1, 2])), l.full([2], 3));
  near(await sum.toArray(), [4, 5], 0, 'add');
  checked.push('ops');

  // MoE: softmax top-2 of one row, renormalised over the chosen two
  const logits = [0.5, 2, -1, 1];
  const r = l.moe.topk(l.tensor(new Float32Array(logits), { shape: [1, 4] }), { k: 2 });
  const ids = Array.from(await r.ids.toArray());
  const e = [Math.exp(2), Math.exp(1)];
  if (ids.join() !== '1,3') throw new Error(`moe.topk ids ${ids}`);
  near(await r.weights.toArray(), [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])], 1e-6, 'moe.topk weights');
  checked.push('moe');

  // attention: one query over 64 keys, one block, dense
  const D = 8, N = 64;
  const q = new Float32Array(D).map((_, i) => (i % 3) * 0.1);
  const k = new Float32Array(N * D).map((_, i) => Math.sin(i) * 0.5);
  const v = new Float32Array(N * D).map((_, i) => Math.cos(i));
  const layout = l.attention.BlockLayout.dense({ qLen: 1, kLen: N, blockSize: 64 });
  const out = l.attention.blockSparse(l.tensor(q, { shape: [1, 1, 1, D] }), l.tensor(k, { shape: [1, N, 1, D] }),
    l.tensor(v, { shape: [1, N, 1, D] }), layout);
  const s = Array.from({ length: N }, (_, j) => q.reduce((a, qi, d) => a + qi * k[j * D + d], 0) / Math.sqrt(D));
  const m = Math.max(...s), p = s.map((x) => Math.exp(x - m)), z = p.reduce((a, b) => a + b, 0);
  const want = Array.from({ length: D }, (_, d) => p.reduce((a, pj, j) => a + pj * v[j * D + d], 0) / z);
  near(await (out.out || out).toArray(), want, 1e-5, 'attention.blockSparse');
  checked.push('attention');

  // INT4: quantize → matmul equals x · dequantize(W)ᵀ
  const K = 32, Nout = 4;
  const W = l.tensor(new Float32Array(Nout * K).map((_, i) => Math.sin(i * 0.7)), { shape: [Nout, K] });
  const w = l.quant.quantize(W, { groupSize: 32 });
  const deq = await l.quant.dequantize(w).toArray();
  const x = new Float32Array(K).map((_, i) => (i % 5) - 2);
  const y = await l.quant.matmul(l.tensor(x, { shape: [1, K] }), w).toArray();
  near(y, Array.from({ length: Nout }, (_, n) => x.reduce((a, xi, kk) => a + xi * deq[n * K + kk], 0)), 1e-5, 'quant.matmul');
  checked.push('int4');

  // dist: two local ranks (worker threads, each loading the addon) all-reduce
  const sums = await l.dist.runLocal(2, async ({ rank, comm, lib }) => {
    const t = lib.tensor(new Float32Array([rank + 1, 10 * (rank + 1)]));
    comm.allReduce(t, { op: 'sum' });
    await comm.synchronize();
    return Array.from(await t.toArray());
  }, { timeoutMs: 60000 });
  for (const v2 of sums) near(v2, [3, 30], 0, 'dist.allReduce');
  checked.push('dist');

  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').find((x) => x.includes('.node') && x.includes('llm-kernels'));
  console.log(JSON.stringify({ ok: true, arch: process.arch, node: process.versions.node, checked,
    binary: maps ? maps.trim().split(/\s+/).pop() : null, cuda: l.backends().cuda.available }));
}

main().catch((e) => { console.error(`smoke test failed: ${e.stack || e}`); process.exit(1); });
