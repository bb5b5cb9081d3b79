// Dense matmul (the in-library baseline for INT4): float32 on the CPU, float16/bfloat16 on a GPU.
import { matmul, randn } from '../ts';
import type { Suite } from './harness';

const suite: Suite = {
  name: 'matmul',
  cases(device, quick) {
    const gpu = device !== 'cpu';
    const dtypes = gpu ? (['float16', 'bfloat16'] as const) : (['float32'] as const);
    const shapes: [number, number, number][] = gpu
      ? [[1, 8192, 8192], [16, 8192, 8192], [4096, 4096, 4096], [8192, 8192, 8192]]
      : quick ? [[1, 4096, 4096], [256, 1024, 1024]] : [[1, 4096, 4096], [16, 4096, 4096], [256, 1024, 1024], [512, 512, 512]];
    const cases = [];
    for (const dtype of dtypes) {
      for (const [M, N, K] of shapes) {
        const a = randn([M, K], { device, dtype, seed: 1 }), b = randn([K, N], { device, dtype, seed: 2 });
        const es = dtype === 'float32' ? 4 : 2;
        cases.push({
          name: `${dtype} M=${M} N=${N} K=${K}`,
          run: () => matmul(a, b).dispose(),
          bytes: (M * K + K * N + M * N) * es,
          flops: 2 * M * N * K,
          teardown: () => { a.dispose(); b.dispose(); },
        });
      }
    }
    return cases;
  },
};
export default suite;
