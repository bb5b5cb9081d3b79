// Finding and loading the addon, and saying why it failed: which binary, what the loader said, what it means
// (glibc too old, wrong architecture, missing symbol, no binary at all) and how to fix it.
import * as path from 'path';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type NativeAddon = any;

/** What the failure message needs to know about this process (injectable for tests). */
export interface LoadContext {
  platform: string;
  arch: string;
  node: string;
  napi: string;
  /** glibc version of this process, or '' when not glibc (musl) or unknown. */
  glibc: string;
}

export function currentContext(): LoadContext {
  let glibc = '';
  try {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    glibc = header?.glibcVersionRuntime ?? '';
  } catch { /* no report support: leave unknown */ }
  return { platform: process.platform, arch: process.arch, node: process.versions.node, napi: process.versions.napi ?? '?', glibc };
}

/** The cause of a loader failure, in words, from the dlopen/node-gyp-build message. */
export function diagnoseLoadError(message: string, binary: string | null, ctx: LoadContext): string {
  const glibcNeed = /version `GLIBC_([\d.]+)' not found/.exec(message);
  if (glibcNeed) {
    return `the binary needs glibc ${glibcNeed[1]} but this system has ${ctx.glibc ? `glibc ${ctx.glibc}` : 'an older one'} ` +
      '(the prebuilt binaries need glibc 2.28 or newer: RHEL/Rocky 8+, Debian 10+, Ubuntu 20.04+, Amazon Linux 2023)';
  }
  const cxxNeed = /version `((?:GLIBCXX|CXXABI)_[\d.]+)' not found/.exec(message);
  if (cxxNeed) return `the binary needs ${cxxNeed[1]} from a newer libstdc++ than this system has`;
  // glibc reports a foreign-architecture ELF as "<binary>: cannot open shared object file" (it skips it).
  const cannotOpen = /(\S+): cannot open shared object file/.exec(message);
  const foreign = cannotOpen ? cannotOpen[1] === binary : /wrong ELF class|invalid ELF header|Exec format error|ELF file OS ABI invalid|file too short|cannot read file data/.test(message);
  if (foreign) return `the binary is not a ${ctx.platform}-${ctx.arch} shared library (wrong architecture, or a damaged file)`;
  if (cannotOpen) return `a shared library it needs is missing: ${path.basename(cannotOpen[1])}`;
  const undef = /undefined symbol: (\S+)|symbol not found|Error relocating[^:]*: (\S+)/.exec(message);
  if (undef) {
    const musl = /Error relocating|symbol not found/.test(message) || (!ctx.glibc && ctx.platform === 'linux');
    return musl
      ? 'the binary is built for glibc and this system uses musl (Alpine): prebuilt binaries are glibc-only'
      : `the binary refers to a symbol this process lacks (${undef[1] ?? undef[2]}): built for another Node/N-API or library version`;
  }
  if (/No native build was found/.test(message)) {
    return `no binary for ${ctx.platform}-${ctx.arch} ships in this package and none was built from source ` +
      '(prebuilt: linux-x64 with CUDA, linux-arm64 CPU-only; both glibc ≥ 2.28)';
  }
  return 'the loader refused the binary (see its message above)';
}

/** The full error text: what was tried, what the loader said, why, and how to build from source instead. */
export function loadFailureMessage(root: string, binary: string | null, message: string, ctx: LoadContext): string {
  const said = message.trim().split('\n')[0];
  return `llm-kernels: cannot load the native addon for ${ctx.platform}-${ctx.arch} ` +
    `(Node ${ctx.node}, N-API ${ctx.napi}${ctx.glibc ? `, glibc ${ctx.glibc}` : ''}).\n` +
    (binary ? `  Binary: ${binary}\n` :
      `  Looked in: ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds', `${ctx.platform}-${ctx.arch}`)}\n`) +
    `  Loader said: ${said}\n` +
    `  Cause: ${diagnoseLoadError(message, binary, ctx)}\n` +
    `  Fix: build from source: (cd ${root} && npm install --include=dev && npm run build:from-source)` +
    ' — needs a C++17 compiler; CUDA is used when nvcc is found, LLMK_BUILD=cpu builds a CPU-only addon without CMake or CUDA.';
}

/** Resolves the binary with node-gyp-build (build/Release first, then prebuilds/) and loads it. */
export function loadAddon(root: string): { addon?: NativeAddon; binary: string | null; error?: Error } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const gypBuild = require('node-gyp-build');
  let binary: string | null = null;
  try {
    binary = gypBuild.resolve(root) as string;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { addon: require(binary), binary };
  } catch (e) {
    return { binary, error: e instanceof Error ? e : new Error(String(e)) };
  }
}
