// The one module that loads the addon (node-gyp-build: build/Release, then prebuilds/<platform>-<arch>).
import * as fs from 'fs';
import * as path from 'path';
import { LlmkError } from './errors';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type NativeAddon = any;

/** The package root: the nearest folder above this file with our package.json (lib/, or lib-bench/ts/). */
function packageRoot(): string {
  for (let dir = path.join(__dirname, '..'); ; dir = path.dirname(dir)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'llm-kernels') return dir;
    } catch { /* keep looking */ }
    if (path.dirname(dir) === dir) return path.join(__dirname, '..');
  }
}

function load(): NativeAddon {
  const root = packageRoot();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const gypBuild = require('node-gyp-build');
    return gypBuild(root);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new LlmkError(
      `llm-kernels: no native binary fits this platform (${process.platform}-${process.arch}, Node ${process.versions.node}, ` +
        `N-API ${process.versions.napi}).\n` +
        `  Looked in: ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)}\n` +
        `  Loader said: ${why}\n` +
        `  Build from source: (cd ${root} && npm install --include=dev && npm run build:from-source)` +
        ` — set LLMK_BUILD=cpu for a CPU-only build without CMake/CUDA.`,
      'ERR_LLMK_UNAVAILABLE',
    );
  }
}

export const native: NativeAddon = load();
native.setErrorClass(LlmkError);
