#!/usr/bin/env node
// `prepack`: refuses to pack (npm pack / npm publish) a package that would install and then fail at require:
// no compiled lib/, or a platform of check-prebuild's PLATFORMS without its binary in prebuilds/, or a binary
// above the glibc floor. `npm run release` builds all of them; `npm pack --ignore-scripts` skips this check.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const root = process.argv[2] ? path.resolve(process.argv[2]) : path.join(__dirname, '..');
if (!fs.existsSync(path.join(root, 'lib', 'index.js'))) {
  console.error('prepack: lib/index.js is missing (npm run build:ts); refusing to pack');
  process.exit(1);
}
try {
  execFileSync(process.execPath, [path.join(__dirname, 'check-prebuild.js'), '--all', path.join(root, 'prebuilds')], { stdio: 'inherit' });
} catch {
  console.error('prepack: refusing to pack a package whose prebuilt binaries are missing or fail the check (npm run release builds them)');
  process.exit(1);
}
