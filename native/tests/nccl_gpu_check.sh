#!/bin/bash
# dist on a GPU box: builds native/tests/nccl_overhead.cpp (our NCCL loader + the dist ops layer + the core
# runtime, no Node needed) with g++ and runs it: NCCL world size 1, every collective and dtype, init
# timeout, per-call overhead raw vs ops layer. Writes $OUT/nccl_overhead.log and .jsonl. Run from the
# repository root: OUT=gpu-check-out/dist bash native/tests/nccl_gpu_check.sh
set -u
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
nvidia-smi -L; nvidia-smi --query-gpu=driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())" 2>&1 | tail -1
B=$(mktemp -d)
SRCS="native/tests/nccl_overhead.cpp native/src/core/storage.cpp native/src/core/tensor.cpp native/src/core/stream.cpp native/src/core/parallel.cpp native/src/core/cuda_runtime.cpp native/src/core/nccl_loader.cpp native/src/ops/dist.cpp"
for f in $SRCS; do g++ -std=c++17 -O2 -Wall -Wextra -Werror -DLLMK_WITH_CUDA -I"$CUDA_HOME/include" -c "$f" -o "$B/$(basename "$f").o" & done; wait
g++ "$B"/*.o -L"$CUDA_HOME/lib64" -lcudart_static -ldl -lpthread -lrt -o "$B/nccl_overhead" || { echo "FAIL build"; exit 1; }
LLMK_NCCL_PATH=/nonexistent/libnccl.so.2 "$B/nccl_overhead" | head -3
timeout 240 "$B/nccl_overhead" --require-nccl 2>&1 | tee "$OUT/nccl_overhead.log"
rc=${PIPESTATUS[0]}
grep '^{' "$OUT/nccl_overhead.log" > "$OUT/nccl_overhead.jsonl"
echo "nccl_overhead rc=$rc"
# The same path from Node (N-API binding + TS API), when a node binary and the built package are here.
if command -v node >/dev/null && [ -f lib/dist.js ]; then
  timeout 120 node native/tests/nccl_node_smoke.js . 2>&1 | tee "$OUT/nccl_node_smoke.log"
  nrc=${PIPESTATUS[0]}
  grep '^{' "$OUT/nccl_node_smoke.log" >> "$OUT/nccl_overhead.jsonl"
  echo "nccl_node_smoke rc=$nrc"; [ "$rc" -eq 0 ] && rc=$nrc
fi
exit $rc
