#!/usr/bin/env node
// npm run soak [-- --seconds 180 --workers 3 --device cpu]
// Soak test of the runtime (minutes; not part of npm test / CI): the main thread and several worker
// threads run random mixes of ops on several streams each (nested withStream included), read results
// with toArray()/toArraySync() at random points, dispose tensors at random (some are dropped without
// dispose() and left to the finalizer), and one worker is terminated mid-flight and replaced now and
// then. Every value read is compared with a float64 reference computed here from the inputs.
// Prints {wrongResults, leakedBytes, ...} and exits 1 unless both are 0.
'use strict';
const path = require('path');
const v8 = require('v8');
const vm = require('vm');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const lib = require(path.join(__dirname, '..', 'lib', 'index.js'));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

// Seeded xorshift: a failing run can be replayed with the printed seed.
function rng(seed) {
  let x = (seed >>> 0) || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

// One thread's run: returns counts. `deadline` in ms since the epoch.
async function runMix(seed, deadline, device) {
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const streams = [null, new lib.Stream(device), new lib.Stream(device), new lib.Stream(device)];
  const live = [];  // { t, ref: Float64Array, rows, cols, exact }
  const stats = { ops: 0, reads: 0, wrong: 0, dropped: 0 };
  const onStream = (s, fn) => (s ? lib.withStream(s, fn) : fn());
  const inner = () => pick(streams);

  function make(rows, cols) {
    const host = new Float32Array(rows * cols);
    for (let i = 0; i < host.length; i++) host[i] = Math.round((r() * 8 - 4) * 16) / 16;  // exact in float32
    const t = onStream(inner(), () => lib.tensor(host, { shape: [rows, cols], device }));
    return { t, ref: Float64Array.from(host), rows, cols, exact: true };
  }
  function check(e, got) {
    stats.reads++;
    let num = 0, den = 0, bad = false;
    for (let i = 0; i < e.ref.length; i++) {
      if (e.exact) { if (got[i] !== e.ref[i]) bad = true; }
      else { num += (got[i] - e.ref[i]) ** 2; den += e.ref[i] ** 2; }
    }
    if (bad || (!e.exact && Math.sqrt(num / Math.max(den, 1e-30)) > 1e-4)) stats.wrong++;
  }
  function retire(i, dispose) {
    const [e] = live.splice(i, 1);
    if (dispose) e.t.dispose(); else stats.dropped++;
  }
  const exactOfShape = (rows, cols) => live.filter((e) => e.exact && e.rows === rows && e.cols === cols);

  while (Date.now() < deadline) {
    stats.ops++;
    const op = r();
    const s = pick(streams);
    if (live.length < 4 || op < 0.15) {
      live.push(make(1 + Math.floor(r() * 24), 1 + Math.floor(r() * 24)));
    } else if (op < 0.35) {  // add, sometimes inside a nested withStream
      const a = pick(live.filter((e) => e.exact));
      if (!a) continue;
      const bs = exactOfShape(a.rows, a.cols);
      const b = pick(bs);
      const t = onStream(s, () => (r() < 0.3 ? onStream(inner(), () => lib.add(a.t, b.t)) : lib.add(a.t, b.t)));
      const ref = a.ref.map((x, i) => Math.fround(x + b.ref[i]));
      live.push({ t, ref, rows: a.rows, cols: a.cols, exact: true });
    } else if (op < 0.5) {  // matmul: float64 reference, compared with a tolerance; not used as an input
      const a = pick(live.filter((e) => e.exact));
      if (!a) continue;
      let b = pick(live.filter((e) => e.exact && e.rows === a.cols));
      if (!b) { b = make(a.cols, 1 + Math.floor(r() * 24)); live.push(b); }
      const t = onStream(s, () => lib.matmul(a.t, b.t));
      const ref = new Float64Array(a.rows * b.cols);
      for (let i = 0; i < a.rows; i++) for (let k = 0; k < a.cols; k++) {
        const x = a.ref[i * a.cols + k];
        for (let j = 0; j < b.cols; j++) ref[i * b.cols + j] += x * b.ref[k * b.cols + j];
      }
      live.push({ t, ref, rows: a.rows, cols: b.cols, exact: false });
    } else if (op < 0.6) {  // cast to int32 and back: truncation toward zero
      const a = pick(live.filter((e) => e.exact));
      if (!a) continue;
      const t = onStream(s, () => { const i = a.t.cast('int32'); const f = i.cast('float32'); i.dispose(); return f; });
      live.push({ t, ref: a.ref.map(Math.trunc), rows: a.rows, cols: a.cols, exact: true });
    } else if (op < 0.68) {  // views share storage
      const a = pick(live);
      if (r() < 0.5) {
        live.push({ t: a.t.reshape([a.cols, a.rows]), ref: a.ref, rows: a.cols, cols: a.rows, exact: a.exact });
      } else {
        const start = Math.floor(r() * a.rows), len = Math.floor(r() * (a.rows - start + 1));
        const ref = a.ref.slice(start * a.cols, (start + len) * a.cols);
        live.push({ t: a.t.narrow(0, start, len), ref, rows: len, cols: a.cols, exact: a.exact });
      }
    } else if (op < 0.8) {  // read, from any stream
      const e = pick(live);
      if (r() < 0.5) check(e, onStream(s, () => e.t.toArraySync()));
      else check(e, await e.t.toArray());
    } else if (op < 0.83) {
      if (r() < 0.5) await lib.synchronize(device); else lib.synchronizeSync(device);
    } else {  // dispose (a few are dropped for the finalizer)
      retire(Math.floor(r() * live.length), r() < 0.95);
    }
    if (live.length > 64) retire(0, true);
    if (stats.ops % 256 === 0) await new Promise((res) => setImmediate(res));  // let completions settle
  }
  for (const e of live) check(e, await e.t.toArray());
  while (live.length) retire(0, true);
  for (const s of streams) if (s) s.synchronizeSync();
  await lib.synchronize(device);
  return stats;
}

async function settleFinalizers() {
  for (let i = 0; i < 5; i++) { gc(); await new Promise((res) => setTimeout(res, 50)); }
}

async function workerMain() {
  const stats = await runMix(workerData.seed, workerData.deadline, workerData.device);
  await settleFinalizers();
  parentPort.postMessage(stats);
}

async function main() {
  const seconds = Number(arg('seconds', process.env.LLMK_SOAK_SECONDS ?? 180));
  const nWorkers = Number(arg('workers', 3));
  const device = arg('device', 'cpu');
  const seed = Number(arg('seed', Date.now() % 1e9));
  const deadline = Date.now() + seconds * 1000;
  const base = lib.memoryStats(device).liveBytes;
  const total = { ops: 0, reads: 0, wrong: 0, dropped: 0, workersTerminated: 0 };
  const add = (s) => { for (const k of ['ops', 'reads', 'wrong', 'dropped']) total[k] += s[k]; };
  let next = seed + 1;

  // A worker that ends on a message with its stats; terminate() cuts it short (its counts are lost).
  const spawn = (until) => {
    const w = new Worker(__filename, { workerData: { seed: next++, deadline: until, device } });
    const done = new Promise((resolve, reject) => {
      w.once('message', (s) => { add(s); resolve(); });
      w.once('error', reject);
      w.once('exit', () => resolve());
    });
    return { w, done };
  };
  const workers = Array.from({ length: nWorkers }, () => spawn(deadline));
  // Every few seconds a short-lived worker is started and terminated while it has work in flight.
  const killer = (async () => {
    while (Date.now() < deadline - 3000) {
      const k = spawn(deadline);
      await new Promise((res) => setTimeout(res, 500 + Math.random() * 2000));
      await k.w.terminate();
      total.workersTerminated++;
      await k.done;
    }
  })();
  add(await runMix(seed, deadline, device));
  await Promise.all([...workers.map((x) => x.done), killer]);
  await settleFinalizers();
  const leakedBytes = lib.memoryStats(device).liveBytes - base;
  const report = { device, seconds, workers: nWorkers, seed, ...total, wrongResults: total.wrong, leakedBytes };
  delete report.wrong;
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.wrongResults === 0 && leakedBytes === 0 ? 0 : 1);
}

(isMainThread ? main() : workerMain()).catch((e) => {
  console.error(e);
  process.exit(2);
});
