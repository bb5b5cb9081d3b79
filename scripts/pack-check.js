#!/usr/bin/env node
// Proves the published package works without compiling: makes the prebuild (prebuildify) from the addon
// already built, packs the package, installs the tarball into an empty project and loads it there,
// checking that the prebuilt binary was the one loaded; runs the symbol check (scripts/check-prebuild.js) on
// that binary (NEEDED libraries, static libstdc++; not the glibc floor: this machine's glibc builds it) and,
// at the 2.28 floor, on the release binaries in prebuilds/ when there are any. Exits non-zero on failure.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// Everything happens in a staged copy of the package: prebuildify strips build/Release/llmk.node in
// place, which must never happen to the binary that running processes (other test workers) have mapped.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-pack-'));
try {
  const stage = path.join(tmp, 'pkg');
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  const built = ['lib', 'build/Release/llmk.node'];
  for (const rel of [...tracked, ...built]) {
    const src = path.join(root, rel);
    if (!fs.existsSync(src)) throw new Error(`${rel} is missing: build the package first (npm install)`);
    fs.cpSync(src, path.join(stage, rel), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'));
  // prebuildify (as `npm run prebuild` runs it), packaging the addon just built instead of rebuilding
  execFileSync(process.execPath, [path.join(path.dirname(require.resolve('prebuildify/package.json')), 'bin.js'),
    '--napi', '--tag-libc', '--strip', '--node-gyp', 'scripts/prebuild-cmake.js'], { cwd: stage, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LLMK_PREBUILD_REUSE: '1' } });
  const prebuildDir = path.join(stage, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(prebuildDir) || !fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node'))) {
    throw new Error(`prebuildify made no binary in ${prebuildDir}`);
  }
  const checker = path.join(root, 'scripts', 'check-prebuild.js');
  execFileSync(process.execPath, [checker, '--glibc-floor=none', prebuildDir], { stdio: ['ignore', 'inherit', 'inherit'] });
  const released = path.join(root, 'prebuilds');
  if (fs.existsSync(released) && fs.readdirSync(released).length) {
    execFileSync(process.execPath, [checker, released], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  fs.rmSync(path.join(stage, 'build'), { recursive: true, force: true });
  fs.unlinkSync(path.join(stage, 'node_modules'));
  const tgz = sh(npm, ['pack', '--ignore-scripts', '--pack-destination', tmp], stage).trim().split('\n').pop();
  const consumer = path.join(tmp, 'consumer');
  fs.mkdirSync(consumer);
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  // Install scripts allowed: the package must have none that compiles (npm adds an implicit
  // `node-gyp rebuild` for packages with binding.gyp unless "gypfile": false), and must work without one.
  sh(npm, ['install', '--no-audit', '--no-fund', path.join(tmp, tgz)], consumer);
  const pkg = JSON.parse(fs.readFileSync(path.join(consumer, 'node_modules', 'llm-kernels', 'package.json'), 'utf8'));
  for (const s of ['preinstall', 'install', 'postinstall']) {
    if (pkg.scripts && pkg.scripts[s]) throw new Error(`the published package has an ${s} script: ${pkg.scripts[s]}`);
  }
  const installed = path.join(consumer, 'node_modules', 'llm-kernels');
  if (fs.existsSync(path.join(installed, 'build'))) throw new Error('the installed package has a build/ folder: it compiled');
  const probe = `
    const l = require('llm-kernels');
    const t = l.add(l.tensor(new Float32Array([1, 2])), l.full([2], 3));
    const out = Array.from(t.toArraySync());
    if (out.join() !== '4,5') throw new Error('wrong result ' + out);
    const so = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.includes('.node') && l.includes('llm-kernels'));
    console.log(JSON.stringify({ ok: true, binary: so ? so.trim().split(/\\s+/).pop() : null, backends: l.backends() }));
  `;
  const res = JSON.parse(sh(process.execPath, ['-e', probe], consumer).trim().split('\n').pop());
  if (!res.binary || !res.binary.includes(`${path.sep}prebuilds${path.sep}`)) throw new Error(`loaded ${res.binary}, not the prebuild`);
  const esm = sh(process.execPath, ['--input-type=module', '-e', "import { tensor, backends } from 'llm-kernels'; console.log(typeof tensor, typeof backends);"], consumer).trim();
  if (esm !== 'function function') throw new Error(`ESM import failed: ${esm}`);
  console.log(`pack-check ok: ${tgz} installed without compiling; loaded ${res.binary}; cuda: ${res.backends.cuda.available ? 'available' : res.backends.cuda.reason}`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
