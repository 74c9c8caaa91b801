"""NumPy or CuPy: which array module an array lives in, moving arrays between devices, seeding.

Every op asks ``xp = get_array_module(a)`` and then writes ``xp.matmul``, ``xp.zeros``, ...,
so one code path serves both devices. CuPy is imported only when a GPU array is asked for:
a CPU-only machine never needs it installed.

Devices are named ``"cpu"`` (NumPy) and ``"gpu"`` (CuPy, the current CUDA device).
"""
import ctypes
import os
import platform
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

DEVICES = ("cpu", "gpu")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float32)

_cupy = None


def _import_cupy():
    """Import CuPy on first use, with an error that says how to get it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'gpu' needs CuPy and a CUDA GPU: pip install 'minires[gpu]' "
                f"(importing cupy failed: {e})") from None
        _cupy = cupy
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = _import_cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def is_gpu_array(a):
    # Checked by module name so that CPU code never imports CuPy.
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(a):
    """``cupy`` for a CuPy array, else ``numpy``."""
    return _import_cupy() if is_gpu_array(a) else np


def device_of(a):
    return "gpu" if is_gpu_array(a) else "cpu"


def check_device(device):
    """Return the canonical device name, or raise naming the accepted ones."""
    if device == "cuda":
        device = "gpu"
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def to_device(a, device):
    """The array ``a`` on ``device`` (the same object when it is already there)."""
    device = check_device(device)
    if device_of(a) == device:
        return a
    if device == "gpu":
        return _import_cupy().asarray(a)
    return a.get()


def as_numpy(a):
    """A NumPy array holding the values of ``a`` (copied from the GPU when needed)."""
    return a.get() if is_gpu_array(a) else np.asarray(a)


def scatter_add(a, index, values):
    """``a[index] += values`` with repeated indices accumulated (``np.add.at``), in place."""
    if is_gpu_array(a):
        import cupyx
        cupyx.scatter_add(a, index, values)
    else:
        np.add.at(a, index, values)


def check_float_dtype(dtype, what="dtype"):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{what} must be float32 or float64, got {dtype}")
    return dtype


# One generator for everything random in minires (weight init, shuffling, augmentation) unless a
# caller passes its own. It starts from a fixed seed, so a fresh process gives the same numbers.
_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed minires's global random generator; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_rng():
    """The global generator that :func:`manual_seed` reseeds."""
    return _generator


# -- CPU threads ------------------------------------------------------------------------------------
# NumPy runs a copy or an elementwise op on one core, while BLAS runs each GEMM on all of them. A
# convolution over a whole batch alternates the two (an im2col copy, a GEMM, another copy, ...),
# and each of those passes streams kh*kw times an activation through main memory. minires instead
# cuts the batch into chunks of a few images whose columns stay in cache, and runs whole chunks
# (copy + GEMM) on a pool of threads, each calling a one-thread BLAS: NumPy releases the GIL in
# both, the cores never wait on each other between a copy and a GEMM, and the columns are read
# back from cache instead of memory. This is ``map_chunks``; the convolution, batch norm and ReLU
# use it.
_pool = None
_local = threading.local()  # .busy: this thread is running chunks already
_threads = None
_blas = None  # threadpoolctl's handle on the BLAS libraries NumPy loaded; False if there is none


def num_threads():
    """Threads minires uses on the CPU: $MINIRES_NUM_THREADS, else the cores this process may use (at most 8)."""
    global _threads
    if _threads is None:
        env = os.environ.get("MINIRES_NUM_THREADS")
        if env:
            _threads = max(1, int(env))
        elif hasattr(os, "sched_getaffinity"):
            _threads = max(1, min(8, len(os.sched_getaffinity(0))))
        else:  # pragma: no cover - not Linux
            _threads = max(1, min(8, os.cpu_count() or 1))
    return _threads


def _forget_pool():
    global _pool
    _pool = None  # a forked child has none of the parent's threads: start a new pool when needed


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def set_num_threads(n):
    """Use ``n`` threads for CPU work from now on (1 runs everything in the calling thread)."""
    global _threads
    _threads = max(1, int(n))


def _blas_libraries():
    """The BLAS libraries whose thread count can be set at run time (threadpoolctl), or None."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas") or False
        except Exception:  # pragma: no cover - threadpoolctl missing or unable to inspect the process
            _blas = False
    return _blas or None


def chunks(n, size):
    """Consecutive ``(lo, hi)`` slices of range(n), each at most ``size`` long."""
    size = max(1, int(size))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def map_chunks(n, size, body):
    """``[body(lo, hi) for (lo, hi) in chunks(n, size)]``, the chunks spread over the CPU threads.

    While they run, BLAS is held to one thread (each worker calls it on its own chunk). The
    chunking depends only on ``n`` and ``size``, never on the thread count, and no two chunks
    share an output, so the results are bit-identical whatever the number of threads. One chunk,
    one thread, or a BLAS whose threads cannot be set: the chunks run in the calling thread.
    """
    global _pool
    spans = chunks(n, size)
    threads = min(num_threads(), len(spans))
    # Nested inside another map_chunks, run in place: waiting on the pool from one of its own
    # threads could wait forever.
    blas = _blas_libraries() if len(spans) > 1 and not getattr(_local, "busy", False) else None
    if blas is None:
        return [body(lo, hi) for lo, hi in spans]
    results = [None] * len(spans)
    todo = iter(range(len(spans)))  # shared: next() on it is atomic under the GIL

    def work():
        _local.busy = True
        try:
            for k in todo:
                results[k] = body(*spans[k])
        finally:
            _local.busy = False

    with blas.limit(limits=1):
        if threads <= 1:
            work()
            return results
        if _pool is None or _pool._max_workers < threads - 1:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="minires")
        helpers = [_pool.submit(work) for _ in range(threads - 1)]
        try:
            work()  # the calling thread takes chunks too
        finally:
            for f in helpers:
                f.result()  # waits for every helper, and re-raises the first error
    return results


# -- CPU memory -------------------------------------------------------------------------------------
# A training step allocates its activations and gradients afresh: about 300 MB of arrays per
# ResNet-20 step at batch 128. glibc gives freed blocks above ~128 KiB back to the OS, so every new
# array starts as untouched pages and its first write takes one page fault per 4 KiB: ~15,000 per
# step, a few microseconds each in a virtual machine, about a tenth of the step. Asked to keep
# freed memory for reuse instead, glibc serves the next step from the same pages. The price: the
# process holds on to its peak memory until it exits, as a training run does anyway.
# MINIRES_KEEP_FREED_MEMORY=0 leaves the allocator alone.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse (arrays up to 32 MiB); True if it agreed.

    Called when minires is imported. No-op (False) outside glibc/Linux or when
    $MINIRES_KEEP_FREED_MEMORY is 0.
    """
    if os.environ.get("MINIRES_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        # 32 MiB is the largest mmap threshold glibc accepts; bigger arrays are still mapped.
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        return False


KEEPS_FREED_MEMORY = keep_freed_memory()
