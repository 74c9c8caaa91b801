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
input of the first block (``first_block_gradient``); the loss is the mean cross-entropy on a
batch of training images with batch norm in training mode (the gradient SGD sees); the model is
left as it was (``surgery.unchanged``).

``run`` measures a ResNet at initialisation and after training and writes paths.json and
paths.png.
"""
import contextlib
import math
import os
import time

import numpy as np

from .. import backend, data, nn
from .. import functional as F
from ..autograd import Tensor
from . import nets, surgery
from .output import Output, progress_bar, save_figure
from .probes import OutputGradients, l2_norm

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


def gated(model, kept):
    """A ``with`` block in which every residual block of ``model`` is a ``PathGate``: through its
    branch if its name is in ``kept``, else through its shortcut only; put back after it
    (``surgery.swapped``)."""
    kept = set(kept)
    blocks = surgery.blocks(model)
    unknown = kept - {n for n, _ in blocks}
    if unknown:
        raise ValueError(f"gated: no block named {sorted(unknown)}; the blocks are "
                         f"{[n for n, _ in blocks]}")
    return surgery.swapped(model, {name: PathGate(block, "branch" if name in kept else "shortcut")
                                   for name, block in blocks})


def first_block_gradient(model, x, labels, kept=None):
    """dL/dy_0 (array), the gradient at the input y_0 of the first block, of one forward/backward
    of (x, labels).

    ``kept``: None for the whole network (every path), or the names of the blocks whose
    residual function the gradient goes through (one path). Batch norm runs in training mode;
    the model's modes, BN running statistics and parameter gradients are restored afterwards
    (``surgery.unchanged``).
    """
    first = model.stages()[0]  # its input is the first block's, gated or not
    context = gated(model, kept) if kept is not None else contextlib.nullcontext()
    with (surgery.unchanged(model, training=True), context,
          OutputGradients({}, reduce=None) as recorder):
        hook = first.register_forward_hook(lambda m, inputs, out: recorder.watch("y0", inputs[0]))
        try:
            loss = F.softmax_cross_entropy(model(Tensor(x)), labels)
        finally:
            hook.remove()
        loss.backward()
    return recorder.grads["y0"]


def path_counts(n):
    """C(n, k) for k = 0..n: how many of the 2^n paths pass through exactly k residual functions."""
    return [math.comb(n, k) for k in range(n + 1)]


def measure(model, x, labels, *, draws=10, seed=0, ks=None, progress=None):
    """Veit's Fig. 6 for one net: for each path length k, the norm of dL/dy_0 through ``draws``
    random paths of length k (each a random set of k blocks, without replacement).

    Returns {"n": blocks, "k": [...], "count": C(n, k), "per_path": mean norm, "per_path_draws":
    [[norms]], "total": count * per_path, "full": ||dL/dy_0|| of the whole net}. k = 0 and k = n
    have a single path, measured once. ``progress``: a callable run after each backward.
    """
    names = [n for n, _ in surgery.blocks(model)]
    n = len(names)
    ks = list(range(n + 1)) if ks is None else list(ks)
    rng = np.random.default_rng(seed)
    per_path_draws = []
    for k in ks:
        if not 0 <= k <= n:
            raise ValueError(f"measure: path lengths are 0..{n}, got {k}")
        norms = []
        for _ in range(1 if k in (0, n) else draws):
            kept = [names[i] for i in rng.choice(n, size=k, replace=False)]
            norms.append(l2_norm(first_block_gradient(model, x, labels, kept)))
            if progress:
                progress()
        per_path_draws.append(norms)
    counts = [math.comb(n, k) for k in ks]
    per_path = [float(np.mean(v)) for v in per_path_draws]
    return {"n": n, "k": ks, "count": counts, "per_path": per_path,
            "per_path_draws": per_path_draws, "total": [c * g for c, g in zip(counts, per_path)],
            "full": l2_norm(first_block_gradient(model, x, labels))}


def effective_paths(result, share=0.9):
    """Where the gradient comes from: the peak k of the total by length, the narrowest range of
    lengths [lo, hi] holding ``share`` of the total, the fraction of all 2^n paths in
    that range, and the gradient-weighted mean path length against the mean length n/2.
    ``result``: a :func:`measure` result with every length 0..n."""
    k, total, n = np.array(result["k"]), np.array(result["total"]), result["n"]
    if len(k) != n + 1:
        raise ValueError("effective_paths needs every path length 0..n measured")
    p = total / total.sum()
    for width in range(n + 1):  # the narrowest window, and among those the one with most gradient
        held, lo = max((p[lo:lo + width + 1].sum(), lo) for lo in range(n + 1 - width))
        if held >= share - 1e-12:
            break
    hi = lo + width
    return {"n": n, "peak_k": int(k[np.argmax(total)]), "share": share, "range": [int(lo), int(hi)],
            "fraction_of_paths": sum(math.comb(n, j) for j in range(lo, hi + 1)) / 2 ** n,
            "gradient_mean_length": float((k * p).sum()), "path_mean_length": n / 2}


# -- the experiment --------------------------------------------------------------------------------

def plot_paths(results, path, title=None):
    """Veit's Fig. 6: (a) the distribution of path lengths, (b) the gradient norm per path by
    length (log), (c) the total gradient norm by length. ``results``: {label: measure result}."""
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
    return save_figure(fig, path, title, dpi=90)


def table(results, summaries):
    """The numbers the command prints: per measured net, where its gradient comes from."""
    lines = [f"{'':>12} {'blocks':>6} {'peak k':>6} {'90% of the gradient':>20} "
             f"{'share of paths':>15} {'mean k (gradient)':>18} {'mean k (paths)':>15} "
             f"{'|dL/dy0| whole net':>19}"]
    for label, s in summaries.items():
        lines.append(f"{label:>12} {s['n']:6d} {s['peak_k']:6d} "
                     f"{'k = %d..%d' % tuple(s['range']):>20} {s['fraction_of_paths']:15.2%} "
                     f"{s['gradient_mean_length']:18.1f} {s['path_mean_length']:15.1f} "
                     f"{results[label]['full']:19.3g}")
    return "\n".join(lines)


def run(out, *, depth=56, recipe=nets.RECIPES["digits"], from_dir=None, draws=10, batch_size=64,
        seed=0, limit=None, train_set=None, test_set=None, device="cpu", progress=True,
        log=print):
    """``measure`` ResNet-``depth`` at initialisation and after training with ``recipe`` (or as
    loaded from ``from_dir``) on the first ``batch_size`` training images; write paths.json and
    paths.png to ``out`` and print the table; returns the report (what paths.json holds).
    ``limit``: train on a random subset of that size. ``train_set``, ``test_set``: None for the
    bundled digits."""
    start = time.perf_counter()
    output = Output(out)
    train_set, test_set = nets.datasets(train_set, test_set)
    recipe = recipe.at_most(limit)
    # The probe: the first training images, unaugmented, as for the gradient-flow records.
    x, labels = next(iter(data.DataLoader(train_set, min(batch_size, len(train_set)))))
    name = f"resnet{depth}"
    # The seed train_one starts from: "init" is the trained net before its training.
    backend.manual_seed(seed)
    initial = nets.build_net(name, train_set.num_classes, train_set.images.shape[1])
    trained, info = nets.get_net(name, train_set, test_set, recipe, from_dir=from_dir,
                                 save_dir=out, seed=seed, device=device, limit=limit,
                                 progress=progress)
    initial.to(device)
    x = backend.to_device(x, device)
    results, summaries = {}, {}
    for label, model in (("init", initial), ("trained", trained)):
        n = len(surgery.blocks(model))
        bar = progress_bar(2 + (n - 1) * draws, f"paths {label}", enabled=progress,
                           unit="backward")
        results[label] = measure(model, x, labels, draws=draws, seed=seed, progress=bar.update)
        bar.close()
        summaries[label] = effective_paths(results[label])
    seconds = time.perf_counter() - start
    settings = {"data": train_set.name, "net": name, "blocks": results["init"]["n"],
                "batch_size": len(labels), "draws": draws, "seed": seed, "device": device,
                "limit": limit, "from": from_dir, "bn_mode": "train (batch statistics)",
                "input": "the input of the first block", "recipe": recipe.as_dict(),
                "training": info, "seconds": round(seconds, 1)}
    report = {"settings": settings, "results": results, "summary": summaries}
    output.json("paths.json", report)
    output.figure("paths.png", plot_paths, results,
                  title=f"Gradient by path length in ResNet-{depth} ({results['init']['n']} "
                        f"blocks), {len(labels)} training digits, {draws} random paths per length")
    log("\n" + table(results, summaries) + "\n")
    ckpt = info.get("checkpoint")
    output.done(seconds, extra=f"and the trained net ({os.path.basename(ckpt)})" if ckpt else None,
                log=log)
    return report
