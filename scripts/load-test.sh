#!/bin/sh
# The packed tarball in an old userland: inside the bullseye root (glibc 2.31, scripts/setup-buildroot.sh)
# the official Node 20 binary installs it with install scripts disabled, then scripts/smoke.js runs one
# call of each family on the CPU — with the x64 Node, and with the arm64 Node under qemu-user — and checks
# that the binary loaded is the package's prebuild. Usage: scripts/load-test.sh PACKAGE.tgz [x64] [arm64]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${LLMK_BUILDROOT:-$repo/.buildroot}
tgz=$(readlink -f "$1"); shift
archs=${*:-x64 arm64}
[ -f "$root/.llmk-buildroot-v1" ] || { echo "[load-test] no build root: run scripts/setup-buildroot.sh" >&2; exit 1; }
npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")   # the host's npm (pure JS) runs on the root's Node
qemu=$(command -v qemu-aarch64-static || true)

work=/work/load-test   # inside the root
rm -rf "$root$work" && mkdir -p "$root$work/app"
cp "$tgz" "$root$work/llm-kernels.tgz"
cp /etc/ssl/certs/ca-certificates.crt "$root$work/ca.crt"   # the host's trust (a TLS-inspecting proxy's CA included)
cp "$repo/scripts/smoke.js" "$root$work/app/smoke.js"
echo '{"name":"load-test","version":"1.0.0","private":true}' > "$root$work/app/package.json"
[ -z "$qemu" ] || cp "$qemu" "$root/usr/bin/qemu-aarch64-static"

mkdir -p "$HOME/.npm"
# the host's npm (read-only) and npm cache (dependencies without a download where possible)
in_root() { "$repo/scripts/in-buildroot.sh" "$root" -r "$npmdir" /opt/npm -w "$HOME/.npm" /root/.npm -- "cd $work/app && $1"; }
echo "[load-test] glibc in the root: $(in_root 'ldd --version | head -1')"
in_root "node /opt/npm/bin/npm-cli.js install --ignore-scripts --no-audit --no-fund --prefer-offline --cafile=../ca.crt --fetch-retries=1 ../llm-kernels.tgz >/dev/null"
in_root "test ! -e node_modules/llm-kernels/build"
for a in $archs; do
  case $a in
    x64) run="/opt/node-x64/bin/node" ;;
    arm64) run="qemu-aarch64-static -L /usr/aarch64-linux-gnu /opt/node-arm64/bin/node" ;;
    *) echo "[load-test] unknown arch $a" >&2; exit 1 ;;
  esac
  echo "[load-test] linux-$a: $(in_root "$run --version") smoke test"
  out=$(in_root "$run smoke.js") || { echo "$out"; exit 1; }
  echo "$out"
  echo "$out" | grep -q "\"binary\":\"[^\"]*/node_modules/llm-kernels/prebuilds/linux-$a/" ||
    { echo "[load-test] linux-$a: the binary loaded is not the package prebuild" >&2; exit 1; }
done
echo "[load-test] ok: $archs"
