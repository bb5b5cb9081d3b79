// Every public TypeScript entry point called with hostile arguments (wrong types, null, NaN, BigInt,
// Symbol, disposed tensors, ...) must fail with an LlmkError that has a code, never a TypeError from
// deep inside. (test/native-fuzz.test.ts does the same one layer down, on the native entry points.)
// Left out: internal constructors and helpers (marked @internal), and what opens sockets or spawns
// processes (init, initFromEnv, rendezvous, runLocal, launch, TCPStoreServer).
import * as l from '../ts';

type Fn = (...args: unknown[]) => unknown;

describe('public API under hostile arguments', () => {
  it('throws LlmkError with a code, nothing else', async () => {
    const t = l.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    const stale = l.tensor(new Float32Array([1]));
    stale.dispose();
    const layout = l.attention.BlockLayout.dense({ seqLen: 128, blockSize: 64 });
    const vals: unknown[] = [undefined, null, 0, -1, 1.5, 1e300, NaN, 'x', {}, [], [1, -2], [2, 2], t, stale,
      new Float32Array(2), () => 0, true, { k: -1 }, { dtype: 'nope' }, { device: 'cuda:7' }, { shape: [-1] },
      Symbol('s'), 10n, { groupSize: 3 }, layout, { weights: t, ids: t, gateUp: t, down: t }];
    const B = l.attention.BlockLayout as unknown as Record<string, Fn>;
    const targets: Array<[string, Fn]> = [];
    const add = (prefix: string, o: Record<string, unknown>, names: string[]): void => {
      for (const k of names) targets.push([prefix + k, (o[k] as Fn).bind(o)]);
    };
    add('', l as unknown as Record<string, unknown>, ['tensor', 'empty', 'zeros', 'full', 'rand', 'randn', 'withStream', 'synchronize',
      'synchronizeSync', 'add', 'matmul', 'deviceTime', 'memoryStats']);
    add('moe.', l.moe as unknown as Record<string, unknown>, ['topk', 'align', 'permute', 'combine', 'expertCounts', 'loadBalancingLoss',
      'experts']);
    add('attention.', l.attention as unknown as Record<string, unknown>, ['blockSparse']);
    add('BlockLayout.', B, ['dense', 'causal', 'slidingWindow', 'globalLocal', 'strided', 'document', 'fromBlockMask', 'fromBsr', 'union', 'intersect']);
    add('quant.', l.quant as unknown as Record<string, unknown>, ['fromCanonical', 'quantize', 'dequantize', 'prepare', 'matmul', 'matmulPath',
      'fromGptq', 'fromAwq', 'fromMatMulNBits', 'stackExperts']);
    add('dist.', l.dist as unknown as Record<string, unknown>, ['parseLaunchArgs', 'shard', 'isLocalId', 'uniqueId']);
    for (const k of ['reshape', 'narrow', 'cast', 'to', 'toArraySync', 'toArray'] as const)
      targets.push([`Tensor.${k}`, (...a: unknown[]) => (t[k] as unknown as Fn)(...a)]);
    targets.push(['new Stream', (...a: unknown[]) => new (l.Stream as unknown as new (...x: unknown[]) => unknown)(...a)]);
    targets.push(['new ColumnParallelLinear', (...a: unknown[]) => new (l.dist.ColumnParallelLinear as unknown as new (...x: unknown[]) => unknown)(...a)]);
    targets.push(['new RowParallelLinear', (...a: unknown[]) => new (l.dist.RowParallelLinear as unknown as new (...x: unknown[]) => unknown)(...a)]);

    const wrong = new Map<string, number>();
    let calls = 0, failed = 0;
    for (const [name, fn] of targets) {
      for (let n = 0; n < 150; n++) {
        const args = Array.from({ length: 1 + (n % 5) }, (_, i) => vals[(n * 7 + i * 13 + name.length) % vals.length]);
        calls++;
        try {
          const r = fn(...args);
          if (r && typeof (r as Promise<unknown>).then === 'function') await r;
          if (r && typeof (r as { dispose?: unknown }).dispose === 'function' && r !== t) (r as { dispose(): void }).dispose();
        } catch (e) {
          failed++;
          if (!(e instanceof l.LlmkError) || !e.code) {
            const key = `${name}: ${(e as Error)?.constructor?.name}: ${String((e as Error)?.message).slice(0, 80)}`;
            wrong.set(key, (wrong.get(key) ?? 0) + 1);
          }
        }
      }
    }
    await l.synchronize('cpu');
    t.dispose();
    expect(calls).toBeGreaterThan(5000);
    expect(failed).toBeGreaterThan(calls / 2);
    expect([...wrong.keys()]).toEqual([]);
  });

  it('Communicator methods (local backend, world size 1) throw LlmkError with a code', async () => {
    const comm = await l.dist.init({ backend: 'local', rank: 0, worldSize: 1, uniqueId: l.dist.uniqueId({ backend: 'local' }) });
    const t = l.tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] });
    const stale = l.tensor(new Float32Array([1]));
    stale.dispose();
    const vals: unknown[] = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], t, stale, () => 0, true, Symbol('s'), 10n,
      { op: 'nope' }, { root: 5 }, { out: stale }, { out: t }];
    const c = comm as unknown as Record<string, Fn>;
    const wrong = new Map<string, number>();
    let calls = 0;
    for (const k of ['allReduce', 'allGather', 'reduceScatter', 'broadcast', 'send', 'recv', 'group', 'synchronize', 'barrier']) {
      for (let n = 0; n < 150; n++) {
        const args = Array.from({ length: 1 + (n % 4) }, (_, i) => vals[(n * 7 + i * 13 + k.length) % vals.length]);
        calls++;
        try {
          const r = c[k](...args);
          if (r && typeof (r as Promise<unknown>).then === 'function') await r;
        } catch (e) {
          if (!(e instanceof l.LlmkError) || !e.code) {
            const key = `${k}: ${(e as Error)?.constructor?.name}: ${String((e as Error)?.message).slice(0, 80)}`;
            wrong.set(key, (wrong.get(key) ?? 0) + 1);
          }
        }
      }
    }
    await l.synchronize('cpu').catch(() => undefined);
    comm.destroy();
    t.dispose();
    expect(calls).toBe(9 * 150);
    expect([...wrong.keys()]).toEqual([]);
  });
});
