#!/usr/bin/env python3
"""PyTorch peer for bench/int4.bench.ts: fp16 dense torch.matmul (cuBLAS) at the INT4 bench shapes.

Prints one JSON line per case: {"suite": "int4", "case": "NxK M=m", "ms": <median device ms>,
"peer": "torch fp16 matmul"} (the names of bench/int4.bench.ts), plus {"suite": "int4", "case": "copy", "gbps": ...} (device-to-device copy bandwidth, bytes read + written), the
ceiling the M=1 goal is stated against. Times come from CUDA events around batches of launches.
Usage: python3 bench/peers/int4.py [--quick]
"""
import json
import sys

import torch

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (8192, 28672), (7392, 8192)]
MS = [1, 4, 16, 64, 256, 1024, 4096]


def time_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(iters):
            fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) / iters)
    times.sort()
    return times[len(times) // 2]


def main():
    quick = "--quick" in sys.argv
    if not torch.cuda.is_available():
        print(json.dumps({"case": "peer", "error": "no CUDA device"}))
        return
    dev = torch.device("cuda")
    n = 1 << 30  # 2 GiB of float16
    src = torch.empty(n, dtype=torch.float16, device=dev)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 10)
    print(json.dumps({"suite": "int4", "case": "copy", "ms": ms, "gbps": 2 * n * 2 / ms / 1e6, "peer": "torch copy_"}), flush=True)
    del src, dst
    for (N, K) in SHAPES:
        w = torch.randn(N, K, dtype=torch.float16, device=dev)
        for m in MS:
            if quick and m not in (1, 16, 256):
                continue
            x = torch.randn(m, K, dtype=torch.float16, device=dev)
            wt = w.t()
            iters = 20 if m >= 1024 else 100
            ms = time_ms(lambda: torch.matmul(x, wt), iters)
            print(json.dumps({"suite": "int4", "case": f"{N}x{K} M={m}", "ms": ms, "peer": "torch fp16 matmul",
                              "tflops": 2 * m * N * K / ms / 1e9}), flush=True)
        del w
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
