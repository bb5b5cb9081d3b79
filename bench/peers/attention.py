#!/usr/bin/env python3
"""PyTorch peers for bench/attention.bench.ts, run on the GPU box by scripts/gpu-check.sh.

Cases of issue 5: B=1, Hq=32, Hkv=8, D=128, bfloat16, N in {4096, 16384, 65536}; layouts dense, causal,
sliding window 1024 (causal), strided (Phi-3-small: 64-token blocks, 16 local blocks, vertical stride 8),
globalLocal (2 global blocks + 3 local blocks each side, 64-token blocks); plus decode (Nq=1, Nk=65536).

dense / causal / decode: torch.nn.functional.scaled_dot_product_attention with the flash backend.
sparse layouts: FlexAttention with the equivalent BlockMask (block size 64), when torch has it.
Device time from CUDA events around each call (median of many). One JSON line per case on stdout:
{"suite": "attention", "case": "<layout> N=<n>", "peer": ..., "N": ..., "Nq": ..., "ms": ...}. Options: --sizes 4096,16384 --no-flex
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

B, HQ, HKV, D = 1, 32, 8, 128
BLOCK = 64


def timed(fn, budget_ms=150.0, max_iters=200):
    fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); fn(); e1.record(); torch.cuda.synchronize()
    one = max(e0.elapsed_time(e1), 0.01)
    iters = int(max(3, min(max_iters, budget_ms / one)))
    times = []
    for _ in range(iters):
        e0.record(); fn(); e1.record(); torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1))
    times.sort()
    return times[len(times) // 2]


def emit(case, impl, n, nq, ms, **extra):
    # case names match bench/attention.bench.ts ("<layout> N=<n>", "decode Nk=65536")
    name = f"decode Nk={n}" if case == "decode" else f"{case} N={n}"
    if impl == "torch-flex" and case == "causal":
        name += " (flex)"
    rec = {"suite": "attention", "case": name, "peer": impl, "impl": impl, "N": n, "Nq": nq, "ms": round(ms, 4)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def qkv(nq, nk):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, HQ, nq, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(B, HKV, nk, D, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(B, HKV, nk, D, device="cuda", dtype=torch.bfloat16, generator=g)
    return q, k, v


def sdpa(q, k, v, causal):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16384,65536,4096")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--flex-sizes", default="16384")  # each FlexAttention mask compiles (~2-6 s); keep gpu-check short
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    flex_sizes = {int(s) for s in args.flex_sizes.split(",") if s}
    print(json.dumps({"peer": "torch", "version": torch.__version__, "device": torch.cuda.get_device_name()}),
          flush=True)

    flex = None
    if not args.no_flex:
        try:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            flex = (create_block_mask, torch.compile(flex_attention, dynamic=False))
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"peer": "torch-flex", "unavailable": str(e)}), flush=True)

    # SDPA first (the goals compare against it), then decode, then FlexAttention (each mask compiles).
    for n in sizes:
        q, k, v = qkv(n, n)
        for case, causal in (("dense", False), ("causal", True)):
            try:
                emit(case, "torch-sdpa-flash", n, n, timed(lambda: sdpa(q, k, v, causal)))
            except Exception as e:  # noqa: BLE001
                print(json.dumps({"case": case, "impl": "torch-sdpa-flash", "N": n, "error": str(e)[:200]}), flush=True)
        del q, k, v
        torch.cuda.empty_cache()

    # decode: Nq = 1, Nk = 65536
    q, k, v = qkv(1, 65536)
    try:
        emit("decode", "torch-sdpa-flash", 65536, 1, timed(lambda: sdpa(q, k, v, False)))
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"case": "decode", "impl": "torch-sdpa-flash", "error": str(e)[:200]}), flush=True)
        emit("decode", "torch-sdpa", 65536, 1,
             timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)))
    del q, k, v
    torch.cuda.empty_cache()

    for n in sizes:
        if flex is None or n not in flex_sizes:
            continue
        q, k, v = qkv(n, n)
        create_block_mask, flex_attn = flex

        def sliding(b, h, qi, kj):
            return (kj <= qi) & (qi - kj <= 1024)

        def strided(b, h, qi, kj):
            qb, kb = qi // BLOCK, kj // BLOCK
            return (kj <= qi) & (((qb - kb) < 16) | ((kb + 1) % 8 == 0))

        def global_local(b, h, qi, kj):
            qb, kb = qi // BLOCK, kj // BLOCK
            return (qb < 2) | (kb < 2) | ((qb - kb).abs() <= 3)

        def causal_mod(b, h, qi, kj):
            return kj <= qi

        for case, mod in (("causal", causal_mod), ("sliding1024", sliding), ("strided", strided),
                          ("globalLocal", global_local)):
            try:
                t0 = time.time()
                bm = create_block_mask(mod, None, None, n, n, device="cuda", BLOCK_SIZE=128)
                fn = lambda: flex_attn(q, k, v, block_mask=bm, enable_gqa=True)  # noqa: E731
                ms = timed(fn)
                emit(case, "torch-flex", n, n, ms, setup_s=round(time.time() - t0, 1))
            except Exception as e:  # noqa: BLE001
                print(json.dumps({"case": case, "impl": "torch-flex", "N": n, "error": str(e)[:300]}), flush=True)
        del q, k, v
        torch.cuda.empty_cache()

    return 0


if __name__ == "__main__":
    sys.exit(main())
