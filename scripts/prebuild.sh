#!/bin/sh
# Builds the prebuilt binaries inside the bullseye root (scripts/setup-buildroot.sh) so they need at most
# glibc 2.28: linux-x64 with CUDA (this machine's nvcc, gcc 10 as host compiler) and linux-arm64 CPU-only
# (cross-compiled with aarch64-linux-gnu-g++ 10). Output: prebuilds/linux-<arch>/node.napi.glibc.node, stripped.
# The sources are staged inside the root (files git tracks or would track), so the clone's own build/ is never touched.
#   LLMK_PREBUILD_TARGETS="x64 arm64"   which binaries to build (default both)
#   LLMK_CUDA_ARCHS=...                  CUDA architectures of the x64 binary (default: CMakeLists.txt's)
#   LLMK_PREBUILD_CUDA=0                 x64 without CUDA (quick iteration only: never for a release)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${LLMK_BUILDROOT:-$repo/.buildroot}
targets=${LLMK_PREBUILD_TARGETS:-x64 arm64}
[ -f "$root/.llmk-buildroot-v1" ] || "$repo/scripts/setup-buildroot.sh" "$root"
cuda=$(readlink -f "${CUDA_PATH:-/usr/local/cuda}")
modules=$(readlink -f "$repo/node_modules")
[ -d "$modules/cmake-js" ] || { echo "[prebuild] $modules lacks cmake-js: npm install first" >&2; exit 1; }

stage=/work/llmk   # inside the root; build-<arch>/ there is kept between runs (incremental)
mkdir -p "$root$stage"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$root$stage"

for t in $targets; do
  case $t in
    x64)
      if [ "${LLMK_PREBUILD_CUDA:-1}" = 1 ]; then
        defs="--CDLLMK_CUDA=ON --CDLLMK_REQUIRE_CUDA=ON --CDCMAKE_CUDA_COMPILER=/opt/cuda/bin/nvcc --CDCMAKE_CUDA_HOST_COMPILER=g++"
        [ -n "${LLMK_CUDA_ARCHS:-}" ] && defs="$defs --CDLLMK_CUDA_ARCHS=$LLMK_CUDA_ARCHS"
      else
        defs="--CDLLMK_CUDA=OFF"
      fi
      cross="" strip=strip ;;
    arm64)
      defs="--CDLLMK_CUDA=OFF --CDCMAKE_SYSTEM_NAME=Linux --CDCMAKE_SYSTEM_PROCESSOR=aarch64"
      cross="-e CC=aarch64-linux-gnu-gcc -e CXX=aarch64-linux-gnu-g++" strip=aarch64-linux-gnu-strip ;;
    *) echo "[prebuild] unknown target $t (x64, arm64)" >&2; exit 1 ;;
  esac
  echo "[prebuild] linux-$t: building in $root (bullseye, gcc 10)"
  start=$(date +%s)
  # shellcheck disable=SC2086 # $cross: several -e options
  "$repo/scripts/in-buildroot.sh" "$root" -r "$modules" /opt/node_modules -r "$cuda" /opt/cuda \
    -e CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" $cross -- "
      cd $stage && ln -sfn /opt/node_modules node_modules
      node node_modules/cmake-js/bin/cmake-js configure --out build-$t $defs \
        --CDCMAKE_PROJECT_INCLUDE=$stage/scripts/prebuild-flags.cmake
      node node_modules/cmake-js/bin/cmake-js build --out build-$t
      $strip -o llmk-$t.node build-$t/Release/llmk.node"
  mkdir -p "$repo/prebuilds/linux-$t"
  rm -f "$repo/prebuilds/linux-$t"/*.node
  cp "$root$stage/llmk-$t.node" "$repo/prebuilds/linux-$t/node.napi.glibc.node"
  echo "[prebuild] linux-$t: prebuilds/linux-$t/node.napi.glibc.node ($(du -h "$repo/prebuilds/linux-$t/node.napi.glibc.node" | cut -f1)) in $(( $(date +%s) - start )) s"
done
