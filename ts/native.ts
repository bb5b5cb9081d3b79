// The one module that loads the addon (node-gyp-build: build/Release, then prebuilds/<platform>-<arch>);
// a failure names the binary, the cause and the fix (native_load.ts).
import * as fs from 'fs';
import * as path from 'path';
import { LlmkError } from './errors';
import { currentContext, loadAddon, loadFailureMessage, NativeAddon } from './native_load';

export type { NativeAddon };

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
  const { addon, binary, error } = loadAddon(root);
  if (addon) return addon;
  throw new LlmkError(loadFailureMessage(root, binary, error ? error.message : 'unknown', currentContext()), 'ERR_LLMK_UNAVAILABLE');
}

export const native: NativeAddon = load();
native.setErrorClass(LlmkError);
