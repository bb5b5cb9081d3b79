#!/usr/bin/env bash
# The CPU goal comparisons of issue 13 in one command: each suite with its peer interleaved, 1 thread, CPU time
# per call, once with the best ISA and once with AVX2 forced (the peers keep their own kernels).
#   scripts/bench-cpu-goals.sh [OUT_DIR] [SUITE ...]     (suites: matmul int4 attention; "attention" also runs attention-serving's decode)
# Writes OUT_DIR/cpu-<suite>-<isa>-1thread.json (default OUT_DIR: bench/results/goals-<date>). Needs a built
# addon (npm run build) and, for the ONNX Runtime peers, onnxruntime-node (npm run bench:install-peers).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/goals-$(date -u +%F)}
shift || true
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(matmul int4 attention)
mkdir -p "$out"
npx tsc -p bench/tsconfig.json
for suite in "${suites[@]}"; do
  for isa in best avx2; do
    forced=()
    [ "$isa" = best ] || forced=(LLMK_CPU_MATMUL_ISA=$isa LLMK_CPU_INT4_ISA=$isa LLMK_CPU_ATTN_ISA=$isa)
    echo "== $suite, ISA $isa" >&2
    env "${forced[@]}" LLMK_BENCH_CPU_TIME=1 LLMK_NUM_THREADS=1 LLMK_BENCH_ATTN_GOALS=1 \
      node lib-bench/bench/run.js --filter "$suite" --device cpu --quick --json "$out/cpu-$suite-$isa-1thread.json"
  done
done
