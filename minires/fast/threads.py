"""CPU threads: a pool that runs chunks of work side by side, each with a one-thread BLAS.

NumPy runs a copy or an elementwise op on one core, while BLAS runs each GEMM on all of them. A
convolution over a whole batch alternates the two (an im2col copy, a GEMM, another copy, ...),
and each of those passes streams kh*kw times an activation through main memory. minires instead
cuts the batch into chunks of a few images whose columns stay in cache, and runs whole chunks
(copy + GEMM) on a pool of threads, each calling a one-thread BLAS: NumPy releases the GIL in
both, the cores never wait on each other between a copy and a GEMM, and the columns are read
back from cache instead of memory. This is :func:`map_chunks`; the fast convolution, batch norm
and ReLU use it.

BLAS is held to one thread with threadpoolctl while the chunks run, and given back its own
setting afterwards; only a GEMM over one image too large for a chunk runs on BLAS's threads.
Where threadpoolctl sees no BLAS (Apple's Accelerate, the reference netlib BLAS), the chunks
still run on the pool, and BLAS keeps whatever thread count it has (said once, on stderr).
Threads: the ``num_threads`` knob (``config.py``), by default $MINIRES_NUM_THREADS, else the
cores this process may use (at most 8); :func:`set_num_threads` sets it for good.
"""
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from .config import configure, knobs

_pool = None
_pool_size = 0
_local = threading.local()  # .busy: this thread is running chunks already
_default_threads = None
_blas = None  # threadpoolctl's handle on the BLAS libraries NumPy loaded; False if there is none


def num_threads():
    """Threads minires uses on the CPU: the ``num_threads`` knob, else $MINIRES_NUM_THREADS, else
    the cores this process may use (at most 8)."""
    global _default_threads
    if knobs.num_threads is not None:
        return knobs.num_threads
    if _default_threads is None:
        env = os.environ.get("MINIRES_NUM_THREADS")
        if env:
            _default_threads = max(1, int(env))
        elif hasattr(os, "sched_getaffinity"):
            _default_threads = max(1, min(8, len(os.sched_getaffinity(0))))
        else:  # pragma: no cover - not Linux
            _default_threads = max(1, min(8, os.cpu_count() or 1))
    return _default_threads


def set_num_threads(n):
    """Use ``n`` threads for CPU work from now on (1 runs everything in the calling thread).

    For one block of code: ``with minires.fast.using(num_threads=n):``."""
    configure(num_threads=max(1, int(n)))


def _forget_pool():
    global _pool, _pool_size
    # A forked child has none of the parent's threads: start a new pool when needed.
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def blas_libraries():
    """The BLAS libraries whose thread count can be set at run time (threadpoolctl), or None."""
    global _blas
    if _blas is None:
        why = "threadpoolctl finds no BLAS library in this process (Accelerate? netlib?)"
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas") or False
        except Exception as e:  # pragma: no cover - threadpoolctl missing or unable to inspect
            _blas, why = False, f"threadpoolctl cannot inspect this process ({e})"
        if _blas is False:
            print(f"minires: {why}: its thread count cannot be held to 1 inside minires's "
                  "threads; set it to 1 yourself if the cores are oversubscribed", file=sys.stderr)
    return _blas or None


def chunks(n, size):
    """Consecutive ``(lo, hi)`` slices of range(n), each at most ``size`` long."""
    size = max(1, int(size))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def sum_in_chunk_order(parts, total):
    """``total += part`` for each part in chunk order: the same sum on any number of threads."""
    for part in parts:
        total += part
    return total


def map_chunks(n, size, body):
    """``[body(lo, hi) for (lo, hi) in chunks(n, size)]``, the chunks spread over the CPU threads.

    While they run, BLAS is held to one thread (each worker calls it on its own chunk). The
    chunking depends only on ``n`` and ``size``, never on the thread count, and no two chunks
    share an output, so the results are bit-identical whatever the number of threads. One chunk
    or one thread: the chunks run in the calling thread; a lone chunk still gets one BLAS
    thread, unless it is one item over the size budget (``size`` < 1: one large image), whose
    GEMM is worth BLAS's own threads.
    """
    global _pool, _pool_size
    spans = chunks(n, size)
    # Nested inside another map_chunks, run in place: waiting on the pool from one of its own
    # threads could wait forever. A small lone chunk (a whole small batch) also gets one BLAS
    # thread: woken for a small GEMM, OpenBLAS's threads spin for a while after it, on the cores
    # that minires's own threads need next (measured: a ResNet-20 step at batch 32 took 1.4x as
    # long that way).
    big_lone_chunk = len(spans) == 1 and int(size) < 1
    if not spans or big_lone_chunk or getattr(_local, "busy", False):
        return [body(lo, hi) for lo, hi in spans]
    blas = blas_libraries()
    threads = min(num_threads(), len(spans))
    results = [None] * len(spans)
    todo = iter(range(len(spans)))  # shared: next() on it is atomic under the GIL

    def work():
        _local.busy = True
        try:
            for k in todo:
                results[k] = body(*spans[k])
        finally:
            _local.busy = False

    with blas.limit(limits=1) if blas is not None else contextlib.nullcontext():
        if threads <= 1:
            work()
            return results
        if _pool is None or _pool_size < threads - 1:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="minires")
            _pool_size = threads - 1
        helpers = [_pool.submit(work) for _ in range(threads - 1)]
        try:
            work()  # the calling thread takes chunks too
        finally:
            for f in helpers:
                f.result()  # waits for every helper, and re-raises the first error
    return results
