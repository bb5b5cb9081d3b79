#!/usr/bin/env python3
"""Summarise scripts/bench-cpu-goals.sh runs: one row per goal comparison, one column per run configuration
(best, avx2, avx2-peers-avx2); each cell is the median over the given run directories of the per-run medians,
followed by the per-run values and ours/peer ms of the first run.
Usage: scripts/goals-table.py RUN_DIR [RUN_DIR ...]"""
import glob
import json
import os
import re
import statistics
import sys

RUNS = ["best", "avx2", "avx2-peers-avx2"]


def load(run_dir, run):
    out = {}
    for f in glob.glob(os.path.join(run_dir, f"cpu-*-{run}-1thread.json")):
        if run != "avx2-peers-avx2" and f.endswith("-avx2-peers-avx2-1thread.json"):
            continue  # cpu-matmul-avx2-peers-avx2-… is not run "avx2" (suite names may hold hyphens)
        for r in json.load(open(f))["results"]:
            if r.get("speedup") is not None and ("peer" in r or "decode" in r["case"]):
                out[r["case"]] = r
            kept = re.search(r"= (\d+)% of our matmul", r.get("note") or "")
            if kept:  # attention: kept-pair GFLOP/s as a fraction of our matmul's, same rounds
                out[r["case"] + ": kept-pair GFLOP/s / our matmul's"] = {"speedup": int(kept.group(1)) / 100}
    return out


def main(dirs):
    data = {run: [load(d, run) for d in dirs] for run in RUNS}
    cases = []
    for run in RUNS:
        for per in data[run]:
            for c in per:
                if c not in cases:
                    cases.append(c)
    print("| case | " + " | ".join(RUNS) + " |")
    print("| --- |" + " --- |" * len(RUNS))
    for c in cases:
        cells = []
        for run in RUNS:
            vals = [per[c]["speedup"] for per in data[run] if c in per]
            if not vals:
                cells.append("—")
                continue
            first = next(per[c] for per in data[run] if c in per)
            ms = f"; {first['ms']:.3g} vs {first['peerMs']:.3g} ms" if first.get("peerMs") else ""
            cells.append(f"{statistics.median(vals):.2f} ({', '.join(f'{v:.2f}' for v in vals)}{ms})")
        print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
