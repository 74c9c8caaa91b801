"""Layer responses (paper sec. 4.2, "Analysis of Layer Responses", Figure 7).

The response of a 3x3 layer is its output after batch norm and before the nonlinearity: for a
residual block's second layer, before the addition of the shortcut and the ReLU. Figure 7 plots
the standard deviation of every such response, over the test images, against the layer index
(top) and sorted by magnitude (bottom). The paper observes that

    1. ResNets' responses are generally smaller than their plain twins' (which supports the
       motivation of sec. 3.1: residual functions are closer to zero than unreferenced ones);
    2. the deeper the ResNet, the smaller its responses: "an individual layer of ResNets tends
       to modify the signal less".

Measured here with forward hooks, no code inside the models: a hook on every 3x3 Conv2d marks
that the next batch norm follows a 3x3 layer, and a hook on every BatchNorm2d then accumulates
the sum and sum of squares of its output (eval mode, over all images, channels and positions),
so std = sqrt(E[r^2] - E[r]^2) over every element of the layer's response.

``python -m minires responses`` trains plain-20/56 and ResNet-20/56 with the degradation recipe
(``nets.train_one`` with ``nets.RECIPES["digits"]``), or reuses the nets of a degradation run
(``--from DIR``), and writes responses.png and responses.json.
"""
import time

import numpy as np

from .. import backend, data, machine, nn
from ..autograd import Tensor, no_grad
from . import nets
from .output import Output, save_figure
from .surgery import unchanged

# The degradation run's depths, so that ``--from DIR`` finds its nets; --quick: its quick run's.
DEPTHS = (20, 56)
QUICK = {"depths": (8, 14), "epochs": 2, "limit": 128}


def layer_responses(model, loader, device="cpu"):
    """{layer name: std of its response} in forward order, for every BN that follows a 3x3 conv.

    ``model`` runs in eval mode (its modes are restored); ``loader`` yields (images, labels).
    """
    sums = {}  # bn name -> [sum, sum of squares, count] in float64
    after_3x3 = [False]
    convs = {m: n for n, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.weight.shape[-2:] == (3, 3)}
    norms = {m: n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}

    def conv_hook(module, inputs, output):
        after_3x3[0] = True

    def bn_hook(module, inputs, output):
        if after_3x3[0]:
            a = output.data.astype(np.float64)
            acc = sums.setdefault(norms[module], [0.0, 0.0, 0])
            acc[0] += float(a.sum())
            acc[1] += float((a * a).sum())
            acc[2] += a.size
        after_3x3[0] = False

    handles = ([m.register_forward_hook(conv_hook) for m in convs]
               + [m.register_forward_hook(bn_hook) for m in norms])
    try:
        with unchanged(model, training=False), no_grad():
            for x, _ in loader:
                model(Tensor(backend.to_device(x, device)))
    finally:
        for h in handles:
            h.remove()
    return {name: float(np.sqrt(max(s2 / n - (s / n) ** 2, 0.0)))
            for name, (s, s2, n) in sums.items()}


def measure(models, loader, device="cpu"):
    """{net name: {layer name: std of its response}} for each net of ``models`` ({name: model},
    on ``device``), over the images of ``loader``; see :func:`layer_responses`."""
    return {name: layer_responses(model, loader, device) for name, model in models.items()}


def summary(stds):
    """{net: {"mean", "median", "max"} of its layers' stds}: the numbers the paper's claims
    compare."""
    return {n: {"mean": float(np.mean(v)), "median": float(np.median(v)), "max": float(np.max(v))}
            for n, v in stds.items()}


def plot_responses(stds, path, title=None):
    """Figure 7: std of each 3x3 layer's response by layer index (top) and sorted by magnitude
    (bottom). ``stds``: {net name: [std per layer, in forward order]}; plain nets dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    depths = sorted({nets.depth_of(n) for n in stds})
    for name, values in stds.items():
        c = f"C{depths.index(nets.depth_of(name))}"
        style = "--" if name.startswith("plain") else "-"
        label = nets.pretty(name)
        marker = "o" if len(values) == 1 else None
        layers = np.arange(1, len(values) + 1)
        top.plot(layers, values, style, color=c, lw=1.3, marker=marker, label=label)
        bottom.plot(layers, sorted(values, reverse=True), style, color=c, lw=1.3,
                    marker=marker, label=label)
    top.set_xlabel("layer index (3x3 conv layers, from the input)")
    bottom.set_xlabel("layer index, sorted by magnitude")
    for ax in (top, bottom):
        ax.set_ylabel("std of the response")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=80, fontsize=10)


def table(report):
    """One line per net: its number of 3x3 layers and the mean, median and max std."""
    lines = [f"{'net':>9} {'layers':>7} {'mean std':>9} {'median':>8} {'max':>7}"]
    for name, s in report["summary"].items():
        lines.append(f"{name:>9} {len(report['std'][name]):7d} {s['mean']:9.3f} "
                     f"{s['median']:8.3f} {s['max']:7.3f}")
    return "\n".join(lines)


def run(out, *, train_set=None, test_set=None, from_dir=None, seed=0, depths=DEPTHS, recipe=None,
        limit=None, device="cpu", progress=True, log=print):
    """Figure 7 for the plain and residual nets of ``depths``; writes responses.json and
    responses.png in ``out``.

    With ``from_dir``, the nets of ``seed`` come from a degradation run's checkpoints
    (``nets.load_trained``); otherwise ``nets.train_one`` trains them on ``train_set`` (its
    ``limit`` random images) with ``recipe`` (default: the digits recipe, the degradation run's;
    its batch capped at the training images) and saves them in ``out``. The responses are
    measured on ``test_set`` (its first ``limit`` images). ``train_set``/``test_set``: None for
    the bundled digits. Returns the report written to responses.json.
    """
    train_set, test_set = nets.datasets(train_set, test_set)
    start = time.perf_counter()
    names = nets.net_names(depths)
    output = Output(out)
    if from_dir is None:
        recipe = recipe or nets.RECIPES["digits"]
        recipe = recipe.at_most(min(len(train_set), limit or len(train_set)))
        log(f"training {', '.join(names)} on the digits with the degradation recipe "
            f"({recipe.epochs} epochs), seed {seed}")
    models = {n: nets.get_net(n, train_set, test_set, recipe, from_dir=from_dir, save_dir=out,
                              seed=seed, device=device, limit=limit, progress=progress)[0]
              for n in names}
    if limit is not None:
        test_set = test_set.subset(np.arange(min(limit, len(test_set))))
    loader = data.DataLoader(test_set, 256)
    stds = measure(models, loader, device)
    values = {n: list(s.values()) for n, s in stds.items()}
    report = {"seed": seed, "from": from_dir,
              "train": recipe.as_dict() if from_dir is None else None,
              "test_images": len(test_set), "device": device, "machine": machine.describe(),
              "seconds": round(time.perf_counter() - start, 1),
              "layers": {n: list(s) for n, s in stds.items()}, "std": values,
              "summary": summary(values)}
    log("\n" + table(report) + "\n")
    output.json("responses.json", report)
    output.figure("responses.png", plot_responses, values,
                  title="Std of the 3x3 layers' responses (after BN, before addition and ReLU), "
                        f"{len(test_set)} test images, seed {seed}")
    output.done(log=log)
    return report
