"""CPU threads: a pool that runs chunks of work side by side, each with a one-thread BLAS.

NumPy runs a copy or an elementwise op on one core, while BLAS runs each GEMM on all of them. A
convolution over a whole batch alternates the two (an im2col copy, a GEMM, another copy, ...),
and each of those passes streams kh*kw times an activation through main memory. minires instead
cuts the batch into chunks of a few images whose columns stay in cache, and runs whole chunks
(copy + GEMM) on a pool of threads, each calling a one-thread BLAS: NumPy releases the GIL in
both, the cores never wait on each other between a copy and a GEMM, and the columns are read
back from cache instead of memory. This is :func:`map_chunks`; the fast convolution, batch norm
and ReLU use it.

BLAS is held to one thread (through threadpoolctl's handles on the libraries) while the chunks
run, and given back its own setting afterwards; only a GEMM over one image too large for a chunk
runs on BLAS's threads. BLAS's thread count is one setting for the whole process, and several
Python threads may run chunks at once: the first of them to enter holds BLAS to one thread, and
the last to leave gives it back (:func:`one_blas_thread`, a count under a lock). Work on the GPU
(CuPy arrays) runs in the calling thread and leaves BLAS alone. Where threadpoolctl sees no BLAS
(Apple's Accelerate, the reference netlib BLAS), the chunks still run on the pool, and BLAS keeps
whatever thread count it has (said once, on stderr).

Threads: the ``num_threads`` knob (``config.py``), by default $MINIRES_NUM_THREADS, else the
cores this process may use (at most 8); :func:`set_num_threads` sets it for good. A value of
MINIRES_NUM_THREADS that is not a positive whole number (``abc``, ``2.5``, ``0``, ``-1``) is said
in one line on stderr and the default is used instead: a library does not stop a program over
its environment. Surrounding spaces do not matter.
"""
import contextlib
import numbers
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import backend
from .config import configure, knobs

_pool = None
_pool_size = 0
_local = threading.local()  # .busy: this thread is running chunks already
_default_threads = None
_blas = None  # threadpoolctl's handle on the BLAS libraries NumPy loaded; False if there is none
_limit_lock = threading.Lock()  # guards the two below
_limit_users = 0  # threads inside one_blas_thread() now
_saved_threads = None  # [(library, its thread count)]: found by the first in, restored by the last


def cores():
    """The cores this process may use, at most 8: the default thread count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, min(8, len(os.sched_getaffinity(0))))
    return max(1, min(8, os.cpu_count() or 1))  # pragma: no cover - not Linux


def threads_from_environment(value):
    """The thread count MINIRES_NUM_THREADS=``value`` asks for, or None (unset, empty or refused).

    A positive whole number, surrounding spaces allowed; anything else (``abc``, ``2.5``, ``0``,
    ``-1``) is said in one line on stderr and refused, so that the default applies.
    """
    text = (value or "").strip()
    if not text:
        return None
    n = int(text) if text.isdecimal() else 0
    if n < 1:
        print(f"minires: MINIRES_NUM_THREADS must be a positive whole number of threads, got "
              f"{value!r}: using {cores()} (the cores, at most 8)", file=sys.stderr)
        return None
    return n


def num_threads():
    """Threads minires uses on the CPU: the ``num_threads`` knob, else $MINIRES_NUM_THREADS, else
    the cores this process may use (at most 8)."""
    global _default_threads
    if knobs.num_threads is not None:
        return knobs.num_threads
    if _default_threads is None:  # read once: a bad value is said once
        _default_threads = threads_from_environment(os.environ.get("MINIRES_NUM_THREADS"))
        _default_threads = _default_threads or cores()
    return _default_threads


def set_num_threads(n):
    """Use ``n`` threads for CPU work from now on (1 runs everything in the calling thread; None
    goes back to the default). Anything but a positive int or None is refused (ValueError).

    For one block of code: ``with minires.fast.using(num_threads=n):``."""
    if n is not None and not (isinstance(n, numbers.Integral) and not isinstance(n, bool)
                              and n >= 1):
        raise ValueError(f"minires.fast.set_num_threads: n must be a positive int (or None for "
                         f"the default), got {n!r}")
    configure(num_threads=None if n is None else int(n))


def _forget_pool():
    global _pool, _pool_size, _limit_lock, _limit_users, _saved_threads
    # A forked child has none of the parent's threads: start a new pool when needed. Nor is any
    # of them inside one_blas_thread() in the child (the count starts again from 0), or holding
    # its lock (a new one).
    _pool, _pool_size = None, 0
    _limit_lock, _limit_users, _saved_threads = threading.Lock(), 0, None


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


def _set_threads(lib, n):
    # threadpoolctl (3.8) lets only one Python thread at a time change OpenBLAS's count (the
    # first to set it, until it gives control back) and silently ignores the others; the count
    # in one_blas_thread is what keeps minires's own threads from fighting, so it calls the
    # library's setter itself where threadpoolctl has one, and its public method elsewhere.
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(n)


@contextlib.contextmanager
def one_blas_thread():
    """BLAS held to one thread inside this block, for the whole process, then given back.

    The thread count is one setting of the process, entered and left from several Python
    threads at once (four threads training four nets, say). Each taking threadpoolctl's limit
    for itself would restore what it saw on entry, which may be another thread's limit of 1.
    So the first thread in sets the limit and the last one out restores the setting found by
    the first: a count under a lock. Nothing happens where threadpoolctl sees no BLAS.
    """
    global _limit_users, _saved_threads
    blas = blas_libraries()
    if blas is None:
        yield
        return
    with _limit_lock:
        if _limit_users == 0:
            _saved_threads = [(lib, lib.get_num_threads()) for lib in blas.lib_controllers]
            for lib, n in _saved_threads:
                if n is not None:
                    _set_threads(lib, 1)
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            if _limit_users > 0:  # 0: entered before a fork, left in the child (see _forget_pool)
                _limit_users -= 1
                if _limit_users == 0:
                    for lib, n in _saved_threads:
                        if n is not None:
                            _set_threads(lib, n)
                    _saved_threads = None


def chunks(n, size):
    """Consecutive ``(lo, hi)`` slices of range(n), each at most ``size`` long."""
    size = max(1, int(size))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def sum_in_chunk_order(parts, total):
    """``total += part`` for each part in chunk order: the same sum on any number of threads."""
    for part in parts:
        total += part
    return total


def map_chunks(n, size, body, like=None):
    """``[body(lo, hi) for (lo, hi) in chunks(n, size)]``, the chunks spread over the CPU threads.

    While they run, BLAS is held to one thread (each worker calls it on its own chunk). The
    chunking depends only on ``n`` and ``size``, never on the thread count, and no two chunks
    share an output, so the results are bit-identical whatever the number of threads. One chunk
    or one thread: the chunks run in the calling thread; a lone chunk still gets one BLAS
    thread, unless it is one item over the size budget (``size`` < 1: one large image), whose
    GEMM is worth BLAS's own threads. ``like``: an array of the work; on the GPU (a CuPy array)
    the chunks run in the calling thread, and the CPU's BLAS is left alone.
    """
    global _pool, _pool_size
    spans = chunks(n, size)
    # Nested inside another map_chunks, run in place: waiting on the pool from one of its own
    # threads could wait forever. A small lone chunk (a whole small batch) also gets one BLAS
    # thread: woken for a small GEMM, OpenBLAS's threads spin for a while after it, on the cores
    # that minires's own threads need next (measured: a ResNet-20 step at batch 32 took 1.4x as
    # long that way).
    big_lone_chunk = len(spans) == 1 and int(size) < 1
    on_gpu = like is not None and backend.is_gpu_array(like)
    if not spans or big_lone_chunk or on_gpu or getattr(_local, "busy", False):
        return [body(lo, hi) for lo, hi in spans]
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

    with one_blas_thread():
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
            _wait_for(helpers)
    return results


def _wait_for(helpers):
    """Wait until every helper is done, then re-raise the first error one of them raised.

    A Ctrl-C (or SIGTERM, raised as one) that reaches the calling thread meanwhile is held until
    then: the helpers finish their chunks in a moment, and one left running would still be inside
    BLAS when ``one_blas_thread`` gives BLAS its threads back, which can hang OpenBLAS."""
    interrupt = error = None
    for f in helpers:
        while True:
            try:
                f.result()
            except KeyboardInterrupt as e:  # raised in this thread, by a signal: keep waiting
                interrupt = interrupt or e
                continue
            except Exception as e:  # the helper's own error
                error = error or e
            break
    if interrupt is not None:
        raise interrupt
    if error is not None:
        raise error
