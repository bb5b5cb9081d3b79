#!/usr/bin/env python3
"""Folds the logs of scripts/gpu-sweep.sh run (one folder) into <folder>/sweep.json and prints a summary.

INT4 rows get: pct_copy (GB/s against the device-to-device copy of the nearest size, measured in the same
process), vs_base (default-path time / variant time, same shape and M, same data) and vs_torch (torch fp16
matmul time from bench/peers/int4.py in the same call / variant time). MoE rows: default vs
LLMK_MOE_TOPK=warp per bench case, and the torch peer. Test logs: PASS/FAIL counts and the failures.
Usage: python3 scripts/gpu-sweep-json.py OUT_DIR
"""
import json
import os
import re
import sys


def lines(out, name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    with open(p, errors="replace") as f:
        return f.read().splitlines()


def json_lines(rows, prefix=""):
    got = []
    for ln in rows:
        if prefix:
            if not ln.startswith(prefix):
                continue
            ln = ln[len(prefix):]
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                got.append(json.loads(ln))
            except ValueError:
                pass
    return got


def test_summary(rows):
    fails = [ln for ln in rows if ln.startswith("FAIL ")]
    end = [ln for ln in rows if re.match(r"^(OK|FAILED):", ln) or "ERROR SUMMARY" in ln]
    return {"pass": sum(ln.startswith("PASS ") for ln in rows), "fail": len(fails),
            "end": end[-1] if end else "(no end line: killed or crashed)", "failures": fails[:30]}


def main(out):
    sweep = json_lines(lines(out, "int4-sweep.log"), "SWEEP ")
    copies = sorted((r for r in sweep if r["family"] == "copy"), key=lambda r: r["bytes"])
    int4 = [r for r in sweep if r["family"] == "int4"]
    peer_int4 = {r["case"]: r for r in json_lines(lines(out, "peer-int4.log")) if r.get("suite") == "int4"}
    base = {(r["N"], r["K"], r["M"]): r["us"] for r in int4 if r["variant"] == "base"}
    for r in int4:
        if copies:
            c = min(copies, key=lambda c: abs(c["bytes"] - r["bytes"]))
            r["pct_copy"] = round(100.0 * r["GBps"] / c["GBps"], 1)
        b = base.get((r["N"], r["K"], r["M"]))
        if b:
            r["vs_base"] = round(b / r["us"], 3)
        p = peer_int4.get(f'{r["N"]}x{r["K"]} M={r["M"]}')
        if p:
            r["torch_us"] = round(p["ms"] * 1e3, 3)
            r["vs_torch"] = round(p["ms"] * 1e3 / r["us"], 3)

    moe_base = {r["case"]: r for r in json_lines(lines(out, "moe-base.log")) if "case" in r}
    moe_warp = {r["case"]: r for r in json_lines(lines(out, "moe-warp.log")) if "case" in r}
    peer_moe = {r["case"]: r for r in json_lines(lines(out, "peer-moe.log")) if "case" in r}
    moe = []
    for case, b in moe_base.items():
        row = {"case": case, "base_us": round(b["ms"] * 1e3, 3), "base_path": b.get("path"), "base_gbps": b.get("gbps")}
        w = moe_warp.get(case)
        if w:
            row.update(warp_us=round(w["ms"] * 1e3, 3), warp_path=w.get("path"), warp_gbps=w.get("gbps"),
                       warp_vs_base=round(b["ms"] / w["ms"], 3))
        p = peer_moe.get(case.replace("moe.topk ", ""))
        if p:
            row["torch_us"] = round(p["ms"] * 1e3, 3)
        moe.append(row)

    doc = {
        "what": "scripts/gpu-sweep.sh run: candidate kernels of issue 17 vs the defaults, same process, same data",
        "toolkit": " ".join(lines(out, "toolkit.txt")),
        "clocks_csv": lines(out, "clocks.csv"),
        "steps": lines(out, "steps.txt"),
        "copy": copies,
        "int4": int4,
        "moe_topk": moe,
        "tests": {name: test_summary(lines(out, name + ".log"))
                  for name in ("int4-sweep", "native-int4", "moe-base", "moe-warp", "sanitize-int4")
                  if os.path.exists(os.path.join(out, name + ".log"))},
    }
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(doc, f, indent=1)

    print("steps:", *doc["steps"], sep="\n  ")
    print("clocks:", *doc["clocks_csv"], sep="\n  ")
    for c in copies:
        print(f"copy {c['bytes'] / 2**20:.0f} MiB: {c['GBps']:.0f} GB/s")
    for name, t in doc["tests"].items():
        print(f"{name}: {t['pass']} pass, {t['fail']} fail; {t['end']}")
        for ln in t["failures"][:8]:
            print("   ", ln[:160])
    print("int4 (best variant per case; us, % of copy, vs default, vs torch fp16):")
    cases = sorted({(r["N"], r["K"], r["M"]) for r in int4})
    for key in cases:
        rows = [r for r in int4 if (r["N"], r["K"], r["M"]) == key and r["ok"]]
        if not rows:
            print(f"  {key}: no correct variant")
            continue
        best = min(rows, key=lambda r: r["us"])
        print(f"  N={key[0]} K={key[1]} M={key[2]}: base {base.get(key, float('nan')):.1f}us  best [{best['variant']}] "
              f"{best['us']:.1f}us {best.get('pct_copy', '?')}% x{best.get('vs_base', '?')} torch x{best.get('vs_torch', '?')}")
    for row in moe:
        if "warp_us" in row:
            print(f"  {row['case']}: base {row['base_us']}us [{row['base_path']}] warp {row['warp_us']}us "
                  f"[{row['warp_path']}] x{row['warp_vs_base']}")
    bad = [r for r in int4 if not r["ok"]]
    print(f"int4 rows: {len(int4)}, incorrect: {len(bad)}", *[f"  {r['variant']} {r['N']}x{r['K']} M={r['M']} rel_l2={r['rel_l2']}" for r in bad[:10]], sep="\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-sweep-out")
