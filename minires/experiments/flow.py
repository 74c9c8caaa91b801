"""Gradient flow: how large dL/dx_l and dL/dW_l are at every layer, plain nets against ResNets.

For a residual block without the ReLU after the sum, x_{l+1} = x_l + F(x_l), and the chain rule
from the last block L down to block l gives

    dL/dx_l = dL/dx_L * prod_{i=l}^{L-1} (I + dF_i/dx_i)
            = dL/dx_L * (I + terms that contain at least one dF_i/dx_i)

so dL/dx_L reaches every x_l through the identity terms, whatever the weights (He et al. 2016,
"Identity mappings in deep residual networks", eq. 5). A plain net has only the product
prod_i dF_i/dx_i of L - l layer Jacobians: its gradient shrinks or grows geometrically with depth.

Measured here with the engine's hooks on any model, no code inside the models
(``probes.record_gradients``):
    - ||dL/dx_l||: a forward hook on each chosen module (by default every residual or plain block)
      puts a backward hook on the tensor it outputs; the input image's gradient is x_0's.
    - ||dL/dW||:   the gradient of every Conv2d weight after the backward.
Norms are L2 norms of the whole gradient array (over the batch, channels and positions).

``python -m minires flow`` does one forward/backward of a random batch through plain and residual
CIFAR nets of several depths and plots both profiles; ``probes.EpochRecorder`` repeats the
measurement on a fixed batch after every training epoch (the degradation experiment).
"""
import math
import time

import numpy as np

from .. import backend, models, nn
from .output import Output, save_figure
from .probes import record_gradients
from .surgery import strip_batch_norm

INITS = ("he", "xavier")
DEPTHS = (20, 56, 110)


# -- the experiment's nets and batch, built from the ordinary models -------------------------------

def init_conv_weights(model, scheme="he"):
    """Re-draw every Conv2d weight: "he" N(0, 2/fan_out) (the paper's) or "xavier"
    N(0, 2/(fan_in+fan_out))."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            else:
                nn.init.xavier_normal_(m.weight)
    return model


def build_model(depth, residual, *, batch_norm=True, init="he", seed=0, num_classes=10,
                in_channels=3, dtype=np.float32):
    """The CIFAR net of ``depth`` = 6n + 2 layers: ResNet (option A shortcuts) or its plain twin.

    ``batch_norm=False`` strips every BN; ``init`` re-draws the conv weights. Seeded: the same
    arguments give the same weights.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth, num_classes=num_classes,
                                shortcut="A" if residual else None, in_channels=in_channels)
    if not batch_norm:
        strip_batch_norm(model)
    init_conv_weights(model, init)
    return model.to(dtype=dtype)


def random_batch(batch_size=16, shape=(3, 32, 32), num_classes=10, seed=0, dtype=np.float32):
    """Images x ~ N(0, 1) of ``shape`` and labels uniform in [0, num_classes): a batch with no
    signal, enough to measure how gradients propagate at initialisation."""
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (batch norm needs a batch), got {batch_size}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size,) + tuple(shape)).astype(dtype)
    return x, rng.integers(0, num_classes, size=batch_size).astype(np.int64)


def first_last_ratio(norms):
    """||first|| / ||last|| of an ordered {name: norm}: > 1 when gradients grow toward the input."""
    values = list(norms.values())
    if len(values) < 2:
        raise ValueError(f"first_last_ratio needs at least two layers, got {len(values)}")
    return values[0] / values[-1] if values[-1] > 0 else math.inf


def _check_depths(depths, what):
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if not depths or bad:
        raise ValueError(f"{what}: each depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), "
                         f"got {list(depths)}")


# -- measuring ---------------------------------------------------------------------------------

def measure(depths=DEPTHS, *, batch_norm=True, init="he", batch_size=16, seed=0, device="cpu",
            dtype=np.float32, on_run=None):
    """For each depth, the plain net and the ResNet at initialisation, on one random batch (the
    same for all).

    Returns a list of runs: {"name", "depth", "residual", "loss", "activations", "weights",
    "weight_ratio" (first / last conv), "activation_ratio" (input / last block)}. ``on_run``:
    called with each run as soon as it is measured.
    """
    device = backend.check_device(device)
    _check_depths(depths, "depths")
    x, y = random_batch(batch_size, seed=seed, dtype=dtype)
    x = backend.to_device(x, device)
    runs = []
    for depth in depths:
        for residual in (False, True):
            name = f"{'resnet' if residual else 'plain'}{depth}"
            model = build_model(depth, residual, batch_norm=batch_norm, init=init, seed=seed,
                                dtype=dtype)
            rec = record_gradients(model.to(device), x, y)
            runs.append({"name": name, "depth": depth, "residual": residual, **rec,
                         "weight_ratio": first_last_ratio(rec["weights"]),
                         "activation_ratio": first_last_ratio(rec["activations"])})
            if on_run:
                on_run(runs[-1])
    return runs


# -- plots -------------------------------------------------------------------------------------

def plot_flow(runs, path, title=None):
    """Per-layer ||dL/dW|| (top) and ||dL/dx|| (bottom) against layer index, plain (left) vs
    residual (right), one line per depth; log y, rows share their y range. ``runs`` as
    :func:`measure` returns them."""
    import matplotlib
    # Figure() directly, not pyplot: writes PNGs through Agg with no display and no global state.
    from matplotlib.figure import Figure

    depths = sorted({r["depth"] for r in runs})
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(depths), 1)))
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False)
    for col, residual in enumerate((False, True)):
        for r in (r for r in runs if r["residual"] == residual):
            c = colours[depths.index(r["depth"])]
            w = list(r["weights"].values())
            a = list(r["activations"].values())
            axes[0, col].semilogy(np.arange(1, len(w) + 1), w, ".-", color=c, lw=1, ms=3,
                                  label=r["name"])
            axes[1, col].semilogy(np.arange(len(a)), a, ".-", color=c, lw=1, ms=3,
                                  label=r["name"])
        kind = "residual (ResNet)" if residual else "plain"
        axes[0, col].set_title(f"{kind}: conv weight gradients")
        axes[1, col].set_title(f"{kind}: block output gradients")
        axes[0, col].set_xlabel("conv layer (1 = first, next to the input)")
        axes[1, col].set_xlabel("block (0 = input image)")
    labels = (r"$\|\partial L / \partial W_l\|$", r"$\|\partial L / \partial x_l\|$")
    for row, label in enumerate(labels):
        axes[row, 0].set_ylabel(label)
        lo = min(ax.get_ylim()[0] for ax in axes[row])
        hi = max(ax.get_ylim()[1] for ax in axes[row])
        for ax in axes[row]:
            ax.set_ylim(lo, hi)
            ax.grid(True, which="major", alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


# -- the table and the run ---------------------------------------------------------------------

def table(runs):
    """One line per net: the loss, the first and last gradient norms and their ratios."""
    lines = [f"{'net':>10} {'loss':>7} {'|dL/dW| first':>14} {'last':>9} {'first/last':>11} "
             f"{'|dL/dx| input':>14} {'output':>9} {'input/output':>13}"]
    for r in runs:
        w, a = list(r["weights"].values()), list(r["activations"].values())
        lines.append(f"{r['name']:>10} {r['loss']:7.3f} {w[0]:14.3e} {w[-1]:9.3e} "
                     f"{r['weight_ratio']:11.3g} {a[0]:14.3e} {a[-1]:9.3e} "
                     f"{r['activation_ratio']:13.3g}")
    return "\n".join(lines)


def run(out, *, depths=DEPTHS, batch_norm=True, init="he", batch_size=16, seed=0, device="cpu",
        progress=True, log=print):
    """Measure (see :func:`measure`), then write flow.json and flow.png in ``out``.

    Returns the report written to flow.json: {"settings": ..., "runs": [...]}.
    """
    start = time.perf_counter()
    bn = "batch norm in train mode" if batch_norm else "no batch norm"
    log(f"gradient flow at initialisation: {bn}, {init} init, one batch of {batch_size} "
        f"random 3x32x32 images with random labels, seed {seed}")

    def on_run(r):
        log(f"  {r['name']}: done ({time.perf_counter() - start:.1f} s)")

    runs = measure(depths, batch_norm=batch_norm, init=init, batch_size=batch_size, seed=seed,
                   device=device, on_run=on_run if progress else None)
    settings = {"depths": list(depths), "batch_norm": batch_norm, "init": init,
                "batch_size": batch_size, "seed": seed,
                "data": "random N(0,1) images, random labels"}
    report = {"settings": settings, "runs": runs}
    log(table(runs))
    output = Output(out)
    output.json("flow.json", report)
    output.figure("flow.png", plot_flow, runs,
                  title=f"Gradient norms at initialisation: {bn}, "
                        f"{'He' if init == 'he' else 'Xavier'} init, "
                        f"batch of {batch_size} random images")
    output.done(time.perf_counter() - start, log=log)
    return report
