#!/usr/bin/env bash
# GPU tuning sweep (issue 17): every candidate kernel × benchmark shape in one call, one JSON out.
#   scripts/gpu-sweep.sh pack   here (no GPU needed): CMake-build the native test programs for sm_90
#                               into .gpu-sweep/ (no Node on the GPU box: the sweep is native + Python)
#   scripts/gpu-sweep.sh run    on the GPU box, from the repository root, with .gpu-sweep carried:
#                               clocks, INT4 sweep (LLMK_INT4_SWEEP=1: copy anchors, every variant ×
#                               shape × M ≤ 16, each checked against the CPU), the native tests with
#                               the candidates (their correctness gate), MoE top-k default vs
#                               LLMK_MOE_TOPK=warp, PyTorch peers; all under one deadline; then
#                               scripts/gpu-sweep-json.py folds the logs into $OUT/sweep.json.
# Environment: GPU_SWEEP_SECONDS (run; default 420), GPU_SWEEP_OUT (default $OUT, else ./gpu-sweep-out),
#              GPU_SWEEP_SKIP="peers sanitizer moe tests" to leave steps out, LLMK_INT4_SWEEP_VARIANTS
#              (';'-separated variants, see native/tests/test_int4.cu), LLMK_CUDA_ARCHS (pack; default 90-real).
# Docs: docs/gpu-sweep.md.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.gpu-sweep

# build JOBS: the two test programs into $BIN (C++ runtime linked statically: the GPU box's may be older).
build() {
  set -e
  mkdir -p "$BIN"
  cmake -S . -B "$BIN/cmake" -DLLMK_REQUIRE_CUDA=ON -DLLMK_NATIVE_TESTS=ON -DLLMK_CUDA_ARCHS="${LLMK_CUDA_ARCHS:-90-real}" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" > "$BIN/configure.log"
  cmake --build "$BIN/cmake" -j "$1" --target test_int4 test_moe
  cp "$BIN/cmake/test_int4" "$BIN/cmake/test_moe" "$BIN/"
  strip "$BIN/test_int4" "$BIN/test_moe" 2>/dev/null || true
  rm -rf "$BIN/cmake"  # only the programs travel (carry limit 64 MiB)
  set +e
}

pack() {
  build "${JOBS:-2}"
  du -sh "$BIN"
}

# timed NAME LIMIT CMD...: runs CMD with min(LIMIT, time left) seconds, output to $OUT/NAME.log.
timed() {
  local name=$1 limit=$2 left=$((DEADLINE - SECONDS)) t0=$SECONDS rc
  shift 2
  if [ "$left" -lt 20 ]; then echo "$name skipped (deadline)" | tee -a "$OUT/steps.txt"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout --kill-after=5 "$limit" stdbuf -oL -eL "$@" > "$OUT/$name.log" 2>&1  # line-buffered: a kill keeps the lines
  rc=$?
  echo "$name rc=$rc ${limit}s-limit $((SECONDS - t0))s" | tee -a "$OUT/steps.txt"
}

clocks() {  # one CSV line: when, name, clocks and limits, power, temperature
  nvidia-smi --query-gpu=timestamp,name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
             --format=csv,noheader 2>&1 | head -1 >> "$OUT/clocks.csv"
}

run() {
  OUT="${GPU_SWEEP_OUT:-${OUT:-$PWD/gpu-sweep-out}}"
  mkdir -p "$OUT"
  : > "$OUT/steps.txt"
  : > "$OUT/clocks.csv"
  DEADLINE=$((SECONDS + ${GPU_SWEEP_SECONDS:-420}))
  local skip=" ${GPU_SWEEP_SKIP:-} "
  [ -x "$BIN/test_int4" ] || { echo "no $BIN/test_int4: run 'scripts/gpu-sweep.sh pack' here and carry $BIN"; exit 2; }
  if ldd "$BIN/test_int4" 2>&1 | grep -q "not found"; then  # e.g. an older glibc there: rebuild (16 cores, ~3 min)
    echo "packed programs do not load here; rebuilding" | tee -a "$OUT/steps.txt"
    (build 16) > "$OUT/rebuild.log" 2>&1 || { tail -20 "$OUT/rebuild.log"; exit 2; }
  fi
  nvcc --version 2>/dev/null | tail -1 > "$OUT/toolkit.txt"
  clocks
  # 1. INT4 candidates: timings + correctness per (variant, shape, M) on the same data.
  timed int4-sweep 200 env LLMK_INT4_SWEEP=1 "$BIN/test_int4"
  clocks
  # 2. The native tests with every candidate case (lean INT4, warp top-k): the gate for any default change.
  [[ "$skip" == *" tests "* ]] || timed native-int4 90 "$BIN/test_int4"
  # 3. MoE top-k: default kernels, then the warp candidate for every eligible case (tests + bench).
  if [[ "$skip" != *" moe "* ]]; then
    timed moe-base 60 "$BIN/test_moe" --bench
    timed moe-warp 60 env LLMK_MOE_TOPK=warp "$BIN/test_moe" --bench
  fi
  clocks
  # 4. PyTorch peers measured in the same call (torch fp16 matmul and copy; torch top-k).
  if [[ "$skip" != *" peers "* ]]; then
    timed peer-int4 60 python3 bench/peers/int4.py --quick
    timed peer-moe 45 python3 bench/peers/moe.py
  fi
  # 5. Memory checker over the small cases (lean kernel included), if there is time left.
  if [[ "$skip" != *" sanitizer "* ]] && command -v compute-sanitizer > /dev/null; then
    timed sanitize-int4 60 env LLMK_TEST_SMALL=1 compute-sanitizer --error-exitcode 9 --tool memcheck "$BIN/test_int4"
  fi
  clocks
  python3 scripts/gpu-sweep-json.py "$OUT" > "$OUT/summary.txt" 2>&1
  cat "$OUT/summary.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run"; exit 2 ;;
esac
