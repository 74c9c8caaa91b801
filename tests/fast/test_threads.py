"""How the fast path is made fast, CPU threads and memory (minires/fast/threads.py, memory.py):
map_chunks runs every chunk once, in order, with BLAS held to one thread where threadpoolctl can
hold it, and gives the same answer on any thread count; freed memory is reused once a run asks
for it, and importing minires does not ask."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import threadpoolctl

import minires as mr
from minires import fast
from minires import functional as F
from minires.fast import threads as fast_threads


@pytest.fixture
def threads(using):
    """Set minires's thread count for the rest of one test: threads(n)."""
    return lambda n: using(num_threads=n)


def test_chunks_cover_the_range_in_order():
    assert fast_threads.chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert fast_threads.chunks(4, 4) == [(0, 4)]
    assert fast_threads.chunks(4, 100) == [(0, 4)]
    # A size below one still makes progress:
    assert fast_threads.chunks(3, 0) == [(0, 1), (1, 2), (2, 3)]
    assert fast_threads.chunks(0, 5) == []


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_map_chunks_runs_each_chunk_once_and_returns_results_in_chunk_order(threads, n_threads):
    threads(n_threads)
    seen, lock = [], threading.Lock()

    def body(lo, hi):
        with lock:
            seen.append((lo, hi))
        return list(range(lo, hi))

    out = fast_threads.map_chunks(23, 4, body)
    assert out == [list(range(lo, hi)) for lo, hi in fast_threads.chunks(23, 4)]
    assert sorted(seen) == fast_threads.chunks(23, 4)


def test_map_chunks_of_nothing_is_an_empty_list():
    assert fast_threads.map_chunks(0, 4, lambda lo, hi: 1 / 0) == []


def test_map_chunks_re_raises_a_worker_error(threads):
    threads(2)

    def body(lo, hi):
        if lo == 8:
            raise ValueError("chunk 8 failed")
        return lo

    with pytest.raises(ValueError, match="chunk 8 failed"):
        fast_threads.map_chunks(20, 4, body)


def test_blas_is_held_to_one_thread_inside_and_restored_after(threads, controllable_blas):
    blas = controllable_blas
    threads(2)
    with blas.limit(limits=2):  # whatever the test process started with (conftest sets 1)
        before = [lib["num_threads"] for lib in blas.info()]
        inside = fast_threads.map_chunks(6, 2, lambda lo, hi: [lib["num_threads"]
                                                                for lib in blas.info()])
        after = [lib["num_threads"] for lib in blas.info()]
    assert all(t == [1] * len(before) for t in inside)
    assert after == before and before != [1] * len(before)


def test_a_lone_chunk_gets_one_blas_thread_unless_it_is_one_item_over_budget(threads,
                                                                              controllable_blas):
    """A whole small batch in one chunk: one BLAS thread, in the calling thread (woken for a small
    GEMM, BLAS's threads would spin on the cores minires needs next). One image larger than the
    chunk budget (size < 1): BLAS keeps its own threads for that one large GEMM."""
    blas = controllable_blas
    threads(2)
    caller = threading.get_ident()

    def probe(lo, hi):
        return [lib["num_threads"] for lib in blas.info()], threading.get_ident()

    with blas.limit(limits=2):
        (small_blas, small_thread), = fast_threads.map_chunks(5, 8, probe)
        (big_blas, big_thread), = fast_threads.map_chunks(1, 0, probe)
    assert small_blas == [1] * len(small_blas) and small_thread == caller
    assert big_blas == [2] * len(big_blas) and big_thread == caller


# -- where threadpoolctl sees no BLAS (Accelerate, netlib): simulated -----------------------------

@pytest.fixture
def no_visible_blas(monkeypatch):
    """As if threadpoolctl found no BLAS in this process: its select() finds nothing."""
    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "select",
                        lambda self, **kw: threadpoolctl.ThreadpoolController._from_controllers([]))
    monkeypatch.setattr(fast_threads, "_blas", None)  # look again


def test_without_a_visible_blas_the_chunks_still_run_on_the_threads(threads, no_visible_blas,
                                                                    capfd):
    threads(2)
    started = threading.Barrier(2, timeout=30)

    def body(lo, hi):
        if lo < 2:
            started.wait()  # the first two chunks run at the same time, or this times out
        return lo, threading.get_ident()

    out = fast_threads.map_chunks(10, 1, body)
    fast_threads.map_chunks(10, 1, lambda lo, hi: lo)
    assert [lo for lo, _ in out] == list(range(10))
    assert len({tid for _, tid in out}) == 2
    said = [line for line in capfd.readouterr().err.splitlines() if "minires:" in line]
    assert len(said) == 1 and "threadpoolctl finds no BLAS" in said[0]  # once, in one line


def test_without_a_visible_blas_a_step_gives_the_same_bits(using, no_visible_blas, rng):
    x = rng.standard_normal((6, 4, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    using(chunk_bytes=1 << 14, shifted_gemm_chunk_bytes=1 << 14)

    def step():
        xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
        y = F.relu(F.conv2d(F.conv2d(xt, wt, padding=1), wt, stride=2, padding=1))
        y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        return y.data, xt.grad, wt.grad

    results = []
    for n in (1, 3):
        with fast.using(num_threads=n):
            results.append(step())
    for one, three in zip(*results):
        np.testing.assert_array_equal(one, three)


def test_a_test_that_needs_a_controllable_blas_is_skipped_without_one(no_visible_blas, request,
                                                                      capfd):
    with pytest.raises(pytest.skip.Exception, match="threadpoolctl sees no BLAS"):
        request.getfixturevalue("controllable_blas")


# -- freed memory is kept for reuse, once a run asks ----------------------------------------------

_CHURN = """
import resource, subprocess, sys, numpy as np, minires
if sys.argv[1] == "tune, then a child that only imports":
    minires.fast.tune_allocator()
    sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2], "import only"]).returncode)
if sys.argv[1] == "tune":
    minires.fast.tune_allocator()
def step():  # like a training step: a few activations of 8 MB alive at once, then all freed
    alive = [np.ones(2_000_000, np.float32) for _ in range(6)]
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(minires.fast.memory.KEEPS_FREED_MEMORY, after - before)
"""


def _page_faults(how, **env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", _CHURN, how, _CHURN], env=env,
                         capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept == "True", int(faults)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's allocator is tuned on Linux only")


@linux_only
def test_reallocating_a_freed_array_touches_no_new_pages_once_the_run_asks():
    # 10 "steps" of 6 arrays of 8 MB = 2,048 pages each: left alone, glibc gives most of them back
    # to the OS and faults them in afresh (~30,000 faults here); kept, the same pages serve again.
    kept, faults = _page_faults("tune")
    assert kept and faults < 2048
    kept_off, faults_off = _page_faults("tune", MINIRES_KEEP_FREED_MEMORY="0")
    assert not kept_off and faults_off > 10 * 2048


@linux_only
def test_importing_minires_leaves_the_allocator_alone():
    kept, faults = _page_faults("import only")
    assert not kept and faults > 10 * 2048


_SPY = """
import ctypes
calls = []
class Spy(ctypes.CDLL):  # every library minires opens, and what it looks up in it
    def __getattr__(self, name):
        calls.append(name)
        return super().__getattr__(name)
ctypes.CDLL = Spy
import minires
from minires import functional as F, models
import numpy as np
models.resnet20()(minires.Tensor(np.zeros((2, 3, 8, 8), np.float32)))  # and runs a little
print("mallopt" in calls, minires.fast.memory.KEEPS_FREED_MEMORY)
"""


def test_importing_and_running_minires_never_calls_mallopt():
    out = subprocess.run([sys.executable, "-c", _SPY], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@linux_only
def test_the_processes_a_tuned_run_starts_keep_freed_memory_too():
    # A spawned worker (the degradation run's) starts with glibc's MALLOC_*_ settings.
    kept, faults = _page_faults("tune, then a child that only imports")
    assert not kept and faults < 2048  # the child's figures: it never called tune_allocator


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_can_still_use_the_threads(threads):
    threads(2)
    fast_threads.map_chunks(8, 2, lambda lo, hi: lo)  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # child: must not wait forever on the parent's (absent) threads
        code = 0 if fast_threads.map_chunks(8, 2, lambda lo, hi: lo) == [0, 2, 4, 6] else 1
        os._exit(code)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung waiting for threads it does not have")
    assert os.WIFEXITED(done[1]) and os.WEXITSTATUS(done[1]) == 0


def test_map_chunks_inside_map_chunks_finishes(threads):
    threads(2)
    out = []

    def outer():
        def inner(lo, hi):
            return fast_threads.map_chunks(4, 1, lambda a, b: a + 10 * lo)

        out.append(fast_threads.map_chunks(6, 1, inner))

    runner = threading.Thread(target=outer, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "a nested map_chunks waited forever on the pool"
    assert out == [[[10 * lo + a for a in range(4)] for lo in range(6)]]
