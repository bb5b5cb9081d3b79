// float64 references for quant (docs/architecture.md §4.3), written from the math and from the published bit
// layouts of GPTQ, AWQ and ONNX Runtime MatMulNBits. Never calls the library.

// Bound once: under Jest each read of a global (Math, Number, Infinity) costs ~0.3 µs, and these run per element.
const { abs, ceil, floor, max } = Math;
const INF = Infinity;

/** 4-bit codes [n*k] from a canonical qweight [n, k/2] (low nibble = even k). */
export function unpackCanonical(qweight: ArrayLike<number>, n: number, k: number): Uint8Array {
  const codes = new Uint8Array(n * k);
  for (let i = 0; i < n * (k / 2); i++) {
    codes[2 * i] = qweight[i] & 15;
    codes[2 * i + 1] = (qweight[i] >> 4) & 15;
  }
  return codes;
}

/** Canonical qweight [n, k/2] from codes [n*k]. */
export function packCanonical(codes: ArrayLike<number>, n: number, k: number): Uint8Array {
  const q = new Uint8Array(n * (k / 2));
  for (let i = 0; i < q.length; i++) q[i] = (codes[2 * i] & 15) | ((codes[2 * i + 1] & 15) << 4);
  return q;
}

/**
 * W[n,k] = scales[n*G + g] · (codes[n*k + k] − zero[n*G + g]) with g = floor(k / groupSize);
 * zeros null = 8. Float64.
 */
export function dequantRef(codes: ArrayLike<number>, scales: ArrayLike<number>, zeros: ArrayLike<number> | null,
  n: number, k: number, groupSize: number): Float64Array {
  const G = k / groupSize;
  const w = new Float64Array(n * k);
  for (let r = 0; r < n; r++)
    for (let c = 0; c < k; c++) {
      const g = floor(c / groupSize);
      const z = zeros ? zeros[r * G + g] : 8;
      w[r * k + c] = scales[r * G + g] * (codes[r * k + c] - z);
    }
  return w;
}

/** y[m,n] = Σ_k x[m,k] · w[n,k] + bias[n], float64 (NaN and Inf propagate as IEEE says). */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, m: number, n: number, k: number,
  bias?: ArrayLike<number> | null): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j] : 0;
      for (let c = 0; c < k; c++) s += x[i * k + c] * w[j * k + c];
      y[i * n + j] = s;
    }
  return y;
}

/** Round-to-nearest-even bound check helper: the largest |w − dequant| / scale over each group. */
export function maxErrOverScale(w: ArrayLike<number>, deq: ArrayLike<number>, scales: ArrayLike<number>,
  n: number, k: number, groupSize: number): number {
  const G = k / groupSize;
  let worst = 0;
  for (let r = 0; r < n; r++)
    for (let c = 0; c < k; c++) {
      const s = scales[r * G + floor(c / groupSize)];
      const e = abs(w[r * k + c] - deq[r * k + c]);
      worst = max(worst, s > 0 ? e / s : (e === 0 ? 0 : INF));
    }
  return worst;
}

// ------------------------------------------------------------------------ source formats, by hand

/**
 * GPTQ (AutoGPTQ v1 / GPTQModel v2): qweight int32 [K/8, N], word (i, n) holds k = 8i + j in bits 4j;
 * qzeros int32 [G, ceil(N/8)], word (g, c) holds n = 8c + j in bits 4j, storing zero − 1 in v1.
 * codes are given as q[n*K + k] (original column order), zeros as z[g*N + n] (true zero points).
 */
export function packGptq(codes: ArrayLike<number>, zeros: ArrayLike<number>, n: number, k: number, G: number,
  format: 'v1' | 'v2'): { qweight: Int32Array; qzeros: Int32Array } {
  const qweight = new Int32Array((k / 8) * n);
  for (let c = 0; c < k; c++)
    for (let r = 0; r < n; r++) qweight[(c >> 3) * n + r] |= (codes[r * k + c] & 15) << (4 * (c & 7));
  const nz = ceil(n / 8);
  const qzeros = new Int32Array(G * nz);
  for (let g = 0; g < G; g++)
    for (let r = 0; r < n; r++) {
      const stored = format === 'v1' ? zeros[g * n + r] - 1 : zeros[g * n + r];
      qzeros[g * nz + (r >> 3)] |= (stored & 15) << (4 * (r & 7));
    }
  return { qweight, qzeros };
}

/** AWQ order: nibble i of a packed word holds column 8c + AWQ_ORDER_REF[i]. */
export const AWQ_ORDER_REF = [0, 2, 4, 6, 1, 3, 5, 7];

/** AWQ (GEMM): qweight int32 [K, N/8] and qzeros int32 [G, N/8], packed along N in AWQ order. */
export function packAwq(codes: ArrayLike<number>, zeros: ArrayLike<number>, n: number, k: number, G: number):
  { qweight: Int32Array; qzeros: Int32Array } {
  const n8 = n / 8;
  const qweight = new Int32Array(k * n8), qzeros = new Int32Array(G * n8);
  for (let c = 0; c < k; c++)
    for (let col = 0; col < n8; col++)
      for (let i = 0; i < 8; i++) qweight[c * n8 + col] |= (codes[(col * 8 + AWQ_ORDER_REF[i]) * k + c] & 15) << (4 * i);
  for (let g = 0; g < G; g++)
    for (let col = 0; col < n8; col++)
      for (let i = 0; i < 8; i++) qzeros[g * n8 + col] |= (zeros[g * n + col * 8 + AWQ_ORDER_REF[i]] & 15) << (4 * i);
  return { qweight, qzeros };
}

/**
 * ONNX Runtime MatMulNBits (bits 4): B uint8 [N, blocks, blockSize/2], codes low nibble first along K;
 * packed zero points uint8 [N, ceil(blocks/2)], block b of row n in nibble (b & 1) of byte b >> 1.
 * zeros given as z[n*blocks + b].
 */
export function packMatMulNBits(codes: ArrayLike<number>, zeros: ArrayLike<number> | null, n: number, k: number,
  blockSize: number): { b: Uint8Array; zeroPoints: Uint8Array | null } {
  const blocks = k / blockSize;
  const b = new Uint8Array(n * blocks * (blockSize / 2));
  for (let r = 0; r < n; r++)
    for (let c = 0; c < k; c += 2) b[r * (k / 2) + c / 2] = (codes[r * k + c] & 15) | ((codes[r * k + c + 1] & 15) << 4);
  if (!zeros) return { b, zeroPoints: null };
  const per = ceil(blocks / 2);
  const zp = new Uint8Array(n * per);
  for (let r = 0; r < n; r++)
    for (let blk = 0; blk < blocks; blk++) zp[r * per + (blk >> 1)] |= (zeros[r * blocks + blk] & 15) << (4 * (blk & 1));
  return { b, zeroPoints: zp };
}

/**
 * The CPU's prepared qweight (README "Data formats"): the canonical rows [n, k/2] four at a time, interleaved
 * by 64-byte chunks, chunk c of row r at byte floor(r / 4)·4·(k/2) + c·256 + (r % 4)·64. Only for n % 4 == 0
 * and k % 128 == 0 (else the prepared weight is the canonical one).
 */
export function quadsRef(qweight: ArrayLike<number>, n: number, k: number): Uint8Array {
  const k2 = k / 2, out = new Uint8Array(n * k2);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < k2; o++) out[floor(r / 4) * 4 * k2 + floor(o / 64) * 256 + (r % 4) * 64 + (o % 64)] = qweight[r * k2 + o];
  return out;
}
