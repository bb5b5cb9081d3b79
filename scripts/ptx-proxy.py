#!/usr/bin/env python3
"""Static proxy to rank candidate kernels without a GPU (issue 17): for each kernel of the given CUDA
files, nvcc 13 -arch=sm_90 -Xptxas -v gives registers, spills and static shared memory, and the PTX it
keeps gives instruction counts of the hot loop (the innermost loop holding the most mma / redux / shfl).
INT4 kernels with one 16-row m-tile per warp get the hot loop's static instructions per KB of weights
(16 mma.m16n8k16 per KB; 8 for the lean kernel's swap-AB instances, one mma per 32-bit weight word). Static counts: branches taken once per group or per tail are counted every
time; read them as a ranking aid, never as timings.

Usage: python3 scripts/ptx-proxy.py [--out bench/results/ptx-proxy-<date>.json] [--filter REGEX] FILE.cu...
(default files: the INT4 and MoE top-k kernels, defaults and candidates).
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = ["native/src/cuda/int4.cu", "native/src/cuda/int4_lean.cu",
                 "native/src/cuda/moe_topk.cu", "native/src/cuda/moe_topk_warp.cu"]
# Kernels worth a row (demangled-name regex): the M <= 16 INT4 default tile, every lean instance, top-k.
DEFAULT_FILTER = r"int4_mma_kernel<__half, 16, 128, 1, 4, 4>|int4_lean_kernel<__half, __half|topk_(fused|warp)_kernel<__nv_bfloat16"
CLASSES = {
    "mma": r"^mma\.", "ldg": r"^ld\.global", "lds": r"^ld\.shared", "ldmatrix": r"^ldmatrix", "cp_async": r"^cp\.async\.(ca|cg)",
    "st_global": r"^st\.global", "bar": r"^bar\.|^barrier", "shfl": r"^shfl", "redux": r"^redux", "div_rem": r"^(div|rem)\.",
    "branch": r"^bra", "atom": r"^atom",
}
NVCC_FLAGS = ["-std=c++17", "-O3", "--expt-relaxed-constexpr", "-arch=sm_90", "-Xptxas", "-v"]


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out))


def short(name):
    name = re.sub(r"llmk::cuda::\(anonymous namespace\)::", "", name)
    return re.sub(r"\(.*\)$", "", name)


def compile_one(src, tmp):
    r = subprocess.run(["nvcc", *NVCC_FLAGS, "-c", src, "-o", os.path.join(tmp, "x.o"), "--keep", "--keep-dir", tmp],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"nvcc failed on {src}:\n{r.stderr[-3000:]}")
    stem = os.path.splitext(os.path.basename(src))[0]
    ptx = [f for f in os.listdir(tmp) if f.startswith(stem) and f.endswith(".ptx")]
    with open(os.path.join(tmp, ptx[0])) as f:
        return f.read(), r.stderr


def ptxas_info(log):
    info, cur = {}, None
    for ln in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", ln)
        if m:
            cur = info.setdefault(m.group(1), {})
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", ln)
        if m:
            cur["spill_stores"], cur["spill_loads"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"Used (\d+) registers", ln)
        if m:
            cur["registers"] = int(m.group(1))
            m2 = re.search(r"(\d+) bytes smem", ln)
            cur["smem_static"] = int(m2.group(1)) if m2 else 0
    return info


def entries(ptx):
    """{mangled name: [instruction or label lines]} for every .entry of a PTX module."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\S+)\(", ptx):
        start = ptx.index("{", m.end())
        depth, i = 0, start
        while True:
            c = ptx[i]
            depth += c == "{"
            depth -= c == "}"
            if depth == 0:
                break
            i += 1
        body = []
        for ln in ptx[start + 1:i].splitlines():
            ln = ln.split("//")[0].strip()
            if not ln or ln.startswith(".") or ln in ("{", "}"):
                continue
            body.append(ln)
        out[m.group(1)] = body
    return out


def is_label(ln):
    return ln.endswith(":") and not ln.startswith("@")


def op_of(ln):
    ln = re.sub(r"^@!?%\w+\s+", "", ln)
    return ln.split()[0] if ln.split() else ""


def counts(lines):
    c = {k: 0 for k in CLASSES}
    n = 0
    for ln in lines:
        if is_label(ln):
            continue
        n += 1
        op = op_of(ln)
        for k, rx in CLASSES.items():
            if re.match(rx, op):
                c[k] += 1
    c["instructions"] = n
    return c


def hot_loop(body):
    """Innermost backward-branch range holding the most mma (else redux, else shfl)."""
    labels = {ln[:-1]: i for i, ln in enumerate(body) if is_label(ln)}
    loops = []
    for i, ln in enumerate(body):
        m = re.search(r"\bbra(?:\.uni)?\s+(\S+);", ln)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            loops.append((labels[m.group(1)], i))
    if not loops:
        return None
    for key in ("mma", "redux", "shfl"):
        scored = [(counts(body[a:b + 1])[key], -(b - a), a, b) for a, b in loops]
        best = max(scored)
        if best[0] > 0:
            a, b = best[2], best[3]
            return counts(body[a:b + 1])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", default=DEFAULT_FILES)
    ap.add_argument("--filter", default=DEFAULT_FILTER)
    ap.add_argument("--out", default=f"bench/results/ptx-proxy-{datetime.date.today().isoformat()}.json")
    args = ap.parse_args()
    version = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    rows = []
    for src in args.files:
        with tempfile.TemporaryDirectory() as tmp:
            ptx, log = compile_one(src, tmp)
        info = ptxas_info(log)
        ents = entries(ptx)
        names = demangle(list(ents))
        for mangled, body in ents.items():
            name = short(names[mangled])
            if not re.search(args.filter, name):
                continue
            row = {"file": src, "kernel": name, **info.get(mangled, {}), "ptx_static": counts(body)}
            loop = hot_loop(body)
            if loop:
                row["hot_loop"] = loop
                if "int4" in name and loop["mma"]:
                    mma_per_kb = 8 if re.search(r"int4_lean_kernel<.*, true>$", name) else 16
                    row["hot_loop_per_KB"] = round(loop["instructions"] * mma_per_kb / loop["mma"], 1)
            rows.append(row)
    rows.sort(key=lambda r: (r["file"], r.get("hot_loop_per_KB", 1e9), r["kernel"]))
    doc = {"tool": "scripts/ptx-proxy.py", "date": datetime.date.today().isoformat(), "nvcc": version,
           "flags": " ".join(NVCC_FLAGS),
           "note": "static PTX counts of each kernel and of its hot loop (innermost loop with the most mma/redux/shfl); "
                   "INT4: hot-loop instructions per KB of weights = instructions * 16 / mma (one m16 tile per warp; "
                   "* 8 / mma for swap-AB, one mma per weight word). Top-k: compare the kernels' static totals. "
                   "Not timings: compiled, not run.",
           "kernels": rows}
    with open(os.path.join(ROOT, args.out), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{'kernel':<72} {'regs':>4} {'spill':>5} {'total':>6} {'loop':>5} {'mma':>4} {'shfl':>4} {'redux':>5} {'perKB':>6}")
    for r in rows:
        lp = r.get("hot_loop", {})
        print(f"{r['kernel'][:72]:<72} {r.get('registers', '?'):>4} {r.get('spill_stores', 0):>5} "
              f"{r['ptx_static']['instructions']:>6} {lp.get('instructions', '-'):>5} {lp.get('mma', '-'):>4} "
              f"{r['ptx_static']['shfl']:>4} {r['ptx_static']['redux']:>5} {r.get('hot_loop_per_KB', '-'):>6}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
