#!/usr/bin/env python3
"""numpy (OpenBLAS) peer for bench/matmul.bench.ts, driven over stdin so the bench can interleave it with
our kernel: each input line "M N K budget_ms" times float32 A[M,K] @ B[K,N] (arrays kept per shape) for about
budget_ms of wall clock and prints one JSON line {"ms": <mean wall ms per call>, "cpu_ms": <mean process CPU ms
per call>, "calls": n}. The first line
printed is {"numpy": version, "blas": <config summary>}. Usage: python3 bench/peers/matmul.py --serve
"""
import json
import sys
import time

import numpy as np


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        b = cfg.get("Build Dependencies", {}).get("blas", {})
        return f'{b.get("name", "?")} {b.get("version", "")}'.strip()
    except Exception:  # older numpy
        return "unknown"


def openblas_core():
    """The kernel family OpenBLAS picked at load (CPUID, or OPENBLAS_CORETYPE), e.g. Haswell, SkylakeX."""
    import ctypes
    import glob
    import os
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return None


def main():
    core = openblas_core()
    blas = blas_name() + (f", {core} kernels" if core else "")
    print(json.dumps({"numpy": np.__version__, "blas": blas}), flush=True)
    arrays = {}
    rng = np.random.default_rng(1)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 4:
            continue
        m, n, k, budget = int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
        if (m, n, k) not in arrays:
            arrays[(m, n, k)] = (rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32),
                                 np.empty((m, n), dtype=np.float32))
        a, b, c = arrays[(m, n, k)]
        np.matmul(a, b, out=c)
        calls = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        while True:
            np.matmul(a, b, out=c)
            calls += 1
            el = time.perf_counter() - t0
            if el * 1e3 >= budget:
                break
        cpu = time.process_time() - c0
        print(json.dumps({"ms": el * 1e3 / calls, "cpu_ms": cpu * 1e3 / calls, "calls": calls}), flush=True)


if __name__ == "__main__":
    main()
