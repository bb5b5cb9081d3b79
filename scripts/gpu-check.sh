#!/usr/bin/env bash
# GPU check in two halves (docs/architecture.md §8).
#   scripts/gpu-check.sh pack   here: build the CUDA addon + native tests, pack everything into .gpu/
#   scripts/gpu-check.sh run    on the GPU box, from the repository root: unpack, then native tests
#                               (compute-sanitizer first, small sizes), jest on CUDA, PyTorch peers,
#                               benchmarks; logs + JSON to $GPU_CHECK_OUT; a short table last.
# Environment: LLMK_CUDA_ARCHS (pack; default 90), GPU_CHECK_OUT (run; default ./gpu-check-out),
#              GPU_CHECK_SKIP="sanitizer jest bench" to leave steps out, GPU_CHECK_BENCH_FILTER.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUNDLE=.gpu

pack() {
  set -e
  export LLMK_CUDA_ARCHS="${LLMK_CUDA_ARCHS:-90}" LLMK_NATIVE_TESTS=1 LLMK_BUILD=cuda
  node scripts/build.js
  npx tsc -p bench/tsconfig.json
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/native-tests"
  xz -T2 -6 -c "$(command -v node)" > "$BUNDLE/node.xz"
  # test + bench dependencies only (no compilers or packagers)
  tar -cf - --exclude='node_modules/node-gyp' --exclude='node_modules/prebuildify' --exclude='node_modules/@types' --exclude='node_modules/onnxruntime-*' \
      --exclude='node_modules/.cache' node_modules | xz -T2 -6 > "$BUNDLE/node_modules.tar.xz"
  tar -cf - lib lib-bench build/Release/llmk.node build/llmk-variant.json | xz -T2 -6 > "$BUNDLE/build.tar.xz"
  for t in $(node -e "for (const t of require('./native/sources.json').native_tests) console.log(t.name)"); do
    [ -f "build/$t" ] && cp "build/$t" "$BUNDLE/native-tests/"
  done
  du -sh "$BUNDLE"; ls -la "$BUNDLE" "$BUNDLE/native-tests"
  local kb; kb=$(du -sk "$BUNDLE" | cut -f1)
  [ "$kb" -lt 62000 ] || { echo "bundle is ${kb} KB, over the 64 MiB carry limit"; exit 1; }
}

unxz_to() {  # unxz_to FILE.xz OUTFILE  (xz, else Python's lzma)
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"; else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$1" "$2"; fi
}

step() {  # step NAME TIMEOUT CMD... : runs with a time limit (cut to the overall deadline), logs to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then STATUS+=("$(printf '%-22s skipped (deadline)' "$name")"); return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  STATUS+=("$(printf '%-22s rc=%-4s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
  return 0
}

run() {
  OUT="${GPU_CHECK_OUT:-$ROOT/gpu-check-out}"; mkdir -p "$OUT"
  STATUS=()
  DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-470}))  # the whole run fits in 8 minutes
  local skip="${GPU_CHECK_SKIP:-}"
  echo "=== unpack"
  mkdir -p /tmp/llmk-node/bin
  unxz_to "$BUNDLE/node.xz" /tmp/llmk-node/bin/node && chmod +x /tmp/llmk-node/bin/node
  export PATH=/tmp/llmk-node/bin:$PATH
  unxz_to "$BUNDLE/node_modules.tar.xz" /tmp/llmk-nm.tar && tar -xf /tmp/llmk-nm.tar && rm -f /tmp/llmk-nm.tar
  unxz_to "$BUNDLE/build.tar.xz" /tmp/llmk-build.tar && tar -xf /tmp/llmk-build.tar && rm -f /tmp/llmk-build.tar
  node --version
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
  nvcc --version | tail -1 | tee -a "$OUT/gpu.txt"
  if ! node -e "const b=require('./lib').backends(); if(!b.cuda.available){console.error(b.cuda.reason);process.exit(1)} console.log(JSON.stringify(b))" > "$OUT/load.log" 2>&1; then
    echo "prebuilt addon does not see CUDA here ($(cat "$OUT/load.log")); rebuilding with CMake"
    step rebuild 300 env LLMK_BUILD=cuda LLMK_CUDA_ARCHS=90 LLMK_NATIVE_TESTS=1 node scripts/build.js --native-only
    for t in build/test_*; do [ -x "$t" ] && cp "$t" "$BUNDLE/native-tests/"; done
  fi
  cat "$OUT/load.log"
  for t in "$BUNDLE"/native-tests/*; do
    [ -x "$t" ] && step "native-$(basename "$t")" 60 "$t"
  done
  if [[ " $skip " != *" jest "* ]]; then
    step jest-cuda 150 env LLMK_TEST_DEVICES=cuda node node_modules/jest/bin/jest.js --ci --testPathIgnorePatterns pack.test.ts \
      --json --outputFile="$OUT/jest-cuda.json"
  fi
  # NCCL from Node at world size 1 (the box has NCCL in PyTorch's wheels)
  [ -f native/tests/nccl_node_smoke.js ] && step nccl-node 90 node native/tests/nccl_node_smoke.js .
  if [[ " $skip " != *" sanitizer "* ]] && command -v compute-sanitizer >/dev/null; then
    for t in "$BUNDLE"/native-tests/*; do
      [ -x "$t" ] && step "sanitize-$(basename "$t")" 45 env LLMK_TEST_SMALL=1 compute-sanitizer --error-exitcode 9 --tool memcheck "$t"
    done
  fi
  if [[ " $skip " != *" bench "* ]]; then
    : > "$OUT/peers.jsonl"
    for p in bench/peers/*.py; do
      [ -f "$p" ] && step "peer-$(basename "$p" .py)" 45 env PYTHONUNBUFFERED=1 GPU_CHECK_OUT="$OUT" sh -c "python3 '$p' >> '$OUT/peers.jsonl'"
    done
    step bench 150 node lib-bench/bench/run.js --device cuda:0 --quick --peers "$OUT/peers.jsonl" --json "$OUT/bench.json" \
      ${GPU_CHECK_BENCH_FILTER:+--filter "$GPU_CHECK_BENCH_FILTER"}
  fi
  echo
  echo "=== summary ($(head -2 "$OUT/gpu.txt" | tail -1))"
  for f in "$OUT"/native-*.log "$OUT"/sanitize-*.log; do
    [ -f "$f" ] && printf '%-34s %s\n' "$(basename "$f" .log)" "$(grep -cE '^PASS' "$f") pass, $(grep -cE '^FAIL' "$f") fail; $(grep -E 'ERROR SUMMARY|OK:|FAILED:' "$f" | tail -1)"
  done
  [ -f "$OUT/jest-cuda.json" ] && node -e "const r=require('$OUT/jest-cuda.json'); console.log('jest cuda: '+r.numPassedTests+' passed, '+r.numFailedTests+' failed, '+r.numPendingTests+' skipped'); for (const s of r.testResults) for (const t of s.assertionResults) if (t.status==='failed') console.log('  FAILED '+t.fullName)" | head -30
  [ -f "$OUT/bench.log" ] && grep -E '^[a-z0-9-]+ +' "$OUT/bench.log" | head -80
  printf '%s\n' "${STATUS[@]}"
}

finish() {  # few files come back from the GPU box: keep the JSON and the summary, tar the logs
  (cd "$OUT" && tar -czf logs.tgz --exclude=logs.tgz --exclude=bench.json --exclude=jest-cuda.json --exclude=summary.txt ./* \
     && find . -maxdepth 1 -type f ! -name logs.tgz ! -name bench.json ! -name jest-cuda.json ! -name summary.txt -delete)
}

case "${1:-}" in
  pack) pack ;;
  run) OUT="${GPU_CHECK_OUT:-$ROOT/gpu-check-out}"; mkdir -p "$OUT"
       run 2>&1 | tee /tmp/gpu-check-run.log
       cp /tmp/gpu-check-run.log "$OUT/run.log"
       sed -n '/^=== summary/,$p' /tmp/gpu-check-run.log > "$OUT/summary.txt"
       finish ;;
  *) echo "usage: $0 pack|run"; exit 2 ;;
esac
