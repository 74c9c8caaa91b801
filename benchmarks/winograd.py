"""The ways minires's fast convolution can compute a 3x3 "same" convolution, by channel count.

The same ``F.conv2d`` forward + backward (3x3, stride 1, padding 1) four times, each branch forced
with ``minires.fast.using``: shifted GEMMs (minires/fast/shifted_gemm.py, forced on at every
width) through BLAS's accumulating GEMM (ctypes, beta = 1, minires/fast/blas.py: the default),
the same shifted GEMMs through ``np.matmul`` and ``+=`` (no ctypes), the padded-width im2col
columns, and the Winograd branch (minires/fast/winograd.py), on CIFAR widths and on the widths
of the ImageNet nets' later stages. This is the measurement behind the switches: Winograd saves
multiplications (16 instead of 36 per 2x2 tile) but adds memory passes for its transforms;
shifted GEMMs do every multiplication but write no columns, and through ``np.matmul`` they pay
one more pass over the output per tap. A second table times the two routes of the shifted GEMMs
on a whole ResNet-20 training step (the ``step`` family's), interleaved in one process: the
ctypes route stays only while it saves at least 5% of that step. PyTorch is not part of this;
Winograd's weight gradient is the im2col columns'.
"""
import numpy as np

from minires import fast

from .conv import check_same, make_inputs, minires_fn
from .harness import Case, Device, time_interleaved, timing_table, to_numpy

SHAPES = [(32, 16, 32, 32), (32, 64, 16, 16), (32, 128, 16, 16), (32, 256, 8, 8), (16, 512, 7, 7)]
QUICK_BATCH = 2
ALL_WIDTHS = 1 << 30

BRANCHES = {  # name: the knobs that force it
    "shifted GEMMs": dict(shifted_gemm_max_channels=ALL_WIDTHS, winograd_min_channels=None),
    "shifted GEMMs, matmul +=": dict(shifted_gemm_max_channels=ALL_WIDTHS,
                                     winograd_min_channels=None, shifted_gemm_via="matmul"),
    "im2col": dict(shifted_gemm_max_channels=0, winograd_min_channels=None),
    "winograd": dict(shifted_gemm_max_channels=0, winograd_min_channels=1),
}
DEFAULT = "shifted GEMMs"
ROUTES = {"shifted GEMMs (ctypes)": "blas", "shifted GEMMs (matmul +=)": "matmul"}


def on_branch(name, fn):
    def run():
        with fast.using(**BRANCHES[name]):
            return fn()
    return run


def conv_rows(cfg, dev):
    shapes = [(QUICK_BATCH,) + s[1:] for s in SHAPES] if cfg.quick else SHAPES
    rows = []
    for shape in shapes:
        N, C, H, W = shape
        x, w, gy = make_inputs(shape)
        fns = {name: on_branch(name, minires_fn(dev, x, w, gy)) for name in BRANCHES}
        default = fns[DEFAULT]()
        for name in BRANCHES:
            if name != DEFAULT:
                check_same(name, fns[name](), default, rtol=1e-3)
        cases = [Case(name, fns[name], dev.sync) for name in BRANCHES]
        rows.append((f"conv 3x3 N{N} {C}ch {H}x{W}, fwd+bwd", time_interleaved(cases, cfg.repeats)))
    return rows


def step_table(cfg, dev):
    """A ResNet-20 training step with the shifted GEMMs through ctypes and through np.matmul."""
    from . import step as S
    batch = S.QUICK_BATCH if cfg.quick else S.BATCH
    images, labels = S.make_batch(batch)
    models = {name: S.minires_model("resnet20", dev) for name in ROUTES}  # the same weights

    def on_route(name):
        step = S.minires_step_fn(models[name], dev, images, labels)

        def run():
            with fast.using(shifted_gemm_via=ROUTES[name]):
                return step()
        return run

    cases = [Case(name, on_route(name), dev.sync, warmup=2) for name in ROUTES]
    times = time_interleaved(cases, max(7, cfg.repeats))
    a, b = (list(m.parameters()) for m in models.values())  # after the same number of steps
    same = all(np.array_equal(to_numpy(p.data), to_numpy(q.data)) for p, q in zip(a, b))
    names = list(ROUTES)
    notes = [f"One process, the two steps interleaved, median of {max(7, cfg.repeats)} after two "
             "warm-up steps each; both nets start from the same weights.",
             "After all their steps the two nets' parameters were "
             + ("bit-identical." if same else "NOT bit-identical (last-bit rounding differs).")]
    if dev.name == "gpu":
        notes.append("On the GPU neither route runs (no shifted GEMMs there): the two columns time "
                     "the same im2col step.")
    title = (f"The shifted GEMMs' two routes in a ResNet-20 training step, batch {batch} "
             f"({cfg.device})")
    return timing_table(title, [("ResNet-20 SGD step", times)], names,
                        ratios=[(names[1], names[0])], notes=notes)


def run(cfg):
    dev = Device(cfg.device)
    rows = conv_rows(cfg, dev)
    knobs = fast.knobs
    wino = (f"By default Winograd runs from {knobs.winograd_min_channels} input and output "
            "channels on." if knobs.winograd_min_channels else
            "By default Winograd is off (the winograd_min_channels knob is None); here it is "
            "forced on.")
    notes = [wino,
             "shifted GEMMs, forced on here, are the default up to shifted_gemm_max_channels = "
             f"{knobs.shifted_gemm_max_channels} channels where NumPy's BLAS can be called "
             "directly (CPU only; on the GPU the first three columns are the same im2col); "
             "matmul +=: the same GEMMs through np.matmul into a buffer and += "
             "(shifted_gemm_via=\"matmul\"); im2col: the padded-width columns.",
             "All four were first checked equal (y, dx, dw) on the same inputs."]
    names = list(BRANCHES)
    title = ("Shifted GEMMs (ctypes or np.matmul), im2col and Winograd F(2x2, 3x3) in the fast "
             f"convolution ({cfg.device})")
    conv = timing_table(title, rows, names,
                        ratios=[("shifted GEMMs, matmul +=", DEFAULT), ("im2col", DEFAULT),
                                ("winograd", DEFAULT)], notes=notes)
    return [conv, step_table(cfg, dev)], []
