"""How the fast path is made fast, CPU threads and memory (minires/fast/threads.py, memory.py):
map_chunks runs every chunk once, in order, with BLAS held to one thread where threadpoolctl can
hold it, and gives the same answer on any thread count; freed memory is reused once a run asks
for it, and importing minires does not ask."""
import json
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
from minires.fast import blas as fast_blas
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


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_while_the_caller_waits_lets_every_helper_finish_first(threads):
    """A Ctrl-C that reaches the calling thread while it waits for a helper must not leave the
    helper running: map_chunks would then restore BLAS's thread count under a BLAS call, and the
    process could hang on its way out. The interrupt is raised once every helper is done."""
    threads(2)
    started, done = threading.Event(), []
    main = threading.main_thread()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def body(lo, hi):
        if threading.current_thread() is main:
            started.wait(5)  # let the helper take the other chunk first
            return lo
        started.set()
        time.sleep(0.2)  # the caller is now waiting for this helper
        signal.pthread_kill(main.ident, signal.SIGUSR1)  # a Ctrl-C, delivered to the caller
        time.sleep(0.5)
        done.append(lo)
        return lo

    before = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            fast_threads.map_chunks(2, 1, body)
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert done, "map_chunks let the interrupt through while a helper was still at work"


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
    monkeypatch.setattr(fast_blas, "_gemms", None)  # and what is found is forgotten after


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


# -- MINIRES_NUM_THREADS ------------------------------------------------------------------------

def _threads_in_a_process_with(value):
    env = dict(os.environ, MINIRES_NUM_THREADS=value)
    code = ("import os; from minires.fast import threads\n"
            "print(threads.num_threads(), min(8, len(os.sched_getaffinity(0))))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="the cores: Linux only")
@pytest.mark.parametrize("value", ["3", " 3 ", "3\n"])
def test_minires_num_threads_sets_the_thread_count_silently(value):
    out = _threads_in_a_process_with(value)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.split()[0] == "3"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="the cores: Linux only")
@pytest.mark.parametrize("value", ["abc", "2.5", "0", "-1", "1e3", "four"])
def test_a_bad_minires_num_threads_is_said_in_one_line_and_the_default_used(value):
    # It was a ValueError traceback ("abc", "2.5"), or silently 1 ("0", "-1").
    out = _threads_in_a_process_with(value)
    assert out.returncode == 0, out.stderr
    threads, cores = out.stdout.split()
    assert threads == cores  # the default: the cores, at most 8
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("minires: MINIRES_NUM_THREADS must be a positive whole number "
                                 f"of threads, got {value!r}: using {cores}")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="the cores: Linux only")
def test_an_empty_minires_num_threads_is_unset():
    out = _threads_in_a_process_with("")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    threads, cores = out.stdout.split()
    assert threads == cores


# -- BLAS's thread count, from several Python threads at once ------------------------------------

def _blas_threads(blas):
    return [lib["num_threads"] for lib in blas.info()]


def test_python_threads_running_chunks_get_one_blas_thread_while_another_holds_a_limit(
        threads, controllable_blas):
    """threadpoolctl lets one Python thread at a time change OpenBLAS's count and ignores the
    others: here the test's own thread holds a limit of 2, and two other threads run chunks,
    A entering first and leaving first. BLAS is at one thread for both, and at 2 after."""
    blas = controllable_blas
    threads(1)  # each map_chunks runs its chunks in its own calling thread, inside the limit
    a_inside, b_inside, a_left = (threading.Event() for _ in range(3))
    seen = {}

    def a_body(lo, hi):
        a_inside.set()
        assert b_inside.wait(30)
        seen["A"] = _blas_threads(blas)

    def b_body(lo, hi):
        assert a_inside.wait(30)
        b_inside.set()
        assert a_left.wait(30)
        seen["B"] = _blas_threads(blas)  # A has left: BLAS must still be held to 1 for B

    def a():
        fast_threads.map_chunks(1, 1, a_body)
        a_left.set()

    with blas.limit(limits=2):
        before = _blas_threads(blas)
        runners = [threading.Thread(target=a), threading.Thread(
            target=lambda: fast_threads.map_chunks(1, 1, b_body))]
        for t in runners:
            t.start()
        for t in runners:
            t.join(60)
        after = _blas_threads(blas)
    assert seen == {"A": [1] * len(before), "B": [1] * len(before)}
    assert after == before and before != [1] * len(before)


_FROM_THREADS = """
import json, sys, threading
import numpy as np
import minires as mr
from minires import fast, functional as F
from minires.fast import threads
blas = threads.blas_libraries()
if blas is None:
    sys.exit(77)  # nothing to hold: the test skips
def count():
    return [lib["num_threads"] for lib in blas.info()]
before, inside = count(), []
if sys.argv[1] == "leave in another order":  # A enters, B enters, A leaves, B leaves
    fast.set_num_threads(1)  # each map_chunks runs its chunks in its calling thread
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    def a_body(lo, hi):
        a_in.set()
        b_in.wait(30)
        inside.append(count())
    def b_body(lo, hi):
        a_in.wait(30)
        b_in.set()
        a_out.wait(30)
        inside.append(count())  # A has left: B's chunks still want one BLAS thread
    def a():
        threads.map_chunks(1, 1, a_body)  # one small chunk: one BLAS thread too
        a_out.set()
    runners = [threading.Thread(target=a),
               threading.Thread(target=lambda: threads.map_chunks(1, 1, b_body))]
else:  # four threads training at once, a few times over
    fast.set_num_threads(2)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 4, 12, 12)), rng.standard_normal((4, 4, 3, 3))
    def train():
        for stride in (1, 2, 1, 2, 1) * 4:
            xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
            y = F.relu(F.conv2d(xt, wt, stride=stride, padding=1))
            y.backward(np.ones(y.shape))
    runners = [threading.Thread(target=train) for _ in range(4)]
for t in runners:
    t.start()
for t in runners:
    t.join(120)
print(json.dumps({"before": before, "after": count(), "inside": inside}))
"""


@pytest.mark.parametrize("how", ["leave in another order", "convolutions from four threads"])
def test_blas_has_its_thread_count_back_after_threads_ran_chunks_at_once(how):
    """Each thread took threadpoolctl's limit for itself and restored what it saw on entry: when
    A enters, then B, then A leaves, then B, B put back A's limit of 1 (and four threads of
    convolutions left OpenBLAS at one thread). In a fresh process whose main thread never set a
    limit, BLAS's count starts at 2 (OPENBLAS_NUM_THREADS), is 1 inside and 2 again after."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _FROM_THREADS, how], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode == 77:
        pytest.skip("threadpoolctl sees no BLAS in this process")
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout)
    assert seen["before"] == seen["after"] == [2], seen
    if how == "leave in another order":
        assert seen["inside"] == [[1], [1]], seen


# -- the GPU path leaves the CPU's BLAS alone ------------------------------------------------------

FAKE_CUPY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fake_cupy")

_GPU_SPY = """
import numpy as np, threadpoolctl
import minires as mr
from minires import functional as F
import cupy
assert getattr(cupy, "FAKE", False), cupy.__file__
calls = []  # every way of changing BLAS's thread count through threadpoolctl, spied on
def spy(cls, name):
    method = getattr(cls, name)
    def spied(*args, **kwargs):
        calls.append(name)
        return method(*args, **kwargs)
    setattr(cls, name, spied)
spy(threadpoolctl.ThreadpoolController, "limit")
for lib in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers:
    for name in ("set_num_threads", "_real_set_num_threads"):
        if hasattr(type(lib), name):
            spy(type(lib), name)

def step(device):
    rng = np.random.default_rng(0)
    x = mr.Tensor(rng.standard_normal((4, 3, 10, 10)).astype(np.float32)).to(device)
    x.requires_grad = True
    y = x
    for k, s, p in [(3, 1, 1), (1, 1, 0), (3, 2, 1), (5, 1, 2)]:
        w = mr.Tensor(rng.standard_normal((3, 3, k, k)).astype(np.float32)).to(device)
        y = F.relu(F.batch_norm(F.conv2d(y, w, stride=s, padding=p), None, None, None, None,
                                training=True))
    y.sum().backward()
    return type(x.grad).__module__

mr.fast.set_num_threads(2)
gpu = step("gpu")
print(gpu, len(calls))
cpu = step("cpu")
print(cpu, len(calls) > 0)
"""


def test_the_gpu_path_never_enters_threadpoolctl():
    # On the GPU one chunk is the whole batch: nothing for the CPU's BLAS to be limited for, and
    # threadpoolctl's limit costs a look at every library each time (fake CuPy: tests/fake_cupy).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([FAKE_CUPY, os.environ.get("PYTHONPATH",
                                                                                  "")]))
    out = subprocess.run([sys.executable, "-c", _GPU_SPY], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    gpu, cpu = out.stdout.splitlines()
    assert gpu == "cupy 0"  # the GPU step: no limit entered
    assert cpu == "numpy True"  # the same step on the CPU does enter it: the spy sees it
