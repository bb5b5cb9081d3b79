// The NCCL backend from Node on one GPU (world size 1), through the built package (lib/ + the addon):
// init, every collective and dtype, group, barrier, destroy, and the per-call cost of allReduce as a
// JS caller sees it. Plain JavaScript (no jest) for GPU boxes: `node native/tests/nccl_node_smoke.js [pkgRoot]`.
// Prints PASS/FAIL lines and JSON lines {"case": ...}; exits 1 on failure, 0 with SKIP when NCCL or CUDA
// is missing.
'use strict';
const path = require('path');

const root = path.resolve(process.argv[2] || path.join(__dirname, '..', '..'));
const lib = require(path.join(root, 'lib', 'index.js'));
const dist = require(path.join(root, 'lib', 'dist.js'));

let failures = 0;
function report(name, ok, detail = '') {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}  ${detail}`);
  if (!ok) failures++;
}
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function main() {
  const info = dist.nccl.info();
  console.log(JSON.stringify({ case: 'nccl_info', ...info }));
  const b = lib.backends();
  if (!b.cuda.available || !info.available) {
    console.log(`SKIP  ${!b.cuda.available ? `CUDA unavailable: ${b.cuda.reason}` : info.reason}`);
    return 0;
  }
  const device = 'cuda:0';
  const t0 = Date.now();
  const comm = await dist.init({ backend: 'nccl', rank: 0, worldSize: 1, device, uniqueId: dist.uniqueId({ backend: 'nccl' }), timeoutMs: 60000 });
  report('init nccl world 1', comm.backend === 'nccl' && comm.device === device, `${Date.now() - t0} ms`);
  const data = {
    float32: Float32Array.from([1.5, -2, 3, 0.25, 7]), float16: Float32Array.from([1.5, -2, 3, 0.25, 7]),
    bfloat16: Float32Array.from([1.5, -2, 3, 0.25, 7]), int32: Int32Array.from([1, -2, 3, 2 ** 30, 7]),
    int64: BigInt64Array.from([1n, -2n, 3n, 2n ** 40n, 7n]), int8: Int8Array.from([1, -2, 3, 127, -128]), uint8: Uint8Array.from([1, 2, 3, 255, 0]),
  };
  for (const [dtype, arr] of Object.entries(data)) {
    const want = Array.from(arr);
    const x = () => lib.tensor(arr, { dtype, device });
    let ok = true;
    for (const op of ['sum', 'prod', 'max', 'min', 'avg']) {
      ok = ok && same(Array.from(await comm.allReduce(x(), { op }).toArray()), want);
      ok = ok && same(Array.from(await comm.allReduce(x(), { op, out: lib.empty([5], { dtype, device }) }).toArray()), want);
    }
    report(`allReduce (5 ops, in place and out) ${dtype}`, ok);
    report(`allGather ${dtype}`, same(Array.from(await comm.allGather(x()).toArray()), want));
    report(`reduceScatter ${dtype}`, same(Array.from(await comm.reduceScatter(x()).toArray()), want));
    report(`broadcast ${dtype}`, same(Array.from(await comm.broadcast(x(), { root: 0, out: lib.empty([5], { dtype, device }) }).toArray()), want));
    const r = lib.empty([5], { dtype, device });
    const s = x();
    comm.group(() => { comm.send(s, 0); comm.recv(r, 0); });
    report(`send/recv in a group ${dtype}`, same(Array.from(await r.toArray()), want));
  }
  await comm.barrier();
  report('barrier', comm.error === null);
  try {
    comm.allReduce(lib.tensor(new Float32Array(4)));
    report('a CPU tensor is refused', false);
  } catch (e) {
    report('a CPU tensor is refused', e.code === 'ERR_LLMK_DEVICE', e.message);
  }
  for (const n of [1, 1024, 1 << 20]) {
    const t = lib.empty([n], { device });
    for (let i = 0; i < 50; i++) comm.allReduce(t);
    await comm.synchronize();
    const iters = n === 1 << 20 ? 500 : 5000;
    const a = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) comm.allReduce(t);
    const m = process.hrtime.bigint();
    await comm.synchronize();
    const z = process.hrtime.bigint();
    console.log(JSON.stringify({ case: `node_allreduce_f32_${n}`, enqueue_us: Number(m - a) / 1e3 / iters, wall_us_per_call: Number(z - a) / 1e3 / iters }));
    t.dispose();
  }
  await comm.destroy();
  try {
    comm.allReduce(lib.empty([1], { device }));
    report('use after destroy is refused', false);
  } catch (e) {
    report('use after destroy is refused', e.code === 'ERR_LLMK_ARG', e.message);
  }
  // A rank that never arrives: init with world size 2 times out instead of hanging.
  const t1 = Date.now();
  try {
    await dist.init({ backend: 'nccl', rank: 0, worldSize: 2, device, uniqueId: dist.uniqueId({ backend: 'nccl' }), timeoutMs: 3000 });
    report('init with a missing peer times out', false);
  } catch (e) {
    report('init with a missing peer times out', e.code === 'ERR_LLMK_NCCL' && e.ncclResult === 'ncclTimeout', `${Date.now() - t1} ms: ${e.message}`);
  }
  console.log(`${failures ? 'FAILED' : 'OK'}: ${failures} failure(s)`);
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => { console.log(`FAIL  ${e.stack || e}`); process.exit(1); });
