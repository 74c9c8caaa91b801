"""CPU memory: reused column buffers (workspaces), and glibc asked to keep freed memory.

Workspaces. im2col columns are the largest arrays in a CNN step (kh*kw times an activation) and
live only for the duration of one op. Allocating them fresh every time costs page faults on
every touch; a few grow-only buffers per thread, device and dtype, reused by every convolution,
remove that cost. On the CPU a convolution works on chunks of a few images (``chunked_conv.py``),
so each buffer stays small.

The allocator. A training step allocates its activations and gradients afresh: about 300 MB of
arrays per ResNet-20 step at batch 128. glibc gives freed blocks above ~128 KiB back to the OS,
so every new array starts as untouched pages and its first write takes one page fault per 4 KiB:
~15,000 per step, a few microseconds each in a virtual machine, about a tenth of the step. Asked
to keep freed memory for reuse instead, glibc serves the next step from the same pages. The
price: the process holds on to its peak memory until it exits, as a training run does anyway.
This changes the whole process's allocator, so importing minires leaves it alone: a run asks for
it when it starts (:func:`tune_allocator`: ``python -m minires`` and ``python -m benchmarks`` do),
and MINIRES_KEEP_FREED_MEMORY=0 says no.
"""
import ctypes
import math
import os
import platform
import sys
import threading

import numpy as np

from .. import backend

_workspaces = {}


def workspace(shape, dtype, like, name="cols"):
    """An uninitialised array of ``shape``, reused: the calling thread's buffer ``name`` on
    ``like``'s device.

    The buffer grows to the largest size asked for and is never shrunk; the array returned is
    valid until the same thread asks for the same ``name`` again.
    """
    xp = backend.get_array_module(like)
    key = (threading.get_ident(), name, xp.__name__, np.dtype(dtype))
    n = math.prod(shape)
    buf = _workspaces.get(key)
    if buf is None or buf.size < n:
        _workspaces[key] = buf = None  # free the old buffer before allocating the new one
        _workspaces[key] = buf = xp.empty(n, dtype=dtype)
    return buf[:n].reshape(shape)


def release_workspace():
    """Free every thread's column buffers (they are re-created on the next convolution)."""
    _workspaces.clear()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 1 << 30  # 32 MiB: the largest glibc takes

KEEPS_FREED_MEMORY = False
"""True once :func:`tune_allocator` has asked glibc to keep freed memory, and glibc agreed."""


def tune_allocator():
    """Ask glibc to keep freed memory for reuse (arrays up to 32 MiB), in this process and in the
    processes it starts (through glibc's MALLOC_*_ variables); True if it agreed.

    Call it where a run starts, not in a library: it changes the whole process. No-op (False)
    outside glibc/Linux or when $MINIRES_KEEP_FREED_MEMORY is 0.
    """
    global KEEPS_FREED_MEMORY
    if os.environ.get("MINIRES_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        agreed = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                      and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        return False
    if agreed:  # spawned workers (the degradation run's) start with the same setting
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(_MMAP_THRESHOLD))
        os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(_TRIM_THRESHOLD))
    KEEPS_FREED_MEMORY = KEEPS_FREED_MEMORY or agreed
    return agreed
