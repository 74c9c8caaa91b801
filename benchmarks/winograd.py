"""Winograd F(2x2, 3x3) against im2col inside minires's fast convolution, by channel count.

The same ``F.conv2d`` forward + backward (3x3, stride 1, padding 1), once with the Winograd branch
(minires/fast/winograd.py) forced on and once with it off (``chunked_conv.WINOGRAD_MIN_CHANNELS``), on
CIFAR widths and on the widths of the ImageNet nets' later stages. This is the measurement behind
``chunked_conv.WINOGRAD_MIN_CHANNELS``: Winograd saves multiplications (16 instead of 36 per 2x2
tile) but adds memory passes for its transforms, so it wins only where the GEMMs dominate.
PyTorch is not part of this table; the weight gradient is im2col's in both columns.
"""
import contextlib

from minires.fast import chunked_conv

from .conv import check_same, make_inputs, minires_fn
from .harness import Case, Device, time_interleaved, timing_table

SHAPES = [(32, 16, 32, 32), (32, 64, 16, 16), (32, 128, 16, 16), (32, 256, 8, 8), (16, 512, 7, 7)]
QUICK_BATCH = 2


@contextlib.contextmanager
def winograd(enabled):
    saved = chunked_conv.WINOGRAD_MIN_CHANNELS
    chunked_conv.WINOGRAD_MIN_CHANNELS = 1 if enabled else None
    try:
        yield
    finally:
        chunked_conv.WINOGRAD_MIN_CHANNELS = saved


def with_winograd(enabled, fn):
    def run():
        with winograd(enabled):
            return fn()
    return run


def run(cfg):
    dev = Device(cfg.device)
    shapes = [(QUICK_BATCH,) + s[1:] for s in SHAPES] if cfg.quick else SHAPES
    rows = []
    for shape in shapes:
        N, C, H, W = shape
        x, w, gy = make_inputs(shape)
        im2col_fn = with_winograd(False, minires_fn(dev, x, w, gy))
        winograd_fn = with_winograd(True, minires_fn(dev, x, w, gy))
        check_same("winograd", winograd_fn(), im2col_fn(), rtol=1e-3)
        cases = [Case("im2col", im2col_fn, dev.sync), Case("winograd", winograd_fn, dev.sync)]
        rows.append((f"conv 3x3 N{N} {C}ch {H}x{W}, fwd+bwd", time_interleaved(cases, cfg.repeats)))
    default = chunked_conv.WINOGRAD_MIN_CHANNELS
    notes = [f"By default Winograd runs from {default} input and output channels on." if default else
             "By default Winograd is off (chunked_conv.WINOGRAD_MIN_CHANNELS = None); here it is forced on and off.",
             "Both columns were first checked equal (y, dx, dw) on the same inputs."]
    return [timing_table(f"Winograd F(2x2, 3x3) vs im2col in the fast convolution ({cfg.device})", rows,
                         ["im2col", "winograd"], ratios=[("winograd", "im2col")], notes=notes)], []
