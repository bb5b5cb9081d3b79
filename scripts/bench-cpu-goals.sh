#!/usr/bin/env bash
# The CPU goal comparisons of issue 13 in one command: each suite with its peer interleaved, 1 thread, CPU time
# per call: with the best ISA, with ours forced to AVX2 (peers as picked), and with ours and the peers on AVX2.
#   scripts/bench-cpu-goals.sh [OUT_DIR] [SUITE ...]     (suites: matmul int4 attention; "attention" also runs attention-serving's decode)
# GOAL_RUNS="best avx2-peers-avx2" runs only those configurations (default: all three).
# Writes OUT_DIR/cpu-<suite>-<run>-1thread.json (default OUT_DIR: bench/results/goals-<date>). Needs a built
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
  # best: every kernel at its best (OpenBLAS on its AVX-512 kernels where the CPU has AVX-512: it may not
  # recognise a new CPU and fall back to AVX2); avx2: ours forced to AVX2, peers as in best; avx2-peers-avx2:
  # ours and the peers on their AVX2+FMA kernels, as on a CPU without AVX-512 (OpenBLAS via
  # OPENBLAS_CORETYPE, ORT through the patched copy of bench/ort-isa.ts).
  best_peers=()
  ! grep -qw avx512f /proc/cpuinfo || best_peers=(LLMK_BENCH_PEER_ISA=avx512)
  for run in ${GOAL_RUNS:-best avx2 avx2-peers-avx2}; do
    forced=("${best_peers[@]}")
    [ "$run" = best ] || forced+=(LLMK_CPU_MATMUL_ISA=avx2 LLMK_CPU_INT4_ISA=avx2 LLMK_CPU_ATTN_ISA=avx2)
    [ "$run" != avx2-peers-avx2 ] || forced+=(LLMK_BENCH_PEER_ISA=avx2)
    echo "== $suite, $run" >&2
    env "${forced[@]}" LLMK_BENCH_CPU_TIME=1 LLMK_NUM_THREADS=1 LLMK_BENCH_ATTN_GOALS=1 \
      node lib-bench/bench/run.js --filter "$suite" --device cpu --quick --json "$out/cpu-$suite-$run-1thread.json"
  done
done
