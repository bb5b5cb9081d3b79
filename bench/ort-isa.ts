// The CPU peers' ISA (LLMK_BENCH_PEER_ISA), and onnxruntime-node as it runs on an AVX2+FMA CPU without AVX-512
// or AVX-VNNI (`avx2`).
// ORT picks its kernels once, from CPUID and XGETBV (MLAS's platform table and ORT's CPUIDInfo), and has no
// switch for it; a VM without CPUID faulting cannot hide AVX-512 from it. So the bench loads a copy of the
// package whose libonnxruntime.so.1 takes the AVX2 branch at the three places that would pick AVX-512 or
// AVX-VNNI. The byte patterns are those of onnxruntime-node 1.30.0, Linux x64; any other build is refused.
import * as fs from 'fs';
import * as path from 'path';

type Patch = { what: string; find: string; at: number; put: string };

// Each `find` must occur exactly once; `put` replaces the bytes at offset `at` of the match (hex strings).
const PATCHES: Patch[] = [
  // MLAS platform: `test $0x10000,%r10d` (CPUID.7 EBX AVX512F); `je` past the AVX-512 set-up -> `jmp`.
  { what: 'MLAS AVX-512 kernels', find: '41f7c200000100740e4c89c048f7d0a8e0', at: 7, put: 'eb' },
  // MLAS platform: CPUID.(7,1) EAX bit 4 (AVX-VNNI) `test $0x10,%al`; `je` past the AVX-VNNI kernels -> `jmp`.
  { what: 'MLAS AVX-VNNI kernels', find: 'b807000000b9010000000fa2a8107438', at: 14, put: 'eb' },
  // CPUIDInfo: `cmp $0xe6,%r14d` (XCR0 has the ZMM state); `je` to the AVX-512 flags -> two nops.
  { what: 'CPUIDInfo AVX-512 flags', find: '4181fee6000000746f', at: 7, put: '9090' },
  // CPUIDInfo: AVX512-BF16 kept only when XCR0 has the ZMM state: `cmovne %edx,%eax` -> `xor %eax,%eax`.
  { what: 'CPUIDInfo AVX512-BF16 flag', find: '4181fee60000000f45c2884505', at: 7, put: '31c090' },
];

/**
 * The peers' ISA the bench asks for (LLMK_BENCH_PEER_ISA): 'avx2' (their AVX2+FMA kernels), 'avx512' (their
 * AVX-512 kernels where they have a switch: OpenBLAS, which may not recognise a new CPU; ORT picks AVX-512
 * itself) or undefined (each peer's own choice).
 */
export function peerIsa(): 'avx2' | 'avx512' | undefined {
  const v = process.env.LLMK_BENCH_PEER_ISA;
  if (v === undefined || v === '' || v === 'best') return undefined;
  if (v === 'avx2' || v === 'avx512') return v;
  throw new Error(`LLMK_BENCH_PEER_ISA must be avx2, avx512 or best, got ${v}`);
}

/** Suffix for an ORT peer's name in the results: which kernels it was made to use. */
export const peerIsaTag = (): string => (peerIsa() === 'avx2' ? ', AVX2 dispatch (patched copy)' : '');

function patchLibrary(bytes: Buffer): void {
  for (const p of PATCHES) {
    const find = Buffer.from(p.find, 'hex');
    const first = bytes.indexOf(find);
    if (first < 0 || bytes.indexOf(find, first + 1) >= 0) {
      throw new Error(`onnxruntime-node AVX2 copy: the ${p.what} branch was not found exactly once (not ORT 1.30.0 x64?)`);
    }
    Buffer.from(p.put, 'hex').copy(bytes, first + p.at);
  }
}

function copyDir(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const s = path.join(from, e.name), d = path.join(to, e.name);
    if (e.isDirectory()) copyDir(s, d);
    else fs.copyFileSync(s, d);
  }
}

/**
 * The directory to require onnxruntime-node from: the installed package, or (LLMK_BENCH_PEER_ISA=avx2) its
 * patched copy under node_modules/.cache, made on first use. Throws when ORT is not installed.
 */
export function ortPackageDir(): string {
  const installed = path.dirname(require.resolve('onnxruntime-node/package.json'));
  if (peerIsa() !== 'avx2') return installed;
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('LLMK_BENCH_PEER_ISA=avx2 needs Linux x64');
  const version: string = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')).version;
  // Under node_modules so that the copy still resolves onnxruntime-common from the real tree.
  const copy = path.join(installed, '..', '.cache', `llmk-ort-${version}-avx2`, 'node_modules', 'onnxruntime-node');
  const done = path.join(copy, '.patched');
  if (!fs.existsSync(done)) {
    const bin = path.join('bin', 'napi-v6', 'linux', 'x64');
    fs.rmSync(copy, { recursive: true, force: true });
    fs.mkdirSync(copy, { recursive: true });
    for (const part of ['package.json', 'dist', 'lib']) {
      const s = path.join(installed, part);
      if (fs.statSync(s).isDirectory()) copyDir(s, path.join(copy, part));
      else fs.copyFileSync(s, path.join(copy, part));
    }
    copyDir(path.join(installed, bin), path.join(copy, bin));
    const lib = path.join(copy, bin, 'libonnxruntime.so.1');
    const bytes = fs.readFileSync(lib);
    patchLibrary(bytes);
    fs.writeFileSync(lib, bytes);
    fs.writeFileSync(done, PATCHES.map((p) => p.what).join('\n') + '\n');
  }
  return copy;
}
