/**
 * A 2-layer MLP split across ranks with Megatron tensor parallelism:
 *   h = relu(x · W1ᵀ + b1)   ColumnParallelLinear: each rank computes H/p hidden units (no communication)
 *   y = h · W2ᵀ + b2         RowParallelLinear: each rank multiplies its H/p slice, one all-reduce
 * Rank 0 checks the result against the unsharded MLP.
 *
 * On GPUs (one process per GPU, NCCL):
 *   npx llm-kernels launch --nproc-per-node 2 lib-examples/tp-mlp.js
 * On the CPU (ranks are worker threads of this process, local backend):
 *   node lib-examples/tp-mlp.js [worldSize]
 * (compile first: npx tsc -p tsconfig.json && npx tsc --outDir lib-examples --module commonjs --target es2022 --esModuleInterop examples/tp-mlp.ts,
 *  or run the TypeScript directly with any TS runner.)
 */
import { isMainThread } from 'worker_threads';
import { matmul, randn, tensor, Tensor, type DeviceName } from '../ts/index';
import * as dist from '../ts/dist';

const M = 4, K = 256, H = 384, N = 128;

// The elementwise activation runs on the host here (the library has no activation op yet).
async function relu(t: Tensor): Promise<Tensor> {
  const a = (await t.toArray()) as Float32Array;
  for (let i = 0; i < a.length; i++) if (a[i] < 0) a[i] = 0;
  return tensor(a, { shape: [...t.shape], device: t.device });
}

// [R, C] → [C, R] (host; for the dense reference only).
function transpose(t: Tensor): Tensor {
  const [R, C] = t.shape;
  const a = t.toArraySync() as Float32Array, b = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) b[c * R + r] = a[r * C + c];
  return tensor(b, { shape: [C, R], device: t.device });
}

async function addBias(y: Tensor, b: Tensor): Promise<Tensor> {
  const a = (await y.toArray()) as Float32Array, bb = (await b.toArray()) as Float32Array;
  const n = bb.length;
  for (let i = 0; i < a.length; i++) a[i] += bb[i % n];
  return tensor(a, { shape: [...y.shape], device: y.device });
}

export async function rankMain(comm: dist.Communicator): Promise<number> {
  const device: DeviceName = comm.device;
  // Every rank makes the same full weights (same seeds); each keeps only its shard.
  const x = randn([M, K], { seed: 1, device });
  const W1 = randn([H, K], { seed: 2, device }), b1 = randn([H], { seed: 3, device });
  const W2 = randn([N, H], { seed: 4, device }), b2 = randn([N], { seed: 5, device });

  const fc1 = dist.ColumnParallelLinear.fromFull(comm, { weight: W1, bias: b1 });
  const fc2 = dist.RowParallelLinear.fromFull(comm, { weight: W2, bias: b2 });
  const h = await relu(await fc1.forward(x)); // [M, H/p]
  const y = await fc2.forward(h); // [M, N], identical on every rank

  let err = 0;
  if (comm.rank === 0) {
    const hd = await relu(await addBias(matmul(x, transpose(W1)), b1));
    const yd = await addBias(matmul(hd, transpose(W2)), b2);
    const a = (await y.toArray()) as Float32Array, b = (await yd.toArray()) as Float32Array;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
    console.log(`tp-mlp: ${comm.worldSize} rank(s), backend ${comm.backend}, y [${y.shape.join(', ')}], max relative error vs unsharded ${err.toExponential(2)}`);
  }
  await comm.barrier();
  return err;
}

async function main(): Promise<void> {
  if (process.env.RANK !== undefined || !isMainThread) {
    // A rank: started by `llm-kernels launch` (NCCL) or by runLocal below (local backend).
    const comm = await dist.initFromEnv();
    const err = await rankMain(comm);
    await comm.destroy();
    if (err > 1e-4) throw new Error(`tp-mlp: result differs from the unsharded MLP (${err})`);
    return;
  }
  const world = Number(process.argv[2] ?? 2);
  await dist.runLocal(world, __filename);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
