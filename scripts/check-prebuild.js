#!/usr/bin/env node
// Like auditwheel for our .node files: lists each prebuilt binary's ELF machine, NEEDED libraries and the
// glibc/GLIBCXX/GCC symbol versions it needs (with the symbols above the floor), and fails when a binary
// needs more than glibc 2.28, needs libstdc++/libgcc_s (they must be static), needs any other shared
// library, or sits in the wrong platform folder.
//   node scripts/check-prebuild.js [file.node|dir ...]   default: prebuilds/ (every linux-* folder)
//   --all                  also fail when a platform of PLATFORMS has no binary, or the linux-x64 one has no
//                          CUDA kernels (prepack, release)
//   --glibc-floor=V|none   the floor (default 2.28; none skips it: a build on this machine, CI)
//   --json                 print the findings as JSON
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const PLATFORMS = ['linux-x64', 'linux-arm64'];
const GLIBC_FLOOR = '2.28';
const ALLOWED_NEEDED = /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$/;
const MACHINE = { 'linux-x64': /X86-64/, 'linux-arm64': /AArch64/ };
const CUDA_PLATFORMS = ['linux-x64'];   // the released binary for these carries the CUDA kernels

const cmpVersion = (a, b) => {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
};
const readelf = (args, file) => execFileSync('readelf', [...args, '-W', file], { encoding: 'utf8', maxBuffer: 1 << 28 });

/** ELF facts of one binary: machine, NEEDED, required versions (name → [symbols]), CUDA kernels (a fatbin). */
function inspect(file) {
  const machine = (/Machine:\s+(.*)/.exec(readelf(['-h'], file)) || [])[1] || '?';
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const versions = {};
  for (const m of readelf(['-V'], file).matchAll(/Name: (\S+)\s+Flags/g)) versions[m[1]] = versions[m[1]] || [];
  // undefined dynamic symbols carry the version they bind to: "UND exp@GLIBC_2.29 (5)"
  for (const m of readelf(['--dyn-syms'], file).matchAll(/\sUND\s+([^@\s]+)@([A-Z_]+[\d.]+)/g)) {
    (versions[m[2]] = versions[m[2]] || []).push(m[1]);
  }
  const cuda = /\s\.nv_fatbin\s/.test(readelf(['-S'], file));
  return { file, machine, needed, versions, cuda };
}

/** The problems of one inspected binary (empty when it is fine). */
function problems(info, platform, floor, requireCuda = false) {
  const out = [];
  if (requireCuda && CUDA_PLATFORMS.includes(platform) && !info.cuda) out.push('no CUDA kernels (.nv_fatbin): a CPU-only build');
  if (platform && MACHINE[platform] && !MACHINE[platform].test(info.machine)) out.push(`machine ${info.machine} in the ${platform} folder`);
  for (const lib of info.needed) if (!ALLOWED_NEEDED.test(lib)) out.push(`needs shared library ${lib} (only libc/libm/libdl/libpthread/librt/ld-linux allowed)`);
  for (const [ver, syms] of Object.entries(info.versions)) {
    const m = /^GLIBC_([\d.]+)$/.exec(ver);
    if (m && floor && cmpVersion(m[1], floor) > 0) out.push(`needs ${ver} (> glibc ${floor}) for ${syms.join(', ') || '?'}`);
    if (/^(GLIBCXX|CXXABI|GCC)_/.test(ver)) out.push(`needs ${ver} (${syms.slice(0, 5).join(', ')}): libstdc++/libgcc must be linked statically`);
  }
  return out;
}

function findBinaries(targets) {
  const files = [];
  for (const t of targets) {
    if (!fs.existsSync(t)) continue;
    if (fs.statSync(t).isDirectory()) {
      for (const e of fs.readdirSync(t, { withFileTypes: true })) {
        const p = path.join(t, e.name);
        if (e.isDirectory()) files.push(...findBinaries([p]));
        else if (e.name.endsWith('.node')) files.push(p);
      }
    } else files.push(t);
  }
  return files;
}

function main(argv) {
  const opt = (name) => (argv.find((a) => a.startsWith(`--${name}=`)) || '').split('=')[1];
  const floorArg = opt('glibc-floor') || GLIBC_FLOOR;
  const floor = floorArg === 'none' ? null : floorArg;
  const root = path.join(__dirname, '..');
  const args = argv.filter((a) => !a.startsWith('--'));
  const files = findBinaries(args.length ? args : [path.join(root, 'prebuilds')]);
  const report = files.map((f) => {
    const info = inspect(f);
    const platform = path.basename(path.dirname(f));
    const max = Object.keys(info.versions).filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice(6)).sort(cmpVersion).pop() || '-';
    return { ...info, platform, size: fs.statSync(f).size, maxGlibc: max, problems: problems(info, platform, floor, argv.includes('--all')) };
  });
  const missing = argv.includes('--all') ? PLATFORMS.filter((p) => !report.some((r) => r.platform === p)) : [];
  if (argv.includes('--json')) console.log(JSON.stringify({ floor, report, missing }, null, 2));
  else {
    for (const r of report) {
      console.log(`${path.relative(root, r.file)}: ${r.machine}${r.cuda ? ' + CUDA' : ''}, ${(r.size / 1e6).toFixed(1)} MB, glibc ≤ ${r.maxGlibc}` +
        `, NEEDED ${r.needed.join(' ') || '-'}\n  versions: ${Object.keys(r.versions).sort().join(' ')}`);
      for (const p of r.problems) console.log(`  FAIL ${p}`);
    }
    for (const p of missing) console.log(`FAIL no binary for ${p} in prebuilds/${p}/ (npm run prebuild builds them)`);
    if (!report.length) console.log('FAIL no prebuilt binary found');
  }
  const bad = !report.length || missing.length || report.some((r) => r.problems.length);
  if (!argv.includes('--json')) console.log(bad ? 'check-prebuild: FAILED' : `check-prebuild: ok (${report.length} binaries, glibc floor ${floor || 'not checked'})`);
  return bad ? 1 : 0;
}

module.exports = { PLATFORMS, GLIBC_FLOOR, inspect, problems };
if (require.main === module) process.exitCode = main(process.argv.slice(2));
