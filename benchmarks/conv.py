"""Convolution, forward + backward: naive loops, classic im2col, minires (reference and fast),
PyTorch.

The shapes: 3x3, stride 1, padding 1, C_in = C_out, the three stages of a CIFAR ResNet
at batch 128. One call = forward, then backward with a fixed random upstream gradient, giving
dx and dw (no bias, as in ResNet).

Layouts are the ones each implementation sees inside its own network: minires gets x and dy as
channel-major NCHW views (what its batch norm and ReLU produce, see minires/functional/layout.py);
the classic im2col and PyTorch get C-contiguous NCHW arrays. "minires" is the default fast path
(minires/fast/chunked_conv.py), "minires reference" the readable Conv2d of
minires/functional/conv.py: the price of readability, measured.
"""
import numpy as np

import minires as mr
from minires import functional as F

from . import references as ref
from .harness import (Case, Device, assert_close, load_torch, median_ratio, reference_mode,
                      time_interleaved, timing_table, torch_device, torch_sync)

SHAPES = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8)]
NAIVE_IMAGES = 8   # the naive loop is timed on this many images and scaled to the batch
NAIVE_REPEATS = 3  # a Python loop over ~10^5 elements varies little; 3 rounds are plenty
QUICK_BATCH, QUICK_NAIVE_IMAGES = 8, 1


def channel_major(xp, a):
    """The same values as ``a`` (N, C, ...), laid out as minires's activations: a view of
    (C, N, ...)."""
    return xp.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)


def make_inputs(shape, seed=0):
    """x (N, C, H, W), a He-initialised 3x3 weight, and an upstream gradient, as float32 NumPy."""
    N, C, H, W = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = (rng.standard_normal((C, C, 3, 3)) * np.sqrt(2 / (9 * C))).astype(np.float32)
    gy = rng.standard_normal(shape, dtype=np.float32)
    return x, w, gy


def minires_fn(dev, x, w, gy):
    """A function running one minires conv forward + backward; returns (y, dx, dw)."""
    xt = mr.Tensor(channel_major(dev.xp, dev.put(x)), requires_grad=True)
    wt = mr.Tensor(dev.put(w), requires_grad=True)
    g = channel_major(dev.xp, dev.put(gy))

    def run():
        xt.grad = wt.grad = None
        y = F.conv2d(xt, wt, stride=1, padding=1)
        y.backward(g)
        return y.data, xt.grad, wt.grad
    return run


def classic_fn(dev, x, w, gy):
    x, w, gy = dev.put(x), dev.put(w), dev.put(gy)

    def run():
        y, cache = ref.classic_conv2d(x, w, stride=1, padding=1)
        gx, gw = ref.classic_conv2d_backward(gy, cache)
        return y, gx, gw
    return run


def naive_fn(x, w, gy):
    def run():
        y = ref.conv2d_naive(x, w, stride=1, padding=1)
        gx, gw = ref.conv2d_naive_backward(x, w, gy, stride=1, padding=1)
        return y, gx, gw
    return run


def torch_fn(torch, cfg, x, w, gy):
    dev = torch_device(torch, cfg)
    xt = torch.from_numpy(x).to(dev).requires_grad_()
    wt = torch.from_numpy(w).to(dev).requires_grad_()
    g = torch.from_numpy(gy).to(dev)

    def run():
        xt.grad = wt.grad = None
        y = torch.nn.functional.conv2d(xt, wt, stride=1, padding=1)
        y.backward(g)
        return y, xt.grad, wt.grad
    return run


def check_same(name, got, want, rtol=1e-4):
    for part, a, b in zip(("y", "dx", "dw"), got, want):
        assert_close(f"conv {name} {part}", a, b, rtol)


def check(shape, dev, torch=None, cfg=None, naive_images=1):
    """Assert that every implementation gives minires's y, dx and dw on ``shape``."""
    x, w, gy = make_inputs(shape)
    want = minires_fn(dev, x, w, gy)()
    check_same("minires reference", reference_mode(minires_fn(dev, x, w, gy))(), want)
    check_same("classic im2col", classic_fn(dev, x, w, gy)(), want)
    if torch is not None:
        check_same("torch", torch_fn(torch, cfg, x, w, gy)(), want)
    if dev.name == "cpu" and naive_images:
        n = naive_images
        check_same("naive", naive_fn(x[:n], w, gy[:n])(), minires_fn(dev, x[:n], w, gy[:n])())


def run(cfg):
    dev = Device(cfg.device)
    torch, torch_note = load_torch(cfg)
    shapes = [(QUICK_BATCH,) + s[1:] for s in SHAPES] if cfg.quick else SHAPES
    n_naive = QUICK_NAIVE_IMAGES if cfg.quick else NAIVE_IMAGES
    impls = ["naive (est.)", "classic im2col", "minires reference", "minires", "torch"]
    rows = []
    for shape in shapes:
        N, C, H, W = shape
        work = f"conv 3x3 N{N} {C}ch {H}x{W}, fwd+bwd"
        x, w, gy = make_inputs(shape)
        check(shape, dev, torch, cfg, naive_images=0)  # the naive check is its own warm-up below
        cases = [Case("minires", minires_fn(dev, x, w, gy), dev.sync),
                 Case("minires reference", reference_mode(minires_fn(dev, x, w, gy)), dev.sync),
                 Case("classic im2col", classic_fn(dev, x, w, gy), dev.sync)]
        if torch is not None:
            cases.append(Case("torch", torch_fn(torch, cfg, x, w, gy), torch_sync(torch, cfg)))
        if dev.name == "cpu":
            xs, gys = x[:n_naive], gy[:n_naive]
            check_same("naive", naive_fn(xs, w, gys)(), minires_fn(dev, xs, w, gys)())
            cases.append(Case("naive (est.)", naive_fn(xs, w, gys), repeats=NAIVE_REPEATS,
                              scale=N / n_naive, warmup=0))
        rows.append((work, time_interleaved(cases, cfg.repeats)))
    notes = [f"naive (est.): the four-loop definition timed on {n_naive} image(s), median of "
             f"{NAIVE_REPEATS} runs, multiplied by N / {n_naive} (its cost is linear in N).",
             "Each implementation was first checked against minires (y, dx, dw) on the same "
             "inputs.",
             "minires reference: the readable Conv2d (whole-batch im2col, one GEMM, col2im) that "
             "MINIRES_OPS=reference runs; minires: its fast twin, the default."]
    if dev.name == "gpu":
        notes[0] = ("naive: not run on the GPU (a Python loop per element would time kernel "
                    "launches).")
    if torch_note:
        notes.append(torch_note)
    table = timing_table(f"Convolution ({cfg.device})", rows, impls,
                         ratios=[("minires", "torch"), ("minires reference", "minires"),
                                 ("classic im2col", "torch")],
                         notes=notes)
    goals = [(work, median_ratio(times, "minires", "torch"), 2.0) for work, times in rows]
    return [table], goals
