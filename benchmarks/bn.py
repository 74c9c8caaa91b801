"""Batch norm (training mode), forward + backward: DeZero-style composition, minires, PyTorch.

The shape N128 16ch 32x32: the first stage of a CIFAR ResNet. One call = forward with
batch statistics (running statistics updated), then backward with a fixed random upstream
gradient, giving dx, dgamma and dbeta. As for the convolution, minires gets channel-major x and
dy (its own activations' layout); the others get C-contiguous NCHW.

Three minires columns: "minires" (the default fast path, minires/fast/blocked_norm.py, whose
per-channel sums are pairwise), "minires einsum sums" (the same code with the variance and dgamma
summed by einsum, a running sum: what the pairwise sums cost) and "minires reference" (the readable
BatchNorm of minires/functional/norm.py). A note gives each one's float32 error against float64.
"""
import numpy as np

import minires as mr
from minires import functional as F

from minires.fast.blocked_norm import BlockedBatchNorm

from . import references as ref
from .conv import channel_major
from .harness import (Case, Device, assert_close, load_torch, median_ratio, reference_mode,
                      time_interleaved, timing_table, to_numpy, torch_device, torch_sync)

SHAPES = [(128, 16, 32, 32)]
QUICK_SHAPES = [(8, 16, 32, 32)]


def make_inputs(shape, seed=0):
    """x (N, C, H, W) off zero mean and unit scale, gamma, beta, and an upstream gradient."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    gy = rng.standard_normal(shape, dtype=np.float32)
    return x, gamma, beta, gy


class EinsumBatchNorm(BlockedBatchNorm):
    """minires's fast batch norm with its per-channel sums of products by einsum (a running sum)."""

    @staticmethod
    def row_dots(a, b):
        return mr.backend.get_array_module(a).einsum("cm,cm->c", a, b)


def minires_fn(dev, x, gamma, beta, gy, op=None):
    """One minires batch-norm forward + backward; returns (y, dx, dgamma, dbeta).

    ``op``: a batch-norm Function class to call directly (default: ``F.batch_norm``).
    """
    C = x.shape[1]
    xt = mr.Tensor(channel_major(dev.xp, dev.put(x)), requires_grad=True)
    gt = mr.Tensor(dev.put(gamma), requires_grad=True)
    bt = mr.Tensor(dev.put(beta), requires_grad=True)
    rm, rv = dev.xp.zeros(C, dtype=x.dtype), dev.xp.ones(C, dtype=x.dtype)
    g = channel_major(dev.xp, dev.put(gy))

    def run():
        xt.grad = gt.grad = bt.grad = None
        if op is None:
            y = F.batch_norm(xt, gt, bt, rm, rv, training=True)
        else:
            y = op(True, rm, rv, 0.1, 1e-5)(xt, gt, bt)
        y.backward(g)
        return y.data, xt.grad, gt.grad, bt.grad
    return run


def dezero_fn(dev, x, gamma, beta, gy):
    C = x.shape[1]
    x, gamma, beta, gy = dev.put(x), dev.put(gamma), dev.put(beta), dev.put(gy)
    rm, rv = dev.xp.zeros(C, dtype=np.float32), dev.xp.ones(C, dtype=np.float32)

    def run():
        y, cache = ref.dezero_batch_norm(x, gamma, beta, rm, rv)
        return (y,) + ref.dezero_batch_norm_backward(gy, cache)
    return run


def torch_fn(torch, cfg, x, gamma, beta, gy):
    dev = torch_device(torch, cfg)
    xt = torch.from_numpy(x).to(dev).requires_grad_()
    gt = torch.from_numpy(gamma).to(dev).requires_grad_()
    bt = torch.from_numpy(beta).to(dev).requires_grad_()
    rm, rv = torch.zeros(x.shape[1], device=dev), torch.ones(x.shape[1], device=dev)
    g = torch.from_numpy(gy).to(dev)

    def run():
        xt.grad = gt.grad = bt.grad = None
        y = torch.nn.functional.batch_norm(xt, rm, rv, gt, bt, training=True)
        y.backward(g)
        return y, xt.grad, gt.grad, bt.grad
    return run


def check(shape, dev, torch=None, cfg=None):
    """Assert that every implementation gives minires's y, dx, dgamma and dbeta."""
    args = make_inputs(shape)
    want = minires_fn(dev, *args)()
    others = [("DeZero-style", dezero_fn(dev, *args)),
              ("minires reference", reference_mode(minires_fn(dev, *args))),
              ("minires einsum sums", minires_fn(dev, *args, op=EinsumBatchNorm))]
    if torch is not None:
        others.append(("torch", torch_fn(torch, cfg, *args)))
    for name, fn in others:
        for part, a, b in zip(("y", "dx", "dgamma", "dbeta"), fn(), want):
            # dx is a small difference of large terms (g - mean(g) - xhat * mean(g * xhat)):
            # float32 leaves it a few 1e-5 of its scale apart between summation orders.
            assert_close(f"batch norm {name} {part}", a, b, rtol=1e-3 if part == "dx" else 1e-4)


def float32_errors(dev, args):
    """{column: median over elements of |dx - dx_float64| / max|dx_float64|}, dx_float64 from the
    reference."""
    with mr.reference_ops():
        want = to_numpy(minires_fn(Device("cpu"), *(a.astype(np.float64) for a in args))()[1])
    fns = {"minires": minires_fn(dev, *args),
           "minires einsum sums": minires_fn(dev, *args, op=EinsumBatchNorm),
           "minires reference": reference_mode(minires_fn(dev, *args))}
    return {name: float(np.median(np.abs(to_numpy(fn()[1]) - want))) / float(np.max(np.abs(want)))
            for name, fn in fns.items()}


def run(cfg):
    dev = Device(cfg.device)
    torch, torch_note = load_torch(cfg)
    impls = ["DeZero-style", "minires reference", "minires einsum sums", "minires", "torch"]
    errors = []
    rows = []
    for shape in QUICK_SHAPES if cfg.quick else SHAPES:
        N, C, H, W = shape
        args = make_inputs(shape)
        check(shape, dev, torch, cfg)
        cases = [Case("minires", minires_fn(dev, *args), dev.sync),
                 Case("minires reference", reference_mode(minires_fn(dev, *args)), dev.sync),
                 Case("minires einsum sums", minires_fn(dev, *args, op=EinsumBatchNorm), dev.sync),
                 Case("DeZero-style", dezero_fn(dev, *args), dev.sync)]
        if torch is not None:
            cases.append(Case("torch", torch_fn(torch, cfg, *args), torch_sync(torch, cfg)))
        work = f"batch norm N{N} {C}ch {H}x{W}, fwd+bwd"
        rows.append((work, time_interleaved(cases, cfg.repeats)))
        errors.append((work, float32_errors(dev, args)))
    notes = ["Training mode (batch statistics, running statistics updated); each implementation "
             "was first checked against minires (y, dx, dgamma, dbeta)."]
    for work, errs in errors:
        notes.append(f"float32 error of dx against float64 ({work}; median |error| / max |dx|): "
                     + ", ".join(f"{name} {e:.1e}" for name, e in errs.items()))
    if torch_note:
        notes.append(torch_note)
    table = timing_table(f"Batch norm ({cfg.device})", rows, impls,
                         ratios=[("minires", "torch"), ("minires", "minires einsum sums"),
                                 ("minires reference", "minires"), ("DeZero-style", "torch")],
                         notes=notes)
    goals = [(work, median_ratio(times, "minires", "torch"), 2.0) for work, times in rows]
    return [table], goals
