"""Speed that holds: ResNet-20/56 training steps and inference idle, beside one busy process, and
from one fresh process to the next; minires and PyTorch alike.

A figure taken once, in one process, on an idle machine says little about what a learner sees:
a VM's timings drift, a new process lands on other cores and other memory, and a laptop runs a
browser beside the training. So every figure here comes from a fresh interpreter
(``python -m benchmarks.load --probe ...``), which builds the net and the batch of the ``step`` and
``infer`` families, warms up twice and reports the median of its timed calls. Three conditions:

- idle: the median over ``FRESH`` fresh processes, run one after another, frameworks interleaved;
- spread: max / min of those per-process medians (goal: at most 1.2x);
- busy: the same work while one busy process (a Python loop on one core, started and stopped by
  this benchmark) shares the machine; the table gives busy / idle (goal: at most 1.6x, and not
  worse than PyTorch's busy / idle).

The thread settings are the run's (``--threads``, in the environment the probes inherit).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .harness import Config, Table, median, run_fresh

WORKS = (("step", "resnet20"), ("step", "resnet56"), ("infer", "resnet20"), ("infer", "resnet56"))
FRESH, BUSY_FRESH = 5, 2
PROBE_REPEATS = 5


def probe(impl, work, name, batch, threads, repeats):
    """Run in a fresh process: the median seconds of ``repeats`` timed calls after two warm-ups."""
    from . import infer as I
    from . import step as S
    from .harness import Device, load_torch
    cfg = Config(device="cpu", threads=threads)
    dev = Device("cpu")
    torch = None
    if impl == "torch":
        torch, note = load_torch(cfg)
        if torch is None:
            raise SystemExit(note)
    if work == "step":
        images, labels = S.make_batch(batch)
        mm = S.minires_model(name, dev)
        fn = (S.minires_step_fn(mm, dev, images, labels) if impl == "minires"
              else S.torch_step_fn(torch, cfg, S.torch_model(torch, cfg, name, mm), images, labels))
    else:
        images, _ = S.make_batch(batch, seed=1)
        mm, tm = I.prepared_models(name, dev, torch, cfg, images)
        fn = (I.minires_fn(mm, dev, images) if impl == "minires"
              else I.torch_fn(torch, cfg, tm, images))
    for _ in range(2):
        fn()
    before = thread_cpu_seconds()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    after = thread_cpu_seconds()
    # Threads Python did not start are the libraries' own pools (OpenBLAS's for minires; for
    # PyTorch its OpenMP workers, which do its work): a BLAS thread that spins between calls shows
    # here.
    other = sum(cpu - before.get(tid, (0.0, False))[0]
                for tid, (cpu, python) in after.items() if not python)
    return {"median": statistics.median(times), "times": times, "other_threads_cpu": other}


def thread_cpu_seconds():
    """{thread id: (CPU seconds so far, started by Python?)} for this process's threads (Linux;
    else {})."""
    import threading
    python = {t.native_id for t in threading.enumerate()}
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        utime_stime = int(fields[11]) + int(fields[12])
        out[int(tid)] = (utime_stime / tick, int(tid) in python)
    return out


def _run_probe(impl, work, name, batch, cfg, repeats):
    return run_fresh("load", ["--probe", impl, "--work", work, "--model", name, "--batch", batch,
                              "--threads", cfg.threads, "--repeats", repeats],
                     f"load probe {impl} {work} {name}")


class BusyProcess:
    """One other process that keeps one core busy (a Python loop) while the ``with`` body runs."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it start spinning
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _measure(impls, works, batch, cfg, fresh, repeats):
    """{(impl, work, name): [probe result of each fresh process]}, the processes interleaved."""
    out = {}
    for _ in range(fresh):
        for work, name in works:
            for impl in impls:
                probe = _run_probe(impl, work, name, batch, cfg, repeats)
                out.setdefault((impl, work, name), []).append(probe)
    return out


def _medians(probes):
    return [p["median"] for p in probes]


def run(cfg):
    from .harness import fmt_ms, load_torch
    if cfg.device == "gpu":
        raise RuntimeError("the load family measures the CPU only")
    torch, torch_note = load_torch(cfg)
    impls = ["minires"] + ([] if torch is None else ["torch"])
    batch = 8 if cfg.quick else 128
    works = WORKS[:1] + WORKS[2:3] if cfg.quick else WORKS
    fresh, busy_fresh = (2, 1) if cfg.quick else (FRESH, BUSY_FRESH)
    repeats = 2 if cfg.quick else min(cfg.repeats, PROBE_REPEATS)
    idle = _measure(impls, works, batch, cfg, fresh, repeats)
    with BusyProcess():
        busy = _measure(impls, works, batch, cfg, busy_fresh, repeats)
    header = ["work"]
    for impl in impls:
        header += [f"{impl} idle", f"{impl} spread", f"{impl} busy/idle"]
    if torch is not None:
        header.append("minires/torch idle")
    table = Table(f"Under load: batch {batch}, 32x32, {cfg.threads} threads; idle = median of "
                  f"{fresh} fresh processes, spread = their max/min, busy = beside one busy "
                  f"process ({busy_fresh} fresh processes)", header)
    goals, blas_cpu = [], 0.0
    for work, name in works:
        net = f"ResNet-{name.removeprefix('resnet')}"
        label = f"{net} {'SGD step' if work == 'step' else 'forward'}"
        row, fig = [label], {}
        for impl in impls:
            runs = _medians(idle[(impl, work, name)])
            fig[impl] = {"idle": median(runs), "spread": max(runs) / min(runs),
                         "busy": median(_medians(busy[(impl, work, name)])) / median(runs)}
            row += [fmt_ms(fig[impl]["idle"]), f"{fig[impl]['spread']:.2f}x",
                    f"{fig[impl]['busy']:.2f}x"]
        if torch is not None:
            row.append(f"{fig['minires']['idle'] / fig['torch']['idle']:.2f}x")
        table.rows.append(row)
        table.raw[label] = {f"{impl} {cond}": (idle if cond == "idle" else busy)[(impl, work, name)]
                            for impl in impls for cond in ("idle", "busy")}
        blas_cpu += sum(p["other_threads_cpu"] for p in idle[("minires", work, name)])
        what = "training step" if work == "step" else "inference"
        goals.append((f"{net} {what} spread over fresh processes", fig["minires"]["spread"], 1.2))
        goals.append((f"{net} {what} busy/idle", fig["minires"]["busy"], 1.6))
        if torch is not None:
            goals.append((f"{net} {what} busy/idle against torch's",
                          fig["minires"]["busy"] / fig["torch"]["busy"], 1.0))
    table.notes.append(
        f"Each probe: a fresh interpreter, two warm-up calls, the median of {repeats} timed "
        "calls. The busy process is a pure-Python loop on one core, started before and killed "
        "after the busy probes.")
    table.notes.append(
        "minires: CPU time of the threads Python did not start (the BLAS library's own pool) "
        f"during all idle timed calls: {blas_cpu:.2f} s. Inside its chunks minires holds BLAS to "
        "one thread; only a convolution whose whole batch fits in one chunk (small batches) runs "
        "its GEMM on BLAS's threads. At batch 128, 0 means no BLAS thread ran or spun beside "
        "minires's.")
    if torch_note:
        table.notes.append(torch_note)
    return [table], goals


def main():
    p = argparse.ArgumentParser(description="one load probe (used by python -m benchmarks load)")
    p.add_argument("--probe", choices=["minires", "torch"], required=True)
    p.add_argument("--work", choices=["step", "infer"], required=True)
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=PROBE_REPEATS)
    a = p.parse_args()
    from minires.fast import tune_allocator
    tune_allocator()  # as in every run before (minires/fast/memory.py): glibc keeps freed memory
    print(json.dumps(probe(a.probe, a.work, a.model, a.batch, a.threads, a.repeats)))


if __name__ == "__main__":
    main()
