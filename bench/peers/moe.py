#!/usr/bin/env python3
"""PyTorch eager peer of moe.topk for the GPU machine (bench/moe.bench.ts cases).

The eager equivalent of what llm-kernels fuses into one kernel: softmax (or sigmoid + bias + grouped
selection as DeepSeek-V3 writes it) + topk + gather + renormalise. Device time from CUDA events around
CUDA-graph replays of many calls (launch overhead would dominate small T otherwise). Prints one JSON
line per case: {"suite": "moe", "case": ..., "ms": ..., "gbps": ..., "peer": "torch-eager"}, with
the case names of bench/moe.bench.ts.
Usage: python3 bench/peers/moe.py [--dtype bfloat16|float32|both] [--quick]
"""
import argparse
import json
import sys

import torch

CASES = [
    # tag, E, k, scoring, groups, group_topk, bias
    ("E8k2-softmax", 8, 2, "softmax", 0, 0, False),
    ("E64k8-softmax", 64, 8, "softmax", 0, 0, False),
    ("E128k8-softmax", 128, 8, "softmax", 0, 0, False),
    ("E256k8-sigmoid-g8t4-bias", 256, 8, "sigmoid", 8, 4, True),
]
TOKENS = [1, 16, 256, 4096, 65536]


def route(logits, k, scoring, groups, group_topk, bias, renormalize=True, scale=1.0):
    if scoring == "softmax":
        scores = torch.softmax(logits, dim=-1, dtype=torch.float32)
    else:
        scores = logits.float().sigmoid()
    choice = scores + bias if bias is not None else scores
    if groups:
        T, E = choice.shape
        g = choice.view(T, groups, E // groups)
        gscore = g.topk(2, dim=-1)[0].sum(-1) if bias is not None else g.max(-1).values
        gidx = gscore.topk(group_topk, dim=-1, sorted=False)[1]
        gmask = torch.zeros_like(gscore).scatter_(1, gidx, 1.0)
        smask = gmask.unsqueeze(-1).expand(T, groups, E // groups).reshape(T, E)
        choice = choice.masked_fill(smask == 0, float("-inf"))
    ids = choice.topk(k, dim=-1)[1]
    w = scores.gather(1, ids)
    if renormalize:
        w = w / w.sum(-1, keepdim=True)
    if scale != 1.0:
        w = w * scale
    return w, ids.to(torch.int32)


def time_ms(fn, reps):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(7):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / reps)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="both")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 1
    dtypes = {"bfloat16": [torch.bfloat16], "float32": [torch.float32],
              "both": [torch.bfloat16, torch.float32]}[args.dtype]
    torch.manual_seed(0)
    for dt in dtypes:
        dname = "bfloat16" if dt == torch.bfloat16 else "float32"
        for tag, E, k, scoring, G, gk, has_bias in CASES:
            for T in TOKENS:
                if args.quick and T not in (16, 4096, 65536):
                    continue
                logits = torch.randn(T, E, device="cuda", dtype=dt)
                bias = torch.randn(E, device="cuda") * 0.1 if has_bias else None
                fn = lambda: route(logits, k, scoring, G, gk, bias)
                ms = time_ms(fn, 20 if T >= 65536 else 100)
                nbytes = T * E * logits.element_size() + 8 * T * k
                print(json.dumps({"suite": "moe", "case": f"{tag} T={T} {dname}", "ms": round(ms, 6),
                                  "gbps": round(nbytes / (ms * 1e-3) / 1e9, 1), "peer": "torch-eager"}))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
