"""The three ways minires's fast convolution can compute a 3x3 "same" convolution, by channel count.

The same ``F.conv2d`` forward + backward (3x3, stride 1, padding 1) three times: by default (shifted
GEMMs, minires/fast/shifted_gemm.py, forced on at every width), with the padded-width im2col columns,
and with the Winograd branch (minires/fast/winograd.py) forced on
(``chunked_conv.WINOGRAD_MIN_CHANNELS``), on CIFAR widths and on the widths of the ImageNet nets'
later stages. This is the measurement behind both switches: Winograd saves multiplications (16
instead of 36 per 2x2 tile) but adds memory passes for its transforms; shifted GEMMs do every
multiplication but write no columns. PyTorch is not part of this table; Winograd's weight gradient
is the im2col columns'.
"""
import contextlib

from minires.fast import chunked_conv, shifted_gemm

from .conv import check_same, make_inputs, minires_fn
from .harness import Case, Device, time_interleaved, timing_table

SHAPES = [(32, 16, 32, 32), (32, 64, 16, 16), (32, 128, 16, 16), (32, 256, 8, 8), (16, 512, 7, 7)]
QUICK_BATCH = 2


@contextlib.contextmanager
def branch(name):
    """Run the fast convolution's "shifted GEMMs" (the default), "im2col" or "winograd" branch."""
    saved = chunked_conv.WINOGRAD_MIN_CHANNELS, shifted_gemm.MAX_CHANNELS
    chunked_conv.WINOGRAD_MIN_CHANNELS = 1 if name == "winograd" else None
    shifted_gemm.MAX_CHANNELS = 1 << 30 if name == "shifted GEMMs" else 0
    try:
        yield
    finally:
        chunked_conv.WINOGRAD_MIN_CHANNELS, shifted_gemm.MAX_CHANNELS = saved


def on_branch(name, fn):
    def run():
        with branch(name):
            return fn()
    return run


BRANCHES = ("shifted GEMMs", "im2col", "winograd")


def run(cfg):
    dev = Device(cfg.device)
    shapes = [(QUICK_BATCH,) + s[1:] for s in SHAPES] if cfg.quick else SHAPES
    rows = []
    for shape in shapes:
        N, C, H, W = shape
        x, w, gy = make_inputs(shape)
        fns = {name: on_branch(name, minires_fn(dev, x, w, gy)) for name in BRANCHES}
        default = fns["shifted GEMMs"]()
        for name in BRANCHES[1:]:
            check_same(name, fns[name](), default, rtol=1e-3)
        cases = [Case(name, fns[name], dev.sync) for name in BRANCHES]
        rows.append((f"conv 3x3 N{N} {C}ch {H}x{W}, fwd+bwd", time_interleaved(cases, cfg.repeats)))
    default = chunked_conv.WINOGRAD_MIN_CHANNELS
    notes = [f"By default Winograd runs from {default} input and output channels on." if default else
             "By default Winograd is off (chunked_conv.WINOGRAD_MIN_CHANNELS = None); here it is forced on.",
             f"shifted GEMMs, forced on here, are the default up to shifted_gemm.MAX_CHANNELS = "
             f"{shifted_gemm.MAX_CHANNELS} channels where NumPy's BLAS can be called directly (CPU only; on the "
             "GPU the first two columns are the same im2col); im2col: the padded-width columns.",
             "All three were first checked equal (y, dx, dw) on the same inputs."]
    return [timing_table(f"Shifted GEMMs, im2col and Winograd F(2x2, 3x3) in the fast convolution ({cfg.device})",
                         rows, list(BRANCHES), ratios=[("im2col", "shifted GEMMs"), ("winograd", "shifted GEMMs")],
                         notes=notes)], []
