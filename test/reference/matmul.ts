// float64 reference matmul: out[M,N] = a[M,K] · b[K,N].
export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const av = a[i * K + k];
      for (let j = 0; j < N; j++) out[i * N + j] += av * b[k * N + j];
    }
  return out;
}
