"""NumPy or CuPy: which array module an array lives in, moving arrays between devices, seeding.

Every op asks ``xp = get_array_module(a)`` and then writes ``xp.matmul``, ``xp.zeros``, ...,
so one code path serves both devices. CuPy is imported only when a GPU array is asked for:
a CPU-only machine never needs it installed.

Devices are named ``"cpu"`` (NumPy) and ``"gpu"`` (CuPy, the current CUDA device).
"""
import os
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


# -- CPU threads for memory-bound copies -----------------------------------------------------------
# NumPy runs a copy or an elementwise op on one core, while BLAS uses them all. The im2col copy and
# the col2im sum move as many bytes as a GEMM and are memory-bound: splitting them by channel over
# a few threads (NumPy releases the GIL while it copies) nearly halves their time on 2 cores.
# Each thread writes its own channels, so the result is bit-identical to a single-threaded run.
_pool = None
_MIN_PARALLEL_BYTES = 1 << 22


_threads = None


def num_threads():
    """Threads for CPU copies: $MINIRES_NUM_THREADS, else the cores this process may use (at most 8)."""
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


def set_num_threads(n):
    """Use ``n`` threads for CPU copies from now on (1 turns the threading off)."""
    global _threads
    _threads = max(1, int(n))


def parallel_for(n, body, nbytes):
    """Run ``body(lo, hi)`` over contiguous slices covering range(n), on several threads when
    the work (``nbytes`` of memory traffic) is large enough to pay for them."""
    global _pool
    threads = min(num_threads(), n)
    if threads <= 1 or nbytes < _MIN_PARALLEL_BYTES:
        body(0, n)
        return
    if _pool is None or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minires")
    bounds = np.linspace(0, n, threads + 1).astype(int)
    futures = [_pool.submit(body, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for f in futures:
        f.result()
