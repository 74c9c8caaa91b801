"""python -m benchmarks [conv|bn|step|infer|memory|winograd|load|all] [--repeats N] [--quick]
                       [--device cpu|gpu]

Prints, as markdown, the machine and versions, one table per family, and the project's speed goals
(minires/torch ratios against their targets). ``--update-readme`` also writes that block into
benchmarks/README.md between its ``results`` markers; ``--json PATH`` saves every raw timing.
"""
import argparse
import importlib
import os
import sys

from . import FAMILIES

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    p.add_argument("family", nargs="?", default="all", choices=FAMILIES + ("all",))
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per row; the row reports the median (default 10, --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="batch 8, few repeats: a smoke test, not figures")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=2,
                   help="BLAS/OpenMP threads for NumPy and PyTorch alike (default 2)")
    p.add_argument("--json", metavar="PATH",
                   help="also save the machine and every raw timing as JSON")
    p.add_argument("--update-readme", action="store_true",
                   help="write the printed block into benchmarks/README.md between the results "
                        "markers")
    return p.parse_args(argv)


def set_threads(n):
    """Pin the thread pools of OpenBLAS/MKL/OpenMP (NumPy's BLAS, PyTorch) and minires's worker
    threads to ``n`` threads.

    The pools read these variables once, when their library loads, so this must run before
    NumPy is imported: hence the lazy imports below.
    """
    if "numpy" in sys.modules:
        print("warning: NumPy was imported before the thread count was set; "
              "its BLAS may use another thread count", file=sys.stderr)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "MINIRES_NUM_THREADS"):
        os.environ[var] = str(n)


def goals_table(goals):
    from .harness import Table
    t = Table("Speed goals: minires/torch, medians of this run",
              ["goal", "minires/torch", "target", "met"])
    for label, ratio, target in goals:
        met = "—" if ratio is None else ("yes" if ratio <= target else "no")
        t.rows.append([label, "—" if ratio is None else f"{ratio:.2f}x", f"<= {target:g}x", met])
    return t


def update_readme(block):
    with open(README) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{README} has no {START} ... {END} markers to write between")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    with open(README, "w") as f:
        f.write(f"{head}{START}\n{block}\n{END}{tail}")


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    from . import harness
    from minires.fast import tune_allocator
    # Where a run starts, as in ``python -m minires``: glibc keeps freed memory for reuse
    # (minires/fast/memory.py), for PyTorch too, and in the probes' fresh processes.
    tune_allocator()
    cfg = harness.Config(device=args.device, quick=args.quick, threads=args.threads,
                         repeats=args.repeats or (3 if args.quick else 10))
    if cfg.device == "gpu":
        note = harness.gpu_note()
        if note:
            print(f"GPU figures skipped: {note}. Nothing was measured; run on a machine with a "
                  "CUDA GPU and CuPy (pip install 'minires[gpu]').")
            return 0
    torch, _ = harness.load_torch(cfg)
    info = harness.machine_info(cfg, torch)
    families = FAMILIES if args.family == "all" else (args.family,)
    tables, goals = [], []
    for name in families:
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        t, g = importlib.import_module(f"benchmarks.{name}").run(cfg)
        tables += t
        goals += g
        for table in t:  # as each family finishes, so a long run shows progress
            print(table.markdown() + "\n", file=sys.stderr, flush=True)
    if torch is not None:
        tables.append(goals_table(goals))
    block = "\n\n".join([harness.machine_markdown(info)] + [t.markdown() for t in tables])
    print(block)
    if args.json:
        harness.write_json(args.json, info, tables)
        print(f"raw timings written to {args.json}", file=sys.stderr)
    if args.update_readme:
        update_readme(block)
        print(f"results written into {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
