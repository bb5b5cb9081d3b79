#!/usr/bin/env node
// Builds llm-kernels from a clone: picks the native variant, builds it, then compiles TypeScript.
// Order: a matching prebuilt binary → CMake via cmake-js (CUDA when nvcc is found) → node-gyp (CPU).
//   LLMK_BUILD=cpu|cuda   force a variant (cpu = node-gyp, no CMake/CUDA; cuda = CMake with CUDA required)
//   LLMK_CUDA_ARCHS=90    CUDA architectures (CMake list, default 80;86;89;90 + PTX of 90)
//   --force               build from source even when a prebuilt binary matches
//   --native-only         skip the TypeScript step
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const force = args.includes('--force');
const nativeOnly = args.includes('--native-only');
const mode = (process.env.LLMK_BUILD || '').toLowerCase();
const buildDir = path.join(root, 'build');
const variantFile = path.join(buildDir, 'llmk-variant.json');

function log(msg) { console.log(`[llm-kernels] ${msg}`); }
function run(cmd, argv, env) {
  log(`$ ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status === 0;
}
function bin(pkg, file) { return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file); }
function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}
function findNvcc() {
  const cands = [which('nvcc'), process.env.CUDACXX, process.env.CUDA_PATH && path.join(process.env.CUDA_PATH, 'bin/nvcc'),
    '/usr/local/cuda/bin/nvcc'];
  return cands.find((c) => c && fs.existsSync(c)) || '';
}
function prebuildMatches() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.node'));
}
function setVariant(v) {
  let old = null;
  try { old = JSON.parse(fs.readFileSync(variantFile, 'utf8')).variant; } catch { /* first build */ }
  if (old && old !== v) { log(`variant changed (${old} → ${v}): cleaning build/`); fs.rmSync(buildDir, { recursive: true, force: true }); }
}
function recordVariant(v) {
  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(variantFile, JSON.stringify({ variant: v, date: new Date().toISOString() }) + '\n');
}

function cmakeBuild(withCuda) {
  const variant = withCuda ? 'cmake-cuda' : 'cmake-cpu';
  setVariant(variant);
  const defs = [`--CDLLMK_CUDA=${withCuda ? 'ON' : 'OFF'}`, `--CDLLMK_REQUIRE_CUDA=${mode === 'cuda' ? 'ON' : 'OFF'}`];
  if (process.env.LLMK_CUDA_ARCHS) defs.push(`--CDLLMK_CUDA_ARCHS=${process.env.LLMK_CUDA_ARCHS}`);
  if (process.env.LLMK_NATIVE_TESTS) defs.push('--CDLLMK_NATIVE_TESTS=ON');
  const jobs = String(Math.max(1, os.cpus().length));
  // configure (re-reads options into an existing cache; objects are kept), then build incrementally
  const cmakeJs = bin('cmake-js', 'bin/cmake-js');
  const env = { CMAKE_BUILD_PARALLEL_LEVEL: jobs };
  const ok = run(process.execPath, [cmakeJs, 'configure', '--out', 'build', ...defs], env) &&
    run(process.execPath, [cmakeJs, 'build', '--out', 'build'], env);
  if (ok) recordVariant(variant);
  return ok;
}
// Node's own headers when they are installed next to the binary (no download needed).
function localNodeDir() {
  const dir = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')) ? dir : '';
}
function gypBuild() {
  setVariant('node-gyp-cpu');
  const nodedir = localNodeDir();
  const ok = run(process.execPath, [bin('node-gyp', 'bin/node-gyp.js'), 'rebuild', '-j', String(os.cpus().length),
    ...(nodedir ? [`--nodedir=${nodedir}`] : [])]);
  if (ok) recordVariant('node-gyp-cpu');
  return ok;
}

function buildNative() {
  // A clone (.git present) always builds; an unpacked package with a matching prebuild does not.
  if (!force && !mode && prebuildMatches() && !fs.existsSync(path.join(root, '.git'))) {
    log(`using the prebuilt binary in prebuilds/${process.platform}-${process.arch} (LLMK_BUILD=cpu|cuda or --force builds from source)`);
    return;
  }
  if (mode === 'cpu') {
    if (!gypBuild()) throw new Error('node-gyp CPU build failed');
    log('built the CPU-only addon with node-gyp (LLMK_BUILD=cpu)');
    return;
  }
  const nvcc = findNvcc();
  if (mode === 'cuda' && !nvcc) throw new Error('LLMK_BUILD=cuda but nvcc was not found (set CUDACXX or put nvcc on the PATH)');
  const cmake = which('cmake');
  if (cmake) {
    if (nvcc && !process.env.CUDACXX) process.env.CUDACXX = nvcc;
    if (cmakeBuild(Boolean(nvcc))) {
      log(`built the ${nvcc ? 'CUDA' : 'CPU-only'} addon with CMake${nvcc ? ` (nvcc: ${nvcc})` : ''}`);
      return;
    }
    if (mode === 'cuda') throw new Error('CMake CUDA build failed');
    // In a clone a failed CMake build is a bug to see, not to paper over (and node-gyp would wipe build/).
    if (fs.existsSync(path.join(root, '.git'))) {
      throw new Error('CMake build failed (in a clone there is no fallback; LLMK_BUILD=cpu builds the CPU-only addon with node-gyp)');
    }
    log('CMake build failed; falling back to the CPU-only node-gyp build');
  } else if (mode === 'cuda') {
    throw new Error('LLMK_BUILD=cuda needs CMake (not found on the PATH)');
  }
  if (!gypBuild()) throw new Error('node-gyp CPU build failed');
  log('built the CPU-only addon with node-gyp');
}

try {
  buildNative();
  if (!nativeOnly) {
    if (!run(process.execPath, [bin('typescript', 'bin/tsc'), '-p', 'tsconfig.json'])) throw new Error('TypeScript build failed');
    log('compiled TypeScript to lib/');
  }
} catch (e) {
  console.error(`[llm-kernels] ${e.message}`);
  process.exit(1);
}
