// Collectives on the local backend (worker threads of this process), 1–4 ranks, every op and dtype,
// in place and out of place, against float64 / exact-integer references; mismatches, timeouts,
// failing and departing ranks; argument errors.
import * as dist from '../ts/dist';
import { tensor } from '../ts/tensor';
import { LlmkError } from '../ts/errors';
import * as ref from './reference/dist';

// CPU / local-backend suite: gpu-check's CUDA-only jest run (LLMK_TEST_DEVICES=cuda) leaves it to CI.
const CPU_RUN = !process.env.LLMK_TEST_DEVICES || process.env.LLMK_TEST_DEVICES === 'cpu';
const cpuDescribe = (CPU_RUN ? describe : describe.skip) as typeof describe;

const SEED = Number(process.env.LLMK_TEST_SEED ?? Date.now() % 1e9);
const FLOATS = ['float32', 'float16', 'bfloat16'] as const;
const INTS = ['int32', 'int64', 'int8', 'uint8'] as const;
const DTYPES = [...FLOATS, ...INTS];
const OPS = ['sum', 'prod', 'max', 'min', 'avg'] as const;
const TOL: Record<string, number> = { float32: 1e-5, float16: 1e-2, bfloat16: 1e-2 };

type Case = {
  name: string; kind: string; dtype: string; op?: string; root?: number;
  shape: number[]; data: ArrayLike<number | bigint>[];
};

function makeCases(p: number, seed: number): Case[] {
  const r = ref.rng(seed);
  const cases: Case[] = [];
  const gen = (dtype: string, n: number) =>
    Array.from({ length: p }, () => ((FLOATS as readonly string[]).includes(dtype) ? ref.randn(r, n) : ref.randInt(r, dtype as ref.RefDType, n)));
  for (const dtype of DTYPES) {
    for (const n of [1, 37 * p, 1031 * p]) {
      for (const op of OPS) {
        cases.push({ name: `allReduce ${op} ${dtype} n=${n}`, kind: 'allReduce', dtype, op, shape: [n], data: gen(dtype, n) });
      }
      cases.push({ name: `allReduce(out) sum ${dtype} n=${n}`, kind: 'allReduceOut', dtype, op: 'sum', shape: [n], data: gen(dtype, n) });
      cases.push({ name: `allGather ${dtype} n=${n}`, kind: 'allGather', dtype, shape: [n], data: gen(dtype, n) });
      cases.push({ name: `allGather(in place) ${dtype} n=${n}`, kind: 'allGatherInPlace', dtype, shape: [n], data: gen(dtype, n) });
      cases.push({ name: `reduceScatter ${OPS[n % 5]} ${dtype} n=${n * p}`, kind: 'reduceScatter', dtype, op: OPS[n % 5], shape: [n * p], data: gen(dtype, n * p) });
      cases.push({ name: `reduceScatter(in place) sum ${dtype} n=${n * p}`, kind: 'reduceScatterInPlace', dtype, op: 'sum', shape: [n * p], data: gen(dtype, n * p) });
      cases.push({ name: `broadcast root ${p - 1} ${dtype} n=${n}`, kind: 'broadcast', dtype, root: p - 1, shape: [n], data: gen(dtype, n) });
      cases.push({ name: `broadcast(out) root 0 ${dtype} n=${n}`, kind: 'broadcastOut', dtype, root: 0, shape: [n], data: gen(dtype, n) });
      cases.push({ name: `send/recv ring ${dtype} n=${n}`, kind: 'ring', dtype, shape: [n], data: gen(dtype, n) });
    }
  }
  // 2-D shapes and an empty tensor.
  cases.push({ name: 'allGather 2-D float32', kind: 'allGather', dtype: 'float32', shape: [3, 5], data: gen('float32', 15) });
  cases.push({ name: 'reduceScatter 2-D float32', kind: 'reduceScatter', dtype: 'float32', op: 'sum', shape: [2 * p, 3], data: gen('float32', 6 * p) });
  cases.push({ name: 'allReduce empty float32', kind: 'allReduce', dtype: 'float32', op: 'sum', shape: [0], data: gen('float32', 0) });
  // Empty tensors in every other collective: each rank still takes part, so no peer is left waiting.
  for (const kind of ['allReduceOut', 'allGather', 'allGatherInPlace', 'reduceScatter', 'reduceScatterInPlace', 'broadcast', 'broadcastOut', 'ring']) {
    cases.push({ name: `${kind} empty int32`, kind, dtype: 'int32', op: 'max', root: 0, shape: [0], data: gen('int32', 0) });
  }
  return cases;
}

// Runs in every rank (serialised: uses only its argument).
async function rankFn({ rank, worldSize, comm, lib, args }: any): Promise<any[]> {
  const p = worldSize;
  const out: any[] = [];
  for (const c of args.cases) {
    const mk = (data: any, shape: number[]) => lib.tensor(data, { dtype: c.dtype, shape });
    const x = mk(c.data[rank], c.shape);
    const input = await x.toArray();
    let y: any;
    const n = x.numel;
    switch (c.kind) {
      case 'allReduce': y = comm.allReduce(x, { op: c.op }); break;
      case 'allReduceOut': y = comm.allReduce(x, { op: c.op, out: lib.empty(c.shape, { dtype: c.dtype }) }); break;
      case 'allGather': y = comm.allGather(x); break;
      case 'allGatherInPlace': {
        const whole = new (c.data[rank].constructor)(n * p);
        whole.set(c.data[rank], rank * n);
        const buf = mk(whole, [n * p]);
        const view = buf.narrow(0, rank * n, n);
        comm.allGather(view, { out: buf });
        y = buf;
        break;
      }
      case 'reduceScatter': y = comm.reduceScatter(x, { op: c.op }); break;
      case 'reduceScatterInPlace': {
        const m = n / p;
        const view = x.narrow(0, rank * m, m);
        y = comm.reduceScatter(x, { op: c.op, out: view });
        break;
      }
      case 'broadcast': y = comm.broadcast(x, { root: c.root }); break;
      case 'broadcastOut': y = comm.broadcast(x, { root: c.root, out: lib.empty(c.shape, { dtype: c.dtype }) }); break;
      case 'ring': {
        y = lib.empty(c.shape, { dtype: c.dtype });
        comm.group(() => {
          comm.send(x, (rank + 1) % p);
          comm.recv(y, (rank + p - 1) % p);
        });
        break;
      }
    }
    await comm.synchronize();
    out.push({ input, output: await y.toArray(), shape: y.shape });
  }
  return out;
}

function expected(c: Case, inputs: any[], rank: number, p: number): (number | bigint)[] {
  const dt = c.dtype as ref.RefDType;
  switch (c.kind) {
    case 'allReduce': case 'allReduceOut': return ref.reduce(c.op as ref.RefOp, dt, inputs);
    case 'allGather': case 'allGatherInPlace': return ref.allGather(inputs);
    case 'reduceScatter': case 'reduceScatterInPlace': return ref.reduceScatter(c.op as ref.RefOp, dt, inputs, rank);
    case 'broadcast': case 'broadcastOut': return Array.from(inputs[c.root!] as ArrayLike<number | bigint>);
    case 'ring': return Array.from(inputs[(rank + p - 1) % p] as ArrayLike<number | bigint>);
  }
  throw new Error(c.kind);
}

cpuDescribe.each([1, 2, 3, 4])('dist local backend, %i rank(s)', (p) => {
  const seed = SEED + p;
  test('every collective, op and dtype equals the reference', async () => {
    const cases = makeCases(p, seed);
    const results = await dist.runLocal(p, rankFn, { args: { cases } }) as any[][];
    const failures: string[] = [];
    cases.forEach((c, ci) => {
      const inputs = results.map((r) => r[ci].input);
      for (let rank = 0; rank < p; rank++) {
        const got = results[rank][ci].output;
        const want = expected(c, inputs, rank, p);
        if (got.length !== want.length) { failures.push(`${c.name} rank ${rank}: ${got.length} elements, want ${want.length}`); continue; }
        if (c.dtype in TOL) {
          const e = ref.relL2(got, want as number[]);
          if (!(e <= TOL[c.dtype])) failures.push(`${c.name} rank ${rank}: rel L2 ${e}`);
        } else {
          for (let i = 0; i < want.length; i++) {
            if (got[i] !== want[i]) { failures.push(`${c.name} rank ${rank}: [${i}] = ${got[i]}, want ${want[i]}`); break; }
          }
        }
        // Every rank holds bit-identical results of allReduce.
        if (c.kind === 'allReduce' && rank > 0) {
          const r0 = results[0][ci].output;
          for (let i = 0; i < got.length; i++) if (!Object.is(got[i], r0[i])) { failures.push(`${c.name}: rank ${rank} differs from rank 0 at ${i}`); break; }
        }
      }
    });
    if (failures.length) throw new Error(`seed ${seed} (LLMK_TEST_SEED=${SEED}): ${failures.length} failure(s)\n${failures.slice(0, 20).join('\n')}`);
    const shapes = results[0].map((r) => r.shape);
    expect(shapes[cases.findIndex((c) => c.name === 'allGather 2-D float32')]).toEqual([3 * p, 5]);
    expect(shapes[cases.findIndex((c) => c.name === 'reduceScatter 2-D float32')]).toEqual([2, 3]);
  });
});

async function expectRejects(p: Promise<unknown>, code: string, re?: RegExp): Promise<LlmkError> {
  let err: any;
  try { await p; } catch (e) { err = e; }
  expect(err).toBeInstanceOf(Error);
  expect(err.code).toBe(code);
  if (re) expect(err.message).toMatch(re);
  return err;
}

cpuDescribe('dist local backend: failures are reported, never deadlocks', () => {
  test('mismatched op, size and dtype across ranks fail every rank with ERR_LLMK_NCCL', async () => {
    const results = await dist.runLocal(3, async ({ rank, comm, lib }: any) => {
      const out: any[] = [];
      const attempt = async (f: () => void) => {
        try { f(); await comm.synchronize(); return 'ok'; } catch (e: any) { return { code: e.code, message: e.message, ncclResult: e.ncclResult }; }
      };
      // op mismatch on rank 2 only
      out.push(await attempt(() => comm.allReduce(lib.zeros([8]), { op: rank === 2 ? 'max' : 'sum' })));
      return out;
    }, { timeoutMs: 20000 });
    for (const r of results) {
      expect(r[0].code).toBe('ERR_LLMK_NCCL');
      expect(r[0].message).toMatch(/mismatched collectives/);
      expect(r[0].message).toMatch(/allReduce\(max, 8 x float32\)/);
      expect(r[0].ncclResult).toBe('ncclInvalidUsage');
    }
    for (const [what, fn] of [
      ['size', ({ rank, comm, lib }: any) => comm.allGather(lib.zeros([rank === 1 ? 5 : 4]))],
      ['dtype', ({ rank, comm, lib }: any) => comm.broadcast(lib.zeros([4], { dtype: rank === 1 ? 'int32' : 'float32' }))],
      ['kind', ({ rank, comm, lib }: any) => (rank === 0 ? comm.allReduce(lib.zeros([4])) : comm.allGather(lib.zeros([4])))],
      ['root', ({ rank, comm, lib }: any) => comm.broadcast(lib.zeros([4]), { root: rank })],
    ] as const) {
      const src = `async (ctx) => { try { (${fn.toString()})(ctx); await ctx.comm.synchronize(); return 'ok'; } catch (e) { return { code: e.code, message: e.message }; } }`;
      // eslint-disable-next-line no-new-func
      const f = new Function(`return ${src}`)();
      const rs = await dist.runLocal(2, f, { timeoutMs: 20000 });
      for (const r of rs as any[]) {
        expect([what, r.code]).toEqual([what, 'ERR_LLMK_NCCL']);
        expect(r.message).toMatch(/mismatched collectives/);
      }
    }
  });

  test('a rank that never calls the collective times out with a clear error', async () => {
    const t0 = Date.now();
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      if (rank === 1) { await new Promise((r) => setTimeout(r, 9000)); return 'idle'; }
      try { comm.allReduce(lib.zeros([4])); await comm.synchronize(); return 'ok'; } catch (e: any) {
        // The communicator stays failed: the next synchronize and every later call report it.
        let again: any = null, later: any = null;
        try { await comm.synchronize(); } catch (e2: any) { again = e2.ncclResult; }
        try { comm.allReduce(lib.zeros([4])); } catch (e3: any) { later = e3.code; }
        return { code: e.code, message: e.message, ncclResult: e.ncclResult, again, later, error: comm.error };
      }
    }, { timeoutMs: 5000 });
    const r0 = rs[0] as any;
    expect(r0.code).toBe('ERR_LLMK_NCCL');
    expect(r0.ncclResult).toBe('ncclTimeout');
    expect(r0.message).toMatch(/timed out after 5000 ms in allReduce\(sum, 4 x float32\)/);
    expect(r0.message).toMatch(/rank 1/);
    expect([r0.again, r0.later]).toEqual(['ncclTimeout', 'ERR_LLMK_NCCL']);
    expect(r0.error).toBe(r0.message);
    expect(Date.now() - t0).toBeLessThan(30000);
  });

  test('the timeout bounds the wait for peers, not the work: a rank waits for the others to finish reading its buffer', async () => {
    // Rank 1 (timeout 1 ms) arrives last at an in-place broadcast that it roots: it copies nothing, while
    // rank 0 copies 64 MB out of rank 1's buffer. Rank 1 used to time out after 1 ms ("ranks still
    // computing") and return — failing a collective every rank had called, and letting its buffer be
    // freed while rank 0 still read it.
    const id = dist.uniqueId({ backend: 'local' });
    const flag = new SharedArrayBuffer(4);
    const rs = await dist.runLocal(2, async ({ rank, dist: d, lib, args }: any) => {
      const f = new Int32Array(args.flag);
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const after = async (v: number) => { while (Atomics.load(f, 0) < v) await sleep(5); await sleep(200); };
      let c: any;
      try {
        if (rank === 0) {
          const p = d.init({ backend: 'local', rank, worldSize: 2, uniqueId: args.id, timeoutMs: 60000 });
          Atomics.store(f, 0, 1);
          c = await p;
        } else {
          await after(1); // arrives last: never waits for a peer
          c = await d.init({ backend: 'local', rank, worldSize: 2, uniqueId: args.id, timeoutMs: 1 });
        }
        const n = 1 << 24;
        const x = rank === 1 ? lib.full([n], 3) : lib.zeros([n]);
        await lib.synchronize('cpu');
        if (rank === 0) {
          c.broadcast(x, { root: 1 });
          Atomics.store(f, 0, 2);
        } else {
          await after(2);
          c.broadcast(x, { root: 1 });
        }
        await c.synchronize();
        const v = await x.toArray();
        x.dispose();
        await c.destroy();
        return [v[0], v[n >> 1], v[n - 1]];
      } catch (e: any) { return { code: e.code, message: e.message }; }
    }, { args: { id, flag }, timeoutMs: 60000 });
    expect(rs).toEqual([[3, 3, 3], [3, 3, 3]]);
  });

  test('a timeout too long for the clock (1e13 ms) does not expire at once', async () => {
    // now + 1e13 ms overflows steady_clock's int64 nanoseconds: the deadline lay in the past and the
    // first wait (init) failed with "timed out after 10000000000000 ms". Timeouts are clamped to 2^40 ms.
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      const t = lib.tensor(new Float32Array([rank + 1]));
      comm.allReduce(t);
      await comm.synchronize();
      return (await t.toArray())[0];
    }, { timeoutMs: 1e13 });
    expect(rs).toEqual([3, 3]);
  });

  test('a failing rank aborts the group: the others fail fast and runLocal rejects naming the rank', async () => {
    const t0 = Date.now();
    const err = await expectRejects(dist.runLocal(3, async ({ rank, comm, lib }: any) => {
      if (rank === 1) throw new Error('boom in rank 1');
      comm.allReduce(lib.zeros([16]));
      await comm.synchronize();
      return 'unreachable';
    }, { timeoutMs: 60000 }), 'ERR_LLMK_INTERNAL', /rank 1 failed: boom in rank 1/);
    expect((err as any).rank).toBe(1);
    expect(Date.now() - t0).toBeLessThan(30000); // far below the 60 s timeout
  });

  test('a rank that destroyed its communicator makes waiting peers fail, not hang', async () => {
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      if (rank === 1) { await comm.destroy(); return 'left'; }
      await new Promise((r) => setTimeout(r, 200));
      try { comm.allReduce(lib.zeros([4])); await comm.synchronize(); return 'ok'; } catch (e: any) { return { code: e.code, message: e.message }; }
    }, { timeoutMs: 60000 });
    expect((rs[0] as any).code).toBe('ERR_LLMK_NCCL');
    expect((rs[0] as any).message).toMatch(/rank 1 left the group/);
  });

  test('recv of the wrong size or dtype is reported', async () => {
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      try {
        if (rank === 0) comm.send(lib.zeros([4]), 1);
        else comm.recv(lib.zeros([5]), 0);
        await comm.synchronize();
        return 'ok';
      } catch (e: any) { return { code: e.code, message: e.message }; }
    }, { timeoutMs: 20000 });
    expect((rs[1] as any).code).toBe('ERR_LLMK_NCCL');
    expect((rs[1] as any).message).toMatch(/mismatched send\/recv: rank 0 sent 4 x float32 to rank 1, which posted recv\(from rank 0, 5 x float32\)/);
  });

  test('argument errors are thrown before anything is enqueued', async () => {
    const rs = await dist.runLocal(2, async ({ comm, lib }: any) => {
      const codes: Record<string, string> = {};
      const tryIt = (name: string, f: () => void) => { try { f(); codes[name] = 'none'; } catch (e: any) { codes[name] = e.code; } };
      tryIt('badOp', () => comm.allReduce(lib.zeros([4]), { op: 'mean' }));
      tryIt('rsShape', () => comm.reduceScatter(lib.zeros([3])));
      tryIt('outDtype', () => comm.allReduce(lib.zeros([4]), { out: lib.zeros([4], { dtype: 'int32' }) }));
      tryIt('outShape', () => comm.allGather(lib.zeros([4]), { out: lib.zeros([7]) }));
      tryIt('overlap', () => { const b = lib.zeros([8]); comm.allGather(b.narrow(0, 1, 4), { out: b }); });
      // Overlapping in/out that is not the in-place layout (for no rank): refused by the native checks.
      tryIt('rsOverlap', () => { const b = lib.zeros([8]); comm.reduceScatter(b, { out: b.narrow(0, 1, 4) }); });
      tryIt('arOverlap', () => { const b = lib.zeros([8]); comm.allReduce(b.narrow(0, 0, 4), { out: b.narrow(0, 2, 4) }); });
      tryIt('bcOverlap', () => { const b = lib.zeros([8]); comm.broadcast(b.narrow(0, 0, 4), { out: b.narrow(0, 2, 4) }); });
      tryIt('badRoot', () => comm.broadcast(lib.zeros([4]), { root: 2 }));
      tryIt('badPeer', () => comm.send(lib.zeros([4]), -1));
      tryIt('notTensor', () => comm.allReduce([1, 2, 3]));
      tryIt('disposed', () => { const t = lib.zeros([4]); t.dispose(); comm.allReduce(t); });
      tryIt('asyncGroup', () => comm.group(async () => 1));
      await comm.barrier();
      return codes;
    }, { timeoutMs: 20000 });
    for (const codes of rs as any[]) {
      expect(codes).toEqual({
        badOp: 'ERR_LLMK_ARG', rsShape: 'ERR_LLMK_SHAPE', outDtype: 'ERR_LLMK_DTYPE', outShape: 'ERR_LLMK_SHAPE', overlap: 'ERR_LLMK_ARG',
        rsOverlap: 'ERR_LLMK_ARG', arOverlap: 'ERR_LLMK_ARG', bcOverlap: 'ERR_LLMK_ARG',
        badRoot: 'ERR_LLMK_ARG', badPeer: 'ERR_LLMK_ARG', notTensor: 'ERR_LLMK_ARG', disposed: 'ERR_LLMK_DISPOSED', asyncGroup: 'ERR_LLMK_ARG',
      });
    }
  });

  test('collectives pair up in issue order, even across streams', async () => {
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      const a = lib.tensor(new Float32Array([rank + 1, 1, 1, 1]));
      const b = lib.tensor(new Float32Array(8).fill(rank + 10));
      if (rank === 0) {
        const s = new lib.Stream('cpu');
        lib.withStream(s, () => comm.allReduce(a)); // issued first, on another stream
        comm.allReduce(b);
        await comm.synchronize();
        s.synchronizeSync();
      } else {
        comm.allReduce(a);
        comm.allReduce(b);
        await comm.synchronize();
      }
      return [Array.from(await a.toArray()), Array.from(await b.toArray())];
    }, { timeoutMs: 20000 });
    for (const r of rs as any[]) expect(r).toEqual([[3, 2, 2, 2], Array(8).fill(21)]);
  });

  test('use after destroy, barrier and abort', async () => {
    const rs = await dist.runLocal(2, async ({ rank, comm, lib }: any) => {
      await comm.barrier();
      const t = lib.tensor(new Float32Array([rank + 1]));
      comm.allReduce(t);
      const v = (await t.toArray())[0];
      await comm.destroy();
      await comm.destroy(); // a second destroy does nothing
      let after = 'none';
      try { comm.allReduce(t); } catch (e: any) { after = e.code; }
      return { v, after };
    }, { timeoutMs: 20000 });
    expect(rs).toEqual([{ v: 3, after: 'ERR_LLMK_ARG' }, { v: 3, after: 'ERR_LLMK_ARG' }]);
  });
});

cpuDescribe('dist.init and unique ids (this thread)', () => {
  test('unique ids: 128 bytes, local ids are checked', async () => {
    const id = dist.uniqueId({ backend: 'local' });
    expect(id).toBeInstanceOf(Uint8Array);
    expect(id.length).toBe(128);
    expect(dist.isLocalId(id)).toBe(true);
    await expectRejects(dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: id.subarray(0, 100) }), 'ERR_LLMK_ARG', /100 bytes/);
    const bad = Uint8Array.from(id);
    bad[50] ^= 1;
    await expectRejects(dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: bad }), 'ERR_LLMK_ARG', /corrupted/);
    await expectRejects(dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: new Uint8Array(128) }), 'ERR_LLMK_ARG', /not made for the local backend/);
    await expectRejects(dist.init({ backend: 'nccl', rank: 0, worldSize: 1, uniqueId: id }), 'ERR_LLMK_ARG', /made for the local backend/);
    await expectRejects(dist.init({ backend: 'local', rank: 2, worldSize: 2, uniqueId: id }), 'ERR_LLMK_ARG', /rank/);
    await expectRejects(dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: id, device: 'cuda:0' }), 'ERR_LLMK_DEVICE');
    await expectRejects(dist.init({ backend: 'gloo' as any, rank: 0, worldSize: 1, uniqueId: id }), 'ERR_LLMK_ARG', /unknown backend/);
  });

  test('world size 1 in this thread; a rank used twice is refused; a missing rank times out', async () => {
    const c = await dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: dist.uniqueId({ backend: 'local' }) });
    expect([c.backend, c.rank, c.worldSize, c.device]).toEqual(['local', 0, 1, 'cpu']);
    const t = tensor(new Float32Array([1, 2, 3]));
    c.allReduce(t, { op: 'avg' });
    expect(Array.from((await t.toArray()) as Float32Array)).toEqual([1, 2, 3]);
    await c.destroy();

    const id = dist.uniqueId({ backend: 'local' });
    const first = dist.init({ backend: 'local', rank: 0, worldSize: 2, uniqueId: id, timeoutMs: 500 });
    await expectRejects(dist.init({ backend: 'local', rank: 0, worldSize: 2, uniqueId: id }), 'ERR_LLMK_ARG', /already joined/);
    await expectRejects(dist.init({ backend: 'local', rank: 1, worldSize: 3, uniqueId: id }), 'ERR_LLMK_ARG', /worldSize 3 differs/);
    await expectRejects(first, 'ERR_LLMK_NCCL', /timed out after 500 ms in init.*rank 1: not joined/);
  });

  test('initFromEnv in a runLocal worker joins the local group', async () => {
    const rs = await dist.runLocal(2, async ({ comm }: any) => [comm.rank, comm.worldSize, comm.backend]);
    expect(rs).toEqual([[0, 2, 'local'], [1, 2, 'local']]);
  });
});
