"""How many CuPy calls one training step makes, before and after the fused GPU kernels.

    PYTHONPATH=tests/fake_cupy python -m benchmarks.gpu_calls [--depths 20 56 110] [--json PATH]

On a GPU each CuPy call costs a few microseconds of Python and launch overhead whatever its
size, so for CIFAR-sized batches the number of calls, not the arithmetic, sets a floor under the
step time. The strict CuPy stand-in (``tests/fake_cupy``) counts every call into CuPy's API from
outside it: ``calls`` (all of them), ``kernels`` (those that launch a kernel on a real GPU: not
views, metadata or transfers), ``layout copies`` (a ``reshape`` that had to copy: a weight
flipped for a convolution's input gradient, or an activation gradient that lost its
channel-major layout, ``functional/layout.py``), ``to device`` (host-to-device copies) and
``reads`` (device-to-host copies, each a synchronisation).

The step is ``train``'s (``minires/train/loop.py``): the batch goes up as float32, the loss
takes the labels on the host, the accuracy moves them up again. "before" is the code as it is;
"after" applies the guard lines that route the GPU path to ``minires/fast/gpu_kernels.py`` (the
block forwards, batch norm, ReLU and SGD), patched in here for the count (``after()``). A
benchmark, not a test; no GPU needed, and no timing: the stand-in runs NumPy on the CPU.
"""
import argparse
import contextlib
import json
import sys

import numpy as np


def step_fn(depth, batch, device="gpu"):
    import minires as mr
    from minires import backend, functional as F, models, optim

    backend.manual_seed(0)
    model = models.cifar_resnet(depth).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def step():  # the body of train's _train_epoch, for one batch
        logits = model(mr.Tensor(backend.to_device(x, device)))
        loss = F.softmax_cross_entropy(logits, y)
        correct = (logits.data.argmax(axis=1) == backend.to_device(y, device)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, correct
    return step


@contextlib.contextmanager
def after():
    """The GPU guard lines, patched in as they would read in their files:

        BasicBlock.forward    if gpu_kernels.applies(x.data) and gpu_kernels.fusable(self):
                                  return gpu_kernels.basic_block(self, x)
        Bottleneck.forward    (the same, gpu_kernels.bottleneck)
        SGD.step              if gpu_kernels.applies(*(p.data for p in self.params)):
                                  return gpu_kernels.sgd_step(self)
        BlockedBatchNorm      if backend.is_gpu_array(x): return gpu_kernels.batch_norm_forward(
                              self, x, gamma, beta)   (backward: batch_norm_backward(self, gy))
        BlockedReLU           if backend.is_gpu_array(x): return gpu_kernels.relu_forward(self, x)
                              (backward: relu_backward(self, gy))
    """
    from unittest import mock

    from minires import backend, models, optim
    from minires.fast import gpu_kernels as gk
    from minires.fast.blocked_norm import BlockedBatchNorm
    from minires.fast.blocked_relu import BlockedReLU

    def guard(cls, name, takes, twin):
        original = getattr(cls, name)

        def method(self, *args):
            return twin(self, *args) if takes(self, *args) else original(self, *args)
        return mock.patch.object(cls, name, method)

    block = lambda self, x: gk.applies(x.data) and gk.fusable(self)  # noqa: E731
    on_gpu = lambda self, a, *rest: backend.is_gpu_array(a)  # noqa: E731
    patches = [
        guard(models.BasicBlock, "forward", block, gk.basic_block),
        guard(models.Bottleneck, "forward", block, gk.bottleneck),
        guard(optim.SGD, "step", lambda self: gk.applies(*(p.data for p in self.params)),
              gk.sgd_step),
        guard(BlockedBatchNorm, "forward", on_gpu, gk.batch_norm_forward),
        guard(BlockedBatchNorm, "backward", on_gpu, gk.batch_norm_backward),
        guard(BlockedReLU, "forward", on_gpu, gk.relu_forward),
        guard(BlockedReLU, "backward", on_gpu, gk.relu_backward),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        yield


def count(depth, batch):
    """{"calls", "kernels", ...} of one step (after one warm-up step), and the busiest names."""
    from cupy import _core

    step = step_fn(depth, batch)
    step()
    _core.reset_counts()
    step()
    calls, kernels = dict(_core.CALLS), dict(_core.KERNELS)
    return {
        "calls": sum(calls.values()),
        "kernels": sum(kernels.values()),
        "layout copies": kernels.get("reshape", 0),
        "to device": calls.get("asarray from host", 0) + calls.get("array from host", 0),
        "reads": calls.get("get", 0) + calls.get("item", 0),
        "top": sorted(calls.items(), key=lambda kv: -kv[1])[:12],
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_calls",
                                description="CuPy calls per training step, on the stand-in")
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    p.add_argument("--batch", type=int, default=8,
                   help="images per step (the count does not depend on it; default 8)")
    p.add_argument("--json", metavar="PATH", help="also write the counts as JSON")
    args = p.parse_args(argv)
    import cupy
    if not getattr(cupy, "FAKE", False):
        raise SystemExit("gpu_calls counts with the CuPy stand-in: "
                         "PYTHONPATH=tests/fake_cupy python -m benchmarks.gpu_calls")
    rows, raw = [], {}
    for depth in args.depths:
        before = count(depth, args.batch)
        with after():
            fused = count(depth, args.batch)
        raw[f"resnet{depth}"] = {"before": before, "after": fused}
        for what in ("calls", "kernels", "layout copies", "to device", "reads"):
            rows.append((f"ResNet-{depth}", what, before[what], fused[what]))
    print(f"### CuPy calls per training step (batch {args.batch}, CuPy stand-in)\n")
    print("| net | counted | before | after | after/before |\n|---|---|---:|---:|---:|")
    for net, what, b, a in rows:
        print(f"| {net} | {what} | {b:,} | {a:,} | {a / b:.2f} |" if b else
              f"| {net} | {what} | {b:,} | {a:,} | — |")
    for net, r in raw.items():
        top = ", ".join(f"{n} {c}" for n, c in r["before"]["top"][:8])
        print(f"\n- {net} before, busiest: {top}")
        top = ", ".join(f"{n} {c}" for n, c in r["after"]["top"][:8])
        print(f"- {net} after, busiest: {top}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
