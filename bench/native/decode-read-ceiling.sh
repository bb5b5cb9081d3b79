#!/usr/bin/env bash
# Builds and runs bench/native/decode-read-ceiling.cpp against the CPU attention core (the same sources and
# -O3 as the addon). Usage: bench/native/decode-read-ceiling.sh   (env: LLMK_CPU_ATTN_ISA=avx2, LLMK_NUM_THREADS=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -std=c++17 -O3 -DNDEBUG -Wall -Wextra -Werror -Inative/src -o "$out/decode-read-ceiling" \
  bench/native/decode-read-ceiling.cpp native/src/cpu/attention_core.cpp native/src/core/parallel.cpp -lpthread
LLMK_NUM_THREADS=${LLMK_NUM_THREADS:-1} "$out/decode-read-ceiling"
