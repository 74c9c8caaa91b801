"""Where a ResNet-20 training step spends its time, minires against PyTorch, with Linux ``perf``.

    perf record -F 999 -D 5000 -o minires.data python -m benchmarks.profile minires 25
    perf record -F 999 -D 6000 -o torch.data python -m benchmarks.profile torch 50
    perf script -i minires.data -F ip,sym,dso > minires.txt
    python -m benchmarks.profile --group minires.txt

The first form runs the profiled work: ``STEPS`` steps of the ``step`` family (batch 128) after
two warm-ups (``-D`` starts sampling after the imports and warm-ups). ``--group`` counts the
samples (one line each in ``perf script``'s output) by what the code does: GEMM arithmetic, GEMM
packing, copies, elementwise passes, thread synchronisation, the Python interpreter, the kernel.
The same ``perf script`` and ``--group`` steps give PyTorch's shares from torch.data.
"""
import argparse
import collections
import re
import sys
import time

# (group, pattern searched in a sample's "address symbol (library)" line), first match wins; the
# patterns name the symbols and libraries seen in OpenBLAS, glibc, NumPy, libtorch, oneDNN, libgomp.
GROUPS = [
    ("GEMM operand packing", r"sgemm_(it|in|ot|on)copy"),
    ("GEMM / convolution arithmetic", r"sgemm_kernel|perf-\d+\.map|dnnl|brgemm|openblas|libmkl"),
    ("copies (im2col, layouts)", r"memmove|memcpy|_contig_to|_strided_to|raw_array_assign|copy"),
    ("thread synchronisation", r"libgomp|blas_thread_server"),
    ("Python interpreter", r"libpython|^python"),
    ("kernel (page faults, scheduling)", r"\[kernel|\[unknown\]"),
    ("elementwise passes and reductions", r"_multiarray_umath|libtorch|libc\.|libc10|libm\."),
]


def group(samples):
    """{group: percent of the samples} from the lines of ``perf script -F ip,sym,dso`` (one a
    sample).

    oneDNN's kernels are generated at run time: perf finds them in /tmp/perf-PID.map."""
    shares = collections.Counter()
    for line in samples:
        if line.strip():
            shares[next((g for g, pattern in GROUPS if re.search(pattern, line)), "other")] += 1
    total = sum(shares.values()) or 1
    return {g: 100 * n / total for g, n in shares.most_common()}


def steps(impl, n):
    from . import step as S
    from .harness import Config, Device, load_torch
    cfg, dev = Config(threads=2), Device("cpu")
    images, labels = S.make_batch(S.BATCH)
    mm = S.minires_model("resnet20", dev)
    if impl == "minires":
        fn = S.minires_step_fn(mm, dev, images, labels)
    else:
        torch, note = load_torch(cfg)
        if torch is None:
            raise SystemExit(note)
        fn = S.torch_step_fn(torch, cfg, S.torch_model(torch, cfg, "resnet20", mm), images, labels)
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    per_step = (time.perf_counter() - t0) / n
    print(f"{impl}: {per_step * 1e3:.0f} ms per ResNet-20 step", file=sys.stderr)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("impl", nargs="?", choices=["minires", "torch"])
    p.add_argument("steps", nargs="?", type=int, default=25)
    p.add_argument("--group", metavar="SAMPLES",
                   help="group the samples of a saved `perf script` output")
    a = p.parse_args(argv)
    if a.group:
        with open(a.group) as f:
            for name, pct in group(f).items():
                print(f"{pct:6.1f}%  {name}")
    elif a.impl:
        from minires.fast import tune_allocator
        tune_allocator()  # as in every run (minires/fast/memory.py): glibc keeps freed memory
        steps(a.impl, a.steps)
    else:
        p.error("give minires|torch STEPS, or --group SAMPLES")


if __name__ == "__main__":
    main()
