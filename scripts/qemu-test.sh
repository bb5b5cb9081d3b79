#!/bin/sh
# Jest suites on linux-arm64 under qemu-user in the bullseye root, against the arm64 addon scripts/prebuild.sh
# built: the check that the source has no x86-only assumption. Too slow for CI (moe.routing: 200 s).
# jest 30's resolver is a native module (unrs-resolver): its arm64 binding, same version as the installed
# x64 one, is fetched with npm pack into the root and mounted next to it (node_modules stays untouched).
# Usage: scripts/qemu-test.sh [test files...]   (default: test/moe.routing.test.ts test/ops.test.ts)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${LLMK_BUILDROOT:-$repo/.buildroot}
tests=${*:-test/moe.routing.test.ts test/ops.test.ts}
addon="$root/work/llmk/build-arm64/Release/llmk.node"
[ -f "$addon" ] || { echo "[qemu-test] no arm64 build: LLMK_PREBUILD_TARGETS=arm64 scripts/prebuild.sh" >&2; exit 1; }
modules=$(readlink -f "$repo/node_modules")
unrs="$root/opt/unrs"
v=$(node -p "require('$modules/@unrs/resolver-binding-linux-x64-gnu/package.json').version")
if [ ! -d "$unrs/resolver-binding-linux-arm64-gnu" ]; then
  mkdir -p "$unrs/resolver-binding-linux-arm64-gnu"
  (cd "$unrs" && npm pack -q "@unrs/resolver-binding-linux-arm64-gnu@$v" >/dev/null &&
    tar xzf ./*.tgz -C resolver-binding-linux-arm64-gnu --strip-components=1 && rm ./*.tgz)
fi
rm -rf "$unrs/resolver-binding-linux-x64-gnu" && cp -r "$modules/@unrs/resolver-binding-linux-x64-gnu" "$unrs/"
cp "$(command -v qemu-aarch64-static)" "$root/usr/bin/qemu-aarch64-static"
# the clone's files with the arm64 addon as build/Release
work=/work/qemu-test
rm -rf "$root$work" && mkdir -p "$root$work/build/Release"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$root$work"
cp "$addon" "$root$work/build/Release/"
"$repo/scripts/in-buildroot.sh" "$root" -r "$modules" /opt/node_modules -r "$unrs" /opt/node_modules/@unrs \
  -e LLMK_TEST_DEVICES=cpu -- "cd $work && ln -sfn /opt/node_modules node_modules
    qemu-aarch64-static -L /usr/aarch64-linux-gnu /opt/node-arm64/bin/node node_modules/jest/bin/jest.js --ci -i $tests"
