"""How the fast path is made fast, CPU threads and memory (minires/fast/threads.py, memory.py):
map_chunks runs every chunk once, in order, with BLAS held to one thread, and gives the same
answer on any thread count; freed memory is reused."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from minires.fast import threads as fast_threads


@pytest.fixture
def threads():
    """Set minires's thread count for one test, restoring it afterwards."""
    before = fast_threads.num_threads()
    yield fast_threads.set_num_threads
    fast_threads.set_num_threads(before)


def test_chunks_cover_the_range_in_order():
    assert fast_threads.chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert fast_threads.chunks(4, 4) == [(0, 4)]
    assert fast_threads.chunks(4, 100) == [(0, 4)]
    assert fast_threads.chunks(3, 0) == [(0, 1), (1, 2), (2, 3)]  # a size below one still makes progress
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


def test_blas_is_held_to_one_thread_inside_and_restored_after(threads):
    blas = fast_threads.blas_libraries()
    assert blas is not None, "threadpoolctl finds NumPy's BLAS on this machine"
    threads(2)
    with blas.limit(limits=2):  # whatever the test process started with (conftest sets 1)
        before = [lib["num_threads"] for lib in blas.info()]
        inside = fast_threads.map_chunks(6, 2, lambda lo, hi: [lib["num_threads"] for lib in blas.info()])
        after = [lib["num_threads"] for lib in blas.info()]
    assert all(t == [1] * len(before) for t in inside)
    assert after == before and before != [1] * len(before)


def test_a_lone_chunk_gets_one_blas_thread_unless_it_is_one_item_over_budget(threads):
    """A whole small batch in one chunk: one BLAS thread, in the calling thread (woken for a small
    GEMM, BLAS's threads would spin on the cores minires needs next). One image larger than the
    chunk budget (size < 1): BLAS keeps its own threads for that one large GEMM."""
    blas = fast_threads.blas_libraries()
    threads(2)
    caller = threading.get_ident()
    probe = lambda lo, hi: ([lib["num_threads"] for lib in blas.info()], threading.get_ident())  # noqa: E731
    with blas.limit(limits=2):
        (small_blas, small_thread), = fast_threads.map_chunks(5, 8, probe)
        (big_blas, big_thread), = fast_threads.map_chunks(1, 0, probe)
    assert small_blas == [1] * len(small_blas) and small_thread == caller
    assert big_blas == [2] * len(big_blas) and big_thread == caller


def test_without_a_settable_blas_the_chunks_run_in_the_calling_thread(threads, monkeypatch):
    threads(4)
    monkeypatch.setattr(fast_threads, "_blas", False)
    caller = threading.get_ident()
    assert fast_threads.map_chunks(10, 3, lambda lo, hi: threading.get_ident()) == [caller] * 4


# -- freed memory is kept for reuse ----------------------------------------------------------------

_CHURN = """
import resource, numpy as np, minires
def step():  # like a training step: a few activations of 8 MB alive at once, then all freed
    alive = [np.ones(2_000_000, np.float32) for _ in range(6)]
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(minires.fast.KEEPS_FREED_MEMORY, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(keep):
    env = dict(os.environ, MINIRES_KEEP_FREED_MEMORY=keep)
    out = subprocess.run([sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator is tuned on Linux only")
def test_reallocating_a_freed_array_touches_no_new_pages():
    # 10 "steps" of 6 arrays of 8 MB = 2,048 pages each: left alone, glibc gives most of them back
    # to the OS and faults them in afresh (~30,000 faults here); kept, the same pages serve again.
    kept, faults = _page_faults("1")
    assert kept and faults < 2048
    kept_off, faults_off = _page_faults("0")
    assert not kept_off and faults_off > 10 * 2048


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
        out.append(fast_threads.map_chunks(6, 1, lambda lo, hi: fast_threads.map_chunks(4, 1, lambda a, b: a + 10 * lo)))

    runner = threading.Thread(target=outer, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "a nested map_chunks waited forever on the pool"
    assert out == [[[10 * lo + a for a in range(4)] for lo in range(6)]]
