"""What machine produced a figure: CPU model and instruction sets, cores, BLAS kernel, versions.

Timings and even trained results differ between CPUs (another BLAS kernel sums in another order,
and training amplifies the last bits), so every benchmark table and experiment record carries
``describe()`` next to its numbers, and figures from different machines are never compared as if
they were alike.
"""

import os
import platform
import sys

import numpy as np

# Instruction-set extensions that decide which BLAS kernels and vector widths a CPU gets.
_ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "asimd",
    "sve",
)


def _cpuinfo():
    """(model name, sorted ISA flags) from /proc/cpuinfo; the platform's names elsewhere."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), [
        f for f in _ISA_FLAGS if f in flags
    ]


def blas():
    """The BLAS NumPy runs: library, version, kernel (OpenBLAS's 'architecture') and threads."""
    try:
        from threadpoolctl import threadpool_info

        libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except Exception:  # pragma: no cover - threadpoolctl missing or unable to inspect the process
        libs = []
    if not libs:
        return {"library": "unknown", "version": None, "kernel": None, "threads": None}
    lib = libs[0]
    return {
        "library": lib.get("internal_api"),
        "version": lib.get("version"),
        "kernel": lib.get("architecture"),
        "threads": lib.get("num_threads"),
    }


def describe():
    """A JSON-able dict: cpu, isa, cores, blas, python, numpy, platform, and the thread settings."""
    model, isa = _cpuinfo()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = (
        "MINIRES_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_CORETYPE",
    )
    return {
        "cpu": model,
        "isa": isa,
        "cores": cores,
        "blas": blas(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": f"{sys.platform} {platform.machine()}",
        "env": {k: os.environ[k] for k in env if k in os.environ},
    }


def one_line(info=None):
    """``describe()`` as one line for a table's caption."""
    d = info or describe()
    b = d["blas"]
    kernel = f", {b['kernel']} kernel" if b.get("kernel") else ""
    return (
        f"{d['cpu']} ({', '.join(d['isa']) or 'no ISA flags read'}), {d['cores']} cores; "
        f"NumPy {d['numpy']} with {b['library']} {b['version'] or ''}{kernel}"
    ).replace("  ", " ")
