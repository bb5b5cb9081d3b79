// Minimal protobuf writer for one-node ONNX models (the CPU peers run them in onnxruntime-node) and a
// wall-clock timer for those peers. Field numbers are onnx.proto's.

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

/** Milliseconds per call of an async peer, measured on the wall clock over about budgetMs. */
export async function wallMs(fn: () => unknown | Promise<unknown>, budgetMs = 400): Promise<number> {
  await fn();
  const t0 = process.hrtime.bigint();
  let n = 0;
  while (Number(process.hrtime.bigint() - t0) < budgetMs * 1e6) { await fn(); n++; }
  return Number(process.hrtime.bigint() - t0) / 1e6 / n;
}
