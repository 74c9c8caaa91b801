"""What every benchmark family shares: the device, interleaved timing, result tables, the machine.

Timing rules (the machine is noisy: the same work varies by 30% or more between runs):
- every implementation is warmed up first (workspaces, allocator pools, BLAS threads started);
- the repeats of the implementations are *interleaved* (round r runs A, B, C; round r + 1 runs
  B, C, A; ...), so a slow spell of the machine hits all of them alike rather than one;
- each call is bracketed by a device synchronisation (a no-op on the CPU) and preceded by an
  untimed ``gc.collect()``, so one call does not pay for garbage left by another;
- a row reports the median over repeats, and ratios are ratios of medians from the same run.
"""
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Config:
    """Options of one harness run (see ``python -m benchmarks --help``)."""
    device: str = "cpu"
    repeats: int = 10
    quick: bool = False
    threads: int = 2


# -- devices ---------------------------------------------------------------------------------------

class Device:
    """The array module and synchronisation for ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""

    def __init__(self, name):
        self.name = name
        if name == "gpu":
            import cupy
            self.xp = cupy
        else:
            self.xp = np

    def put(self, a):
        """A NumPy array on this device."""
        return self.xp.asarray(a)

    def sync(self):
        # GPU kernels run asynchronously: without this a timer measures only the launch.
        if self.name == "gpu":
            self.xp.cuda.Device().synchronize()


def gpu_note():
    """None when CuPy sees a CUDA GPU, else why the GPU figures are skipped."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
        return "CuPy sees no CUDA device"
    except Exception as e:  # ImportError, or a CUDA driver error
        return f"no usable CuPy/CUDA ({type(e).__name__}: {e})".splitlines()[0]


def load_torch(cfg):
    """(torch, None) when PyTorch can run on ``cfg.device``, else (None, the reason)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed in this environment: its columns are skipped"
    if cfg.device == "gpu" and not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA here: its columns are skipped"
    torch.set_num_threads(cfg.threads)
    return torch, None


def torch_device(torch, cfg):
    return torch.device("cuda" if cfg.device == "gpu" else "cpu")


def torch_sync(torch, cfg):
    """A function that waits for PyTorch's queued GPU work (a no-op on the CPU)."""
    if cfg.device == "gpu":
        return torch.cuda.synchronize
    return lambda: None


# -- timing ----------------------------------------------------------------------------------------

@dataclass
class Case:
    """One implementation of a row: ``fn()`` does the work once; ``sync()`` waits for it to finish.

    ``repeats`` caps how many of the run's rounds this case takes part in (for slow references);
    ``scale`` multiplies its times (e.g. 128 / 4 for a loop timed on 4 images of a 128 batch).
    """
    name: str
    fn: object
    sync: object = None
    repeats: int = None
    scale: float = 1.0
    warmup: int = 1


def time_interleaved(cases, repeats):
    """Time ``cases`` in interleaved rounds; return {name: [seconds per call, scaled]}."""
    for c in cases:
        for _ in range(c.warmup):
            c.fn()
            if c.sync:
                c.sync()
    times = {c.name: [] for c in cases}
    for r in range(repeats):
        k = r % len(cases)
        for c in cases[k:] + cases[:k]:  # rotate, so that no case always follows the same one
            if c.repeats is not None and len(times[c.name]) >= c.repeats:
                continue
            gc.collect()
            if c.sync:
                c.sync()
            t0 = time.perf_counter()
            c.fn()
            if c.sync:
                c.sync()
            times[c.name].append((time.perf_counter() - t0) * c.scale)
    return times


def run_fresh(module, args, what):
    """Run ``python -m benchmarks.MODULE ARGS`` in a fresh interpreter and return the JSON of its
    last output line (``what`` names the probe in the error raised if it fails)."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_mode(fn):
    """``fn`` run on minires's reference ops (``minires.reference_ops()``), for the "minires
    reference" column."""
    import minires

    def run():
        with minires.reference_ops():
            return fn()
    return run


def median(xs):
    return statistics.median(xs) if xs else None


# -- checking --------------------------------------------------------------------------------------

def to_numpy(a):
    """NumPy copy of a NumPy/CuPy array or a (CPU/GPU) torch tensor."""
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.asarray(a)


def assert_close(what, got, want, rtol=1e-4):
    """Fail unless max|got - want| <= rtol * max|want|: the two implementations did the same work.

    The tolerance is relative to the largest value, not elementwise: float32 sums taken in a
    different order differ by a few ulps of the *largest* terms, which is huge relative to an
    output that happens to be near zero.
    """
    got, want = to_numpy(got).astype(np.float64), to_numpy(want).astype(np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != reference shape {want.shape}")
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    if not err <= rtol * max(scale, 1e-30):
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(got - want)), got.shape))
        raise AssertionError(f"{what}: max abs difference {err:.3g} at index {idx} "
                             f"(got {got[idx]:.6g}, want {want[idx]:.6g}) exceeds {rtol:g} x "
                             f"max|want| = {rtol * scale:.3g}")


# -- tables ----------------------------------------------------------------------------------------

def median_ratio(times, a, b):
    """median(times[a]) / median(times[b]), or None when either was not run."""
    ma, mb = median(times.get(a, [])), median(times.get(b, []))
    return None if ma is None or mb is None else ma / mb


def fmt_ms(seconds):
    """Seconds as milliseconds with about three significant digits; '—' for a skipped cell."""
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}x"


@dataclass
class Table:
    """A result table: prints as markdown and serialises (with its raw numbers) to JSON."""
    title: str
    header: list
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    def markdown(self):
        lines = [f"### {self.title}", "",
                 "| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def timing_table(title, rows, impls, ratios, notes=(), extra=None):
    """Build the table that most families print.

    rows: [(work label, {impl name: [seconds]})]; impls: column order; ratios: [(a, b)] pairs
    that get a column "a/b" (medians); extra: optional [(header, function(medians) -> str)].
    """
    extra = extra or []
    header = ["work"] + impls + [f"{a}/{b}" for a, b in ratios] + [h for h, _ in extra]
    table = Table(title, header, notes=list(notes))
    for work, times in rows:
        med = {name: median(times.get(name, [])) for name in impls}
        cells = [work] + [fmt_ms(med[n]) for n in impls]
        cells += [fmt_ratio(med[a], med[b]) for a, b in ratios]
        cells += [f(med) for _, f in extra]
        table.rows.append(cells)
        table.raw[work] = {n: times.get(n, []) for n in impls}
    return table


# -- the machine -----------------------------------------------------------------------------------

def machine_info(cfg, torch=None):
    """The facts a figure needs next to it: machine, versions, threads, date."""
    from minires import machine
    m = machine.describe()
    b = m["blas"]
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": m["cpu"],
        "isa": m["isa"],
        "nproc": m["cores"],
        "python": m["python"],
        "numpy": m["numpy"],
        "blas": f"{b['library']} {b['version']}"
                + (f", {b['kernel']} kernel" if b["kernel"] else ""),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "MINIRES_NUM_THREADS")},
        "torch": None if torch is None
                 else f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "device": cfg.device,
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
    }
    if cfg.device == "gpu":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else name
        info["cupy"] = cupy.__version__
    return info


def machine_markdown(info):
    lines = [f"- date: {info['date']}",
             f"- machine: {info['cpu']} ({', '.join(info['isa']) or 'ISA unknown'}), "
             f"{info['nproc']} cores available",
             f"- python {info['python']}, numpy {info['numpy']} (BLAS: {info['blas']}), "
             f"torch {info['torch'] or 'not installed'}",
             "- threads: " + ", ".join(f"{k}={v}" for k, v in info["threads"].items()),
             f"- command: `{info['command']}`"]
    if "gpu" in info:
        lines.insert(2, f"- GPU: {info['gpu']}, CuPy {info['cupy']}")
    return "\n".join(lines)


def write_json(path, info, tables):
    with open(path, "w") as f:
        json.dump({"machine": info, "tables": [t.__dict__ for t in tables]}, f, indent=1)
