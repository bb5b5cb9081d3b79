// Minimal protobuf writer for one-node ONNX models (the CPU peers run them in onnxruntime-node) and a
// wall-clock timer for those peers. Field numbers are onnx.proto's.
import { ortPackageDir } from './ort-isa';

/** Base-128 varint. */
export function varint(n: number): number[] {
  const b: number[] = [];
  while (n > 127) { b.push((n & 127) | 128); n = Math.floor(n / 128); }
  b.push(n);
  return b;
}

/** One field: wire 0 = varint payload, wire 2 = length-delimited bytes. */
export function field(no: number, wire: number, payload: number[] | number | Uint8Array): number[] {
  const key = varint(no * 8 + wire);
  if (wire === 0) return [...key, ...varint(payload as number)];
  const p = payload as number[] | Uint8Array;
  const out = [...key, ...varint(p.length)];
  for (let i = 0; i < p.length; i++) out.push(p[i]);
  return out;
}

/** UTF-8 bytes of a string field. */
export const str = (s: string): number[] => Array.from(Buffer.from(s, 'utf8'));

/** ModelProto (IR version 8) of one graph with the opsets ai.onnx 17 and com.microsoft 1. */
export function msModel(graph: number[]): Uint8Array {
  return Uint8Array.from([...field(1, 0, 8), ...field(7, 2, graph),
    ...field(8, 2, [...field(1, 2, []), ...field(2, 0, 17)]), ...field(8, 2, [...field(1, 2, str('com.microsoft')), ...field(2, 0, 1)])]);
}

/** The parts of onnxruntime-node the float32 peers use. */
export type OrtTensor = { data: Float32Array };
export type Ort = {
  InferenceSession: { create(b: Uint8Array, o?: object): Promise<{ run(f: object, fetches?: object): Promise<Record<string, OrtTensor>> }> };
  Tensor: new (t: string, d: Float32Array | Int32Array, s: number[]) => OrtTensor;
};

/** onnxruntime-node when installed (`npm run bench:install-peers`), else undefined; its AVX2 copy with LLMK_BENCH_PEER_ISA=avx2. */
export function loadOrt(): Ort | undefined {
  try {
    require.resolve('onnxruntime-node');
  } catch {
    return undefined;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(ortPackageDir());
}

/** Milliseconds per call of an async peer, measured on the wall clock over about budgetMs. */
export async function wallMs(fn: () => unknown | Promise<unknown>, budgetMs = 400): Promise<number> {
  await fn();
  const t0 = process.hrtime.bigint();
  let n = 0;
  while (Number(process.hrtime.bigint() - t0) < budgetMs * 1e6) { await fn(); n++; }
  return Number(process.hrtime.bigint() - t0) / 1e6 / n;
}

/**
 * Our CPU kernel against its onnxruntime-node peer: the relative L2 distance of our output from the
 * peer's, then `reps` rounds of ours and the peer timed on the wall clock (about 300 ms each, in turn);
 * the figures are medians (speedup = peer / ours), the note lists the ratios.
 */
export async function vsOrt(ours: () => unknown, peer: () => Promise<unknown>, oursOut: Float32Array,
  peerOut: ArrayLike<number>, reps: number): Promise<{ ms: number; peerMs: number; speedup: number; note: string }> {
  let num = 0, den = 0;
  for (let i = 0; i < oursOut.length; i++) { num += (oursOut[i] - peerOut[i]) ** 2; den += peerOut[i] ** 2; }
  const oursMs: number[] = [], peerMs: number[] = [], ratio: number[] = [];
  for (let r = 0; r < reps; r++) {
    const a = await wallMs(ours, 300), b = await wallMs(peer, 300);
    oursMs.push(a); peerMs.push(b); ratio.push(b / a);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return { ms: median(oursMs), peerMs: median(peerMs), speedup: median(ratio),
    note: `median of ${reps} interleaved ratios ${ratio.map((v) => v.toFixed(2)).join(' ')}; rel L2 vs ORT ${Math.sqrt(num / den).toExponential(1)}` };
}
