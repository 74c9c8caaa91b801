"""Gradient by path length (Veit, Wilber and Belongie, 2016, "Residual networks behave like
ensembles of relatively shallow networks", NeurIPS, sec. 5, Fig. 6).

Unroll the n blocks of a ResNet, y_{i+1} = ReLU(F_i(y_i) + s_i(y_i)) with s_i the shortcut. Once
the forward pass has fixed the ReLU masks, the backward pass is linear in the upstream gradient:

    dL/dy_i = (dF_i/dy_i + ds_i/dy_i)^T (m_i * dL/dy_{i+1})          (m_i: the ReLU's 0/1 mask)

and expanding the product over the n blocks gives dL/dy_0 as a sum of 2^n terms, one per *path*:
a choice, at every block, of the residual function F_i or the shortcut s_i. A path of length k
goes through k residual functions; there are C(n, k) of them, so path lengths follow a binomial
distribution with mean n/2.

Veit's measurement (sec. 5): run the forward pass as usual; in the backward pass pick k blocks
at random and let the gradient through only their residual function, and only through the
shortcut of every other block. What reaches the input is the gradient of that single path.
Here ``PathGate`` does this with a stop-gradient on the other half of each block (the forward
values are unchanged). Repeated for several random sets of k blocks, the mean norm is the
gradient per path of length k; times C(n, k) it is the total gradient that paths of length k
carry (norms, so an upper bound on the norm of their sum: Veit's measure). The input is the
input of the first block; the loss is the mean cross-entropy on a batch of training images with
batch norm in training mode (the gradient SGD sees); BN statistics are restored afterwards.

``run`` measures a ResNet at initialisation and after training and writes paths.png and paths.json.
"""
import contextlib
import json
import math
import os
import time

import numpy as np

from . import backend, data, degradation, flow, io, lesion, nn
from . import functional as F
from .autograd import Tensor

THROUGH = ("branch", "shortcut", "both")


class PathGate(nn.Module):
    """A residual block whose forward is unchanged, y = ReLU(F(x) + shortcut(x)), but whose
    backward goes through one half only:

        through="branch":    y = ReLU(F(x) + sg(shortcut(x)))
        through="shortcut":  y = ReLU(sg(F(x)) + shortcut(x))
        through="both":      y = ReLU(F(x) + shortcut(x))           (the block itself)

    sg = stop-gradient (``Tensor.detach``): the same values, no gradient behind them.
    """

    def __init__(self, block, through):
        super().__init__()
        if not block.residual:
            raise ValueError("PathGate: a plain block has no shortcut, so only one path")
        if through not in THROUGH:
            raise ValueError(f"PathGate: through must be one of {THROUGH}, got {through!r}")
        self.block, self.through = block, through

    def forward(self, x):
        f, s = self.block.residual_function(x), self.block.shortcut(x)
        if self.through == "branch":
            s = s.detach()
        elif self.through == "shortcut":
            f = f.detach()
        return self.block.relu(f + s)


@contextlib.contextmanager
def gated(model, kept):
    """Within the block, every residual block of ``model`` is a ``PathGate``: through its branch
    if its name is in ``kept``, else through its shortcut only. Restored afterwards."""
    kept = set(kept)
    names = [n for n, _ in lesion.blocks(model)]
    unknown = kept - set(names)
    if unknown:
        raise ValueError(f"gated: no block named {sorted(unknown)}; the blocks are {names}")
    parents = dict(model.named_modules())
    swapped = []
    try:
        for name, block in lesion.blocks(model):
            parent_name, _, child = name.rpartition(".")
            parent = parents[parent_name] if parent_name else model
            setattr(parent, child, PathGate(block, "branch" if name in kept else "shortcut"))
            swapped.append((parent, child, block))
        yield model
    finally:
        for parent, child, block in swapped:
            setattr(parent, child, block)


def input_gradient(model, x, labels, kept=None):
    """dL/dy_0 (array, the input of the first block) of one forward/backward of (x, labels).

    ``kept``: None for the whole network (every path), or the names of the blocks whose
    residual function the gradient goes through (one path). Batch norm runs in training mode;
    the model's mode, BN running statistics and parameter gradients are restored afterwards.
    """
    first = model.stages()[0]  # its input is the first block's, gated or not
    saved = model.state_dict()
    was_training = model.training
    grads = [(p, p.grad) for p in model.parameters()]
    context = gated(model, kept) if kept is not None else contextlib.nullcontext()
    try:
        model.train()
        with context, flow.OutputGradients({}, reduce=None) as recorder:
            hook = first.register_forward_hook(lambda m, inputs, out: recorder.watch("y0", inputs[0]))
            try:
                loss = F.softmax_cross_entropy(model(Tensor(x)), labels)
            finally:
                hook.remove()
            loss.backward()
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
        for p, g in grads:
            p.grad = g
    return recorder.grads["y0"]


def _norm(grad):
    return float(backend.get_array_module(grad).linalg.norm(grad.ravel()))


def path_counts(n):
    """C(n, k) for k = 0..n: how many of the 2^n paths pass through exactly k residual functions."""
    return [math.comb(n, k) for k in range(n + 1)]


def gradient_by_length(model, x, labels, *, draws=10, seed=0, ks=None, progress=None):
    """Veit's Fig. 6 for one net: for each path length k, the norm of dL/dy_0 through ``draws``
    random paths of length k (each a random set of k blocks, without replacement).

    Returns {"n": blocks, "k": [...], "count": C(n, k), "per_path": mean norm, "per_path_draws":
    [[norms]], "total": count * per_path, "full": ||dL/dy_0|| of the whole net}. k = 0 and k = n
    have a single path, measured once.
    """
    names = [n for n, _ in lesion.blocks(model)]
    n = len(names)
    ks = list(range(n + 1)) if ks is None else list(ks)
    rng = np.random.default_rng(seed)
    per_path_draws = []
    for k in ks:
        if not 0 <= k <= n:
            raise ValueError(f"gradient_by_length: path lengths are 0..{n}, got {k}")
        norms = []
        for _ in range(1 if k in (0, n) else draws):
            kept = [names[i] for i in rng.choice(n, size=k, replace=False)]
            norms.append(_norm(input_gradient(model, x, labels, kept)))
            if progress:
                progress()
        per_path_draws.append(norms)
    counts = [math.comb(n, k) for k in ks]
    per_path = [float(np.mean(v)) for v in per_path_draws]
    return {"n": n, "k": ks, "count": counts, "per_path": per_path, "per_path_draws": per_path_draws,
            "total": [c * g for c, g in zip(counts, per_path)],
            "full": _norm(input_gradient(model, x, labels))}


def effective_paths(result, share=0.9):
    """Where the gradient comes from: the peak k of the total by length, the narrowest range of
    lengths [lo, hi] holding ``share`` of the total, the fraction of all 2^n paths in
    that range, and the gradient-weighted mean path length against the mean length n/2."""
    k, total, n = np.array(result["k"]), np.array(result["total"]), result["n"]
    if len(k) != n + 1:
        raise ValueError("effective_paths needs every path length 0..n measured")
    p = total / total.sum()
    for width in range(n + 1):  # the narrowest window, and among those the one with the most gradient
        held, lo = max((p[lo:lo + width + 1].sum(), lo) for lo in range(n + 1 - width))
        if held >= share - 1e-12:
            break
    hi = lo + width
    return {"n": n, "peak_k": int(k[np.argmax(total)]), "share": share, "range": [int(lo), int(hi)],
            "fraction_of_paths": sum(math.comb(n, j) for j in range(lo, hi + 1)) / 2 ** n,
            "gradient_mean_length": float((k * p).sum()), "path_mean_length": n / 2}


# -- the experiment -------------------------------------------------------------------------------------

def plot_paths(results, path, title=None):
    """Veit's Fig. 6: (a) the distribution of path lengths, (b) the gradient norm per path by
    length (log), (c) the total gradient norm by length. ``results``: {label: gradient_by_length}."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    first = next(iter(results.values()))
    n = first["n"]
    a.bar(range(n + 1), [m / 2 ** n for m in path_counts(n)], color="grey")
    a.set_title(f"(a) path lengths: C({n}, k) / 2^{n}")
    a.set_xlabel("path length k (residual functions on the path)")
    a.set_ylabel("fraction of paths")
    for i, (label, r) in enumerate(results.items()):
        col = f"C{i}"
        for k, draws in zip(r["k"], r["per_path_draws"]):
            b.semilogy([k] * len(draws), draws, ".", color=col, alpha=0.3, ms=3)
        b.semilogy(r["k"], r["per_path"], "-", color=col, lw=2, label=label)
        total = np.array(r["total"])
        c.plot(r["k"], total / total.sum(), ".-", color=col, lw=1.5,
               label=f"{label}: peak k = {r['k'][int(np.argmax(total))]}")
    b.set_title("(b) gradient norm at the input, per path")
    b.set_xlabel("path length k")
    b.set_ylabel(r"$\|\partial L / \partial y_0\|$ through one path")
    c.set_title("(c) total: C(n, k) x per path (as a share)")
    c.set_xlabel("path length k")
    c.set_ylabel("share of the total gradient norm")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    b.legend(fontsize=8)
    c.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path, dpi=90)
    return path


def format_table(results, summaries):
    lines = [f"{'':>12} {'blocks':>6} {'peak k':>6} {'90% of the gradient':>20} {'share of paths':>15} "
             f"{'mean k (gradient)':>18} {'mean k (paths)':>15} {'|dL/dy0| whole net':>19}"]
    for label, s in summaries.items():
        lines.append(f"{label:>12} {s['n']:6d} {s['peak_k']:6d} {'k = %d..%d' % tuple(s['range']):>20} "
                     f"{s['fraction_of_paths']:15.2%} {s['gradient_mean_length']:18.1f} {s['path_mean_length']:15.1f} "
                     f"{results[label]['full']:19.3g}")
    return "\n".join(lines)


def run(*, depth=56, from_dir=None, epochs=None, draws=10, batch_size=64, seed=0, device="cpu", out="runs/paths",
        limit=None, progress=True):
    """Measure ``gradient_by_length`` on ResNet-``depth`` at initialisation and after training (or
    loaded from ``from_dir``); write paths.png and paths.json to ``out``; returns the report."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    train_set, test_set = data.load_digits()
    r = lesion.recipe(epochs)
    if limit is not None:
        r["batch_size"] = min(r["batch_size"], limit)
    # The probe: the first training images, unaugmented, as for the gradient-flow records.
    probe = data.DataLoader(train_set, min(batch_size, len(train_set)))
    x, labels = next(iter(probe))
    name = f"resnet{depth}"
    backend.manual_seed(seed)  # the seed train_net starts from: "init" is the trained net before training
    initial = degradation.build_net(name, train_set.num_classes, train_set.images.shape[1])
    trained, info = lesion.get_net(name, train_set, test_set, from_dir=from_dir, save_dir=out, recipe=r, seed=seed,
                                   device=device, limit=limit, progress=progress)
    initial.to(device)
    x = backend.to_device(x, device)
    results, summaries = {}, {}
    for label, model in (("init", initial), ("trained", trained)):
        n = len(lesion.blocks(model))
        bar = tqdm(total=2 + (n - 1) * draws, desc=f"paths {label}", unit="backward", disable=not progress,
                   dynamic_ncols=True)
        results[label] = gradient_by_length(model, x, labels, draws=draws, seed=seed, progress=bar.update)
        bar.close()
        summaries[label] = effective_paths(results[label])
    seconds = time.perf_counter() - start
    settings = {"data": "digits", "net": name, "blocks": results["init"]["n"], "batch_size": len(labels),
                "draws": draws, "seed": seed, "device": device, "limit": limit, "from": from_dir,
                "bn_mode": "train (batch statistics)", "input": "the input of the first block",
                "recipe": r, "training": info, "seconds": round(seconds, 1)}
    os.makedirs(out, exist_ok=True)
    report = {"settings": settings, "results": results, "summary": summaries}
    json_path = os.path.join(out, "paths.json")
    with io.atomic_write(json_path, "w") as f:
        json.dump(report, f, indent=1)
    png_path = plot_paths(results, os.path.join(out, "paths.png"),
                          title=f"Gradient by path length in ResNet-{depth} ({results['init']['n']} blocks), "
                                f"{len(labels)} training digits, {draws} random paths per length")
    report["paths"] = {"png": png_path, "json": json_path}
    return report
