#!/bin/sh
# `npm run release`: every prebuilt binary built in the bullseye root (glibc ≤ 2.28; x64 with CUDA, arm64
# CPU-only), the symbol check, TypeScript, npm pack after the prepack check (refuses an incomplete package), the
# old-userland load test of the tarball on x64 and arm64 (qemu-user), and the sizes. Output: dist/*.tgz.
# Needs root (debootstrap/chroot), nvcc, qemu-user-static, and network for the first set-up.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
start=$(date +%s)
scripts/setup-buildroot.sh
scripts/prebuild.sh
node scripts/check-prebuild.js --all
node node_modules/typescript/bin/tsc -p tsconfig.json
mkdir -p dist && rm -f dist/llm-kernels-*.tgz
node scripts/prepack-check.js     # what prepack checks; --ignore-scripts: npm pack would also run prepare (a host build)
npm pack --ignore-scripts --pack-destination dist
tgz=$(ls dist/llm-kernels-*.tgz)
scripts/load-test.sh "$tgz" x64 arm64
size=$(stat -c %s "$tgz")
echo "[release] $tgz: $(awk "BEGIN { printf \"%.1f\", $size / 1e6 }") MB; binaries:"
ls -l prebuilds/*/*.node | awk '{ printf "  %s %.1f MB\n", $NF, $5 / 1e6 }'
[ "$size" -le 60000000 ] || { echo "[release] the tarball is over 60 MB" >&2; exit 1; }
echo "[release] ok in $(( $(date +%s) - start )) s: npm publish $tgz"
