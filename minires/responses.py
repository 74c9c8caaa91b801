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
(``degradation.train_one``), or reuses the nets of a degradation run (``--from DIR``), and writes
responses.png and responses.json.
"""
import json
import os
import time

import numpy as np

from . import backend, data, degradation, io, machine, nn
from .autograd import Tensor, no_grad


def layer_responses(model, loader, device="cpu"):
    """{layer name: std of its response} in forward order, for every BN that follows a 3x3 conv.

    ``model`` runs in eval mode (its mode is restored); ``loader`` yields (images, labels).
    """
    sums = {}  # bn name -> [sum, sum of squares, count] in float64
    after_3x3 = [False]
    convs = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.weight.shape[-2:] == (3, 3)}
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

    handles = [m.register_forward_hook(conv_hook) for m in convs] + [m.register_forward_hook(bn_hook) for m in norms]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for x, _ in loader:
                model(Tensor(backend.to_device(x, device)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {name: float(np.sqrt(max(s2 / n - (s / n) ** 2, 0.0))) for name, (s, s2, n) in sums.items()}


def plot_responses(stds, path, title=None):
    """Figure 7: std of each 3x3 layer's response by layer index (top) and sorted by magnitude
    (bottom). ``stds``: {net name: [std per layer, in forward order]}; plain nets dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    depths = sorted({degradation.depth_of(n) for n in stds})
    for name, values in stds.items():
        c = f"C{depths.index(degradation.depth_of(name))}"
        style = "--" if name.startswith("plain") else "-"
        label = name.replace("plain", "plain-").replace("resnet", "ResNet-")
        marker = "o" if len(values) == 1 else None
        top.plot(np.arange(1, len(values) + 1), values, style, color=c, lw=1.3, marker=marker, label=label)
        bottom.plot(np.arange(1, len(values) + 1), sorted(values, reverse=True), style, color=c, lw=1.3,
                    marker=marker, label=label)
    top.set_xlabel("layer index (3x3 conv layers, from the input)")
    bottom.set_xlabel("layer index, sorted by magnitude")
    for ax in (top, bottom):
        ax.set_ylabel("std of the response")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    io.save_figure(fig, path, dpi=80)
    return path


def summary(stds):
    """{net: {"mean", "median", "max"} of its layers' stds}: the numbers the paper's claims compare."""
    return {n: {"mean": float(np.mean(v)), "median": float(np.median(v)), "max": float(np.max(v))}
            for n, v in stds.items()}


def run(test_set, *, nets, out, from_dir=None, seed=0, train_set=None, depths=degradation.DEPTHS, train_kwargs=None,
        limit=None, device="cpu", progress=True):
    """Figure 7 for ``nets`` ({name: model}, or None to load or train them); writes PNG + JSON.

    With ``from_dir``, the nets of ``seed`` come from a degradation run's checkpoints
    (:func:`degradation.load_trained`); otherwise, if ``nets`` is None, ``degradation.train_one``
    trains them on ``train_set`` with ``train_kwargs`` (the degradation recipe) and saves them in
    ``out``. The responses are measured on ``test_set`` (its first ``limit`` images). Returns the
    dict written to responses.json.
    """
    names = degradation.net_names(depths)
    start = time.perf_counter()
    if nets is None and from_dir is not None:
        nets = {n: degradation.load_trained(from_dir, n, seed) for n in names}
    elif nets is None:
        nets = {n: degradation.train_one(n, train_set, test_set, seed=seed, device=device, limit=limit, out=out,
                                         progress=progress, **train_kwargs).model for n in names}
    if limit is not None:
        test_set = test_set.subset(np.arange(min(limit, len(test_set))))
    loader = data.DataLoader(test_set, 256)
    stds = {}
    for name, model in nets.items():
        model.to(device)
        stds[name] = layer_responses(model, loader, device)
    values = {n: list(s.values()) for n, s in stds.items()}
    result = {"seed": seed, "from": from_dir, "train": train_kwargs if from_dir is None else None,
              "test_images": len(test_set), "device": device, "machine": machine.describe(),
              "seconds": round(time.perf_counter() - start, 1), "layers": {n: list(s) for n, s in stds.items()},
              "std": values, "summary": summary(values)}
    os.makedirs(out, exist_ok=True)
    json_path = os.path.join(out, "responses.json")
    with io.atomic_write(json_path, "w") as f:
        json.dump(result, f, indent=1)
    result["png"] = plot_responses(values, os.path.join(out, "responses.png"),
                                   title=f"Std of the 3x3 layers' responses (after BN, before addition and ReLU), "
                                         f"{len(test_set)} test images, seed {seed}")
    result["json"] = json_path
    return result
