// Block-sparse attention (issue 5): B=1, Hq=32, Hkv=8, D=128, bfloat16, N = Nq = Nk in {4096, 16384, 65536};
// layouts dense, causal, sliding window 1024 (causal), strided (Phi-3-small: 64-token blocks, 16 local
// blocks, vertical stride 8), globalLocal (2 global + 3 local blocks each side); plus decode (Nq=1, Nk=65536).
// FLOPs are counted on the token-visible pairs of the kept blocks (4·D per pair per head), so TFLOP/s is
// comparable across layouts. Peers: bench/peers/attention.py (PyTorch SDPA flash / FlexAttention BlockMask).
// On the CPU the same layouts run at reduced sizes (float32, Hq=8, Hkv=2).
import { randn, type DeviceName } from '../ts';
import * as attention from '../ts/attention';
import type { BenchCase, Suite } from './harness';

type Layout = attention.BlockLayout;
const { BlockLayout } = attention;

interface Mask { causal: boolean; left: number; right: number }

/** Query-key pairs visible through the kept blocks and the token mask (per head, all heads summed). */
function keptPairs(L: Layout, m: Mask): number {
  const off = L.kLen - L.qLen;
  let pairs = 0;
  for (let h = 0; h < L.heads; h++) {
    for (let r = 0; r < L.nQB; r++) {
      const row = L.row(r, h);
      for (let i = r * L.blockQ; i < Math.min(L.qLen, (r + 1) * L.blockQ); i++) {
        const diag = i + off;
        let lo = 0, hi = L.kLen - 1;
        if (m.causal) hi = Math.min(hi, diag);
        if (m.right >= 0) hi = Math.min(hi, diag + m.right);
        if (m.left >= 0) lo = Math.max(lo, diag - m.left);
        for (const c of row) {
          const a = Math.max(lo, c * L.blockK), b = Math.min(hi, (c + 1) * L.blockK - 1, L.kLen - 1);
          if (b >= a) pairs += b - a + 1;
        }
      }
    }
  }
  return pairs / L.heads;
}

function layouts(N: number, bs: number, window: number): { name: string; L: Layout; m: Mask }[] {
  const none = { causal: false, left: -1, right: -1 };
  return [
    { name: 'dense', L: BlockLayout.dense({ seqLen: N, blockSize: 128 }), m: none },
    { name: 'causal', L: BlockLayout.causal({ seqLen: N, blockSize: 128 }), m: { ...none, causal: true } },
    { name: `sliding${window}`, L: BlockLayout.slidingWindow({ seqLen: N, blockSize: bs, window }), m: { causal: true, left: window, right: 0 } },
    { name: 'strided', L: BlockLayout.strided({ seqLen: N, blockSize: bs, localBlocks: 16, stride: 8 }), m: { ...none, causal: true } },
    { name: 'globalLocal', L: BlockLayout.globalLocal({ seqLen: N, blockSize: bs, globalBlocks: 2, localBlocks: 3 }), m: none },
  ];
}

function makeCase(device: DeviceName, dtype: 'bfloat16' | 'float32', name: string, Nq: number, Nk: number, Hq: number, Hkv: number,
  D: number, L: Layout, m: Mask): BenchCase {
  const q = randn([1, Nq, Hq, D], { device, dtype, seed: 1 });
  const k = randn([1, Nk, Hkv, D], { device, dtype, seed: 2 });
  const v = randn([1, Nk, Hkv, D], { device, dtype, seed: 3 });
  const es = dtype === 'float32' ? 4 : 2;
  const opts: attention.BlockSparseOptions = {
    causal: m.causal,
    window: m.left >= 0 || m.right >= 0 ? { left: m.left >= 0 ? m.left : Infinity, right: m.right >= 0 ? m.right : Infinity } : undefined,
  };
  return {
    name,
    run: () => attention.blockSparse(q, k, v, L, opts).out.dispose(),
    bytes: (2 * Nq * Hq * D + 2 * Nk * Hkv * D) * es,
    flops: 4 * D * Hq * keptPairs(L, m),
    teardown: () => { q.dispose(); k.dispose(); v.dispose(); },
  };
}

const suite: Suite = {
  name: 'attention',
  cases(device, quick) {
    const gpu = device !== 'cpu';
    const cases: BenchCase[] = [];
    if (gpu) {
      const sizes = quick ? [4096, 16384] : [4096, 16384, 65536];
      for (const N of sizes) {
        for (const { name, L, m } of layouts(N, 64, 1024)) {
          cases.push(makeCase(device, 'bfloat16', `${name} N=${N}`, N, N, 32, 8, 128, L, m));
        }
      }
      const dec = BlockLayout.dense({ qLen: 1, kLen: 65536, blockSize: 128 });
      cases.push(makeCase(device, 'bfloat16', 'decode Nk=65536', 1, 65536, 32, 8, 128, dec, { causal: false, left: -1, right: -1 }));
    } else {
      const sizes = quick ? [1024] : [1024, 4096];
      for (const N of sizes) {
        for (const { name, L, m } of layouts(N, 64, 256)) {
          cases.push(makeCase(device, 'float32', `cpu ${name} N=${N}`, N, N, 8, 2, 128, L, m));
        }
      }
      const dec = BlockLayout.dense({ qLen: 1, kLen: 16384, blockSize: 128 });
      cases.push(makeCase(device, 'float32', 'cpu decode Nk=16384', 1, 16384, 8, 2, 128, dec, { causal: false, left: -1, right: -1 }));
    }
    return cases;
  },
};
export default suite;
