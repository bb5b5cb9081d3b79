#!/usr/bin/env node
// prebuildify calls this in place of node-gyp (`--node-gyp scripts/prebuild-cmake.js`, in scripts/pack-check.js;
// release binaries come from scripts/prebuild.sh); it ignores
// node-gyp's arguments and builds the addon with cmake-js (incremental: a build already made is reused), leaving build/Release/llmk.node for
// prebuildify to strip and copy into prebuilds/<platform>-<arch>/.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const root = path.join(__dirname, '..');
// LLMK_PREBUILD_REUSE=1: package the addon already in build/Release as it is (scripts/pack-check.js).
if (process.env.LLMK_PREBUILD_REUSE === '1' && require('fs').existsSync(path.join(root, 'build', 'Release', 'llmk.node'))) {
  console.log('[llm-kernels] prebuild: reusing build/Release/llmk.node');
  process.exit(0);
}
const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
