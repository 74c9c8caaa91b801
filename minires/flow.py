"""Gradient flow: how large dL/dx_l and dL/dW_l are at every layer, plain nets against ResNets.

For a residual block without the ReLU after the sum, x_{l+1} = x_l + F(x_l), and the chain rule
from the last block L down to block l gives

    dL/dx_l = dL/dx_L * prod_{i=l}^{L-1} (I + dF_i/dx_i)
            = dL/dx_L * (I + terms that contain at least one dF_i/dx_i)

so dL/dx_L reaches every x_l through the identity terms, whatever the weights (He et al. 2016,
"Identity mappings in deep residual networks", eq. 5). A plain net has only the product
prod_i dF_i/dx_i of L - l layer Jacobians: its gradient shrinks or grows geometrically with depth.

Measured here with the engine's hooks on any model, no code inside the models:
    - ||dL/dx_l||: a forward hook on each chosen module (by default every residual or plain block)
      puts a backward hook on the tensor it outputs; the input image's gradient is x_0's.
    - ||dL/dW||:   the gradient of every Conv2d weight after the backward.
Norms are L2 norms of the whole gradient array (over the batch, channels and positions).

``python -m minires flow`` does one forward/backward of a random batch through plain and residual
CIFAR nets of several depths and plots both profiles; :class:`EpochRecorder` repeats the
measurement on a fixed batch after every training epoch.
"""
import contextlib
import json
import math
import os

import numpy as np

from . import backend, io, models, nn
from . import functional as F
from .autograd import Tensor

BLOCK_TYPES = (models.BasicBlock, models.Bottleneck)
INITS = ("he", "xavier")


# -- model surgery: the experiment's variants, built from the ordinary models --------------------------

def strip_batch_norm(model):
    """Replace every ``nn.BatchNorm2d`` in ``model`` by ``nn.Identity()``, in place; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    return model


def init_conv_weights(model, scheme="he"):
    """Re-draw every Conv2d weight: "he" N(0, 2/fan_out) (the paper's) or "xavier" N(0, 2/(fan_in+fan_out))."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            else:
                nn.init.xavier_normal_(m.weight)
    return model


def build_model(depth, residual, *, batch_norm=True, init="he", seed=0, num_classes=10, in_channels=3,
                dtype=np.float32):
    """The CIFAR net of ``depth`` = 6n + 2 layers: ResNet (option A shortcuts) or its plain twin.

    ``batch_norm=False`` strips every BN; ``init`` re-draws the conv weights. Seeded: the same
    arguments give the same weights.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth, num_classes=num_classes, shortcut="A" if residual else None,
                                in_channels=in_channels)
    if not batch_norm:
        strip_batch_norm(model)
    init_conv_weights(model, init)
    return model.to(dtype=dtype)


def random_batch(batch_size=16, shape=(3, 32, 32), num_classes=10, seed=0, dtype=np.float32):
    """Images x ~ N(0, 1) of ``shape`` and labels uniform in [0, num_classes): a batch with no signal,
    enough to measure how gradients propagate at initialisation."""
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (batch norm needs a batch), got {batch_size}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size,) + tuple(shape)).astype(dtype)
    return x, rng.integers(0, num_classes, size=batch_size).astype(np.int64)


# -- measuring ------------------------------------------------------------------------------------------

def _l2(grad):
    return float(backend.get_array_module(grad).linalg.norm(grad.ravel()))


class OutputGradients:
    """While active, store dL/d(output) of each module in ``modules`` ({name: module}) during backward.

    A forward hook tags the module's output tensor with a backward hook, which the engine calls
    with the total gradient of that tensor (all its uses summed). ``reduce`` maps the gradient
    array to what is stored (default: its L2 norm; ``reduce=None`` keeps a copy of the array).
    ``grads`` is {name: value} in forward order.
    """

    def __init__(self, modules, reduce=_l2):
        self.modules, self.reduce = dict(modules), reduce
        self.grads, self._handles = {}, []

    def _store(self, name):
        def hook(grad):
            self.grads[name] = grad.copy() if self.reduce is None else self.reduce(grad)
        return hook

    def watch(self, name, tensor):
        """Also record dL/d``tensor`` (e.g. the network's input, a leaf) under ``name``."""
        self.grads.setdefault(name, None)  # keeps forward order even though backward runs in reverse
        self._handles.append(tensor.register_hook(self._store(name)))

    def __enter__(self):
        for name, module in self.modules.items():
            def forward_hook(module, inputs, output, name=name):
                if output.requires_grad:
                    self.watch(name, output)
            self._handles.append(module.register_forward_hook(forward_hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


@contextlib.contextmanager
def _side_effect_free(model, training):
    """Run a measurement in train/eval mode, then restore modes, buffers (BN running statistics)
    and parameter gradients, so that measuring never changes the model being trained."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(m, k, b.copy()) for m in model.modules() for k, b in m._buffers.items() if b is not None]
    grads = [(p, p.grad) for p in model.parameters()]
    model.train(training)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for m, k, b in buffers:
            m.set_buffer(k, b)
        for p, g in grads:
            p.grad = g


def record_gradients(model, x, labels, *, block_types=BLOCK_TYPES, weight_types=(nn.Conv2d,),
                     loss_fn=F.softmax_cross_entropy, training=True):
    """One forward/backward of (x, labels); returns the gradient norms at every layer.

    x: array (N, C, H, W) on the model's device and dtype; labels: int array (N,).
    Returns {"loss": L, "activations": {name: ||dL/dx||}, "weights": {name: ||dL/dW||}} with
    activations = the input ("input") and the output of every ``block_types`` module, and weights
    = every ``weight_types`` module's weight, both in the order the forward pass ran them.
    ``training`` (default True: batch statistics, as during training) sets the mode for the
    measurement; the model's modes, BN running statistics and gradients are restored afterwards.
    """
    if isinstance(x, Tensor):
        x = x.data
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, block_types)}
    weighted = {name: m for name, m in model.named_modules() if isinstance(m, weight_types)}
    ran = []  # weighted modules in the order the forward pass calls them
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: ran.append(name)) for name, m in weighted.items()]
    try:
        with _side_effect_free(model, training), OutputGradients(blocks) as acts:
            for p in model.parameters():
                p.grad = None
            inp = Tensor(x, requires_grad=True)
            acts.watch("input", inp)
            loss = loss_fn(model(inp), labels)
            loss.backward()
            weights = {f"{n}.weight": _l2(weighted[n].weight.grad) for n in dict.fromkeys(ran)
                       if weighted[n].weight.grad is not None}
            activations = {k: v for k, v in acts.grads.items() if v is not None}
    finally:
        for h in hooks:
            h.remove()
    return {"loss": float(loss.item()), "activations": activations, "weights": weights}


def first_last_ratio(norms):
    """||first|| / ||last|| of an ordered {name: norm}: > 1 when gradients grow toward the input."""
    values = list(norms.values())
    if len(values) < 2:
        raise ValueError(f"first_last_ratio needs at least two layers, got {len(values)}")
    return values[0] / values[-1] if values[-1] > 0 else math.inf


class EpochRecorder:
    """Gradient norms on one fixed batch after every epoch: call ``recorder(epoch)`` once per epoch.

    ``records`` is a list of {"epoch": e, **record_gradients(...)}; ``x`` and ``labels`` are kept
    as given (take them from the training set, e.g. the first batch of its loader).
    """

    def __init__(self, model, x, labels, **kwargs):
        self.model, self.x, self.labels, self.kwargs = model, x, labels, kwargs
        self.records = []

    def __call__(self, epoch, *args, **kwargs):  # extra arguments (a history row, ...) are ignored
        x = backend.to_device(self.x, next(iter(self.model.parameters())).device)
        rec = record_gradients(self.model, x, self.labels, **self.kwargs)
        self.records.append({"epoch": int(epoch), **rec})
        return rec


# -- plots ----------------------------------------------------------------------------------------------

def _figure(nrows, ncols, size):
    # Figure() directly, not pyplot: writes PNGs through Agg with no display and no global state.
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_flow(runs, path, title=None):
    """Per-layer ||dL/dW|| (top) and ||dL/dx|| (bottom) against layer index, plain (left) vs residual
    (right), one line per depth; log y, rows share their y range. ``runs`` as in :func:`measure`."""
    import matplotlib
    depths = sorted({r["depth"] for r in runs})
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(depths), 1)))
    fig, axes = _figure(2, 2, (10, 7))
    for col, residual in enumerate((False, True)):
        for r in (r for r in runs if r["residual"] == residual):
            c = colours[depths.index(r["depth"])]
            w = list(r["weights"].values())
            a = list(r["activations"].values())
            axes[0, col].semilogy(np.arange(1, len(w) + 1), w, ".-", color=c, lw=1, ms=3, label=r["name"])
            axes[1, col].semilogy(np.arange(len(a)), a, ".-", color=c, lw=1, ms=3, label=r["name"])
        kind = "residual (ResNet)" if residual else "plain"
        axes[0, col].set_title(f"{kind}: conv weight gradients")
        axes[1, col].set_title(f"{kind}: block output gradients")
        axes[0, col].set_xlabel("conv layer (1 = first, next to the input)")
        axes[1, col].set_xlabel("block (0 = input image)")
    for row, label in enumerate((r"$\|\partial L / \partial W_l\|$", r"$\|\partial L / \partial x_l\|$")):
        axes[row, 0].set_ylabel(label)
        lo = min(ax.get_ylim()[0] for ax in axes[row])
        hi = max(ax.get_ylim()[1] for ax in axes[row])
        for ax in axes[row]:
            ax.set_ylim(lo, hi)
            ax.grid(True, which="major", alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path, dpi=90)
    return path


def plot_flow_over_training(histories, path, title=None):
    """Per-layer ||dL/dW|| profile after each epoch, one panel per net, colour = epoch (log y).

    ``histories``: {net name: EpochRecorder.records}. The panels share their y axis, so the nets'
    gradient magnitudes compare directly; a colour bar maps colour to epoch.
    """
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.ticker import MaxNLocator

    names = list(histories)
    fig, axes = _figure(1, len(names), (3.2 * len(names) + 1.5, 3.8))
    # viridis without its pale-yellow end, which is hard to see on white
    cmap = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, 256)))
    last = max((r["epoch"] for records in histories.values() for r in records), default=1) or 1
    norm = Normalize(0, last)
    for ax, name in zip(axes[0], names):
        for r in histories[name]:
            w = list(r["weights"].values())
            ax.semilogy(np.arange(1, len(w) + 1), w, lw=1, color=cmap(norm(r["epoch"])))
        ax.set_title(name)
        ax.set_xlabel("conv layer (1 = next to the input)")
        ax.grid(True, which="major", alpha=0.3)
    lo = min(ax.get_ylim()[0] for ax in axes[0])
    hi = max(ax.get_ylim()[1] for ax in axes[0])
    for ax in axes[0]:
        ax.set_ylim(lo, hi)
    axes[0, 0].set_ylabel(r"$\|\partial L / \partial W_l\|$ on a fixed batch")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[0, -1], label="epoch",
                 ticks=MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path, dpi=90)
    return path


# -- the experiment and its command ---------------------------------------------------------------------

def _check_depths(depths, what):
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if not depths or bad:
        raise ValueError(f"{what}: each depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), got {list(depths)}")


def measure(depths=(20, 56, 110), *, batch_norm=True, init="he", batch_size=16, seed=0, device="cpu",
            dtype=np.float32, progress=None):
    """For each depth, the plain net and the ResNet at initialisation, on one random batch (same for all).

    Returns a list of runs: {"name", "depth", "residual", "loss", "activations", "weights",
    "weight_ratio" (first / last conv), "activation_ratio" (input / last block)}.
    """
    device = backend.check_device(device)
    _check_depths(depths, "depths")
    x, y = random_batch(batch_size, seed=seed, dtype=dtype)
    x = backend.to_device(x, device)
    runs = []
    for depth in depths:
        for residual in (False, True):
            name = f"{'resnet' if residual else 'plain'}{depth}"
            model = build_model(depth, residual, batch_norm=batch_norm, init=init, seed=seed, dtype=dtype)
            rec = record_gradients(model.to(device), x, y)
            runs.append({"name": name, "depth": depth, "residual": residual, **rec,
                         "weight_ratio": first_last_ratio(rec["weights"]),
                         "activation_ratio": first_last_ratio(rec["activations"])})
            if progress:
                progress(runs[-1])
    return runs


def format_table(runs):
    lines = [f"{'net':>10} {'loss':>7} {'|dL/dW| first':>14} {'last':>9} {'first/last':>11} "
             f"{'|dL/dx| input':>14} {'output':>9} {'input/output':>13}"]
    for r in runs:
        w, a = list(r["weights"].values()), list(r["activations"].values())
        lines.append(f"{r['name']:>10} {r['loss']:7.3f} {w[0]:14.3e} {w[-1]:9.3e} {r['weight_ratio']:11.3g} "
                     f"{a[0]:14.3e} {a[-1]:9.3e} {r['activation_ratio']:13.3g}")
    return "\n".join(lines)


def run(depths=(20, 56, 110), *, batch_norm=True, init="he", batch_size=16, seed=0, device="cpu", out="runs/flow",
        progress=None):
    """Measure (see :func:`measure`), then write flow.json and flow.png in ``out``.

    Returns (runs, png path, json path).
    """
    runs = measure(depths, batch_norm=batch_norm, init=init, batch_size=batch_size, seed=seed, device=device,
                   progress=progress)
    bn = "batch norm in train mode" if batch_norm else "no batch norm"
    settings = {"depths": list(depths), "batch_norm": batch_norm, "init": init, "batch_size": batch_size,
                "seed": seed, "data": "random N(0,1) images, random labels"}
    json_path = os.path.join(out, "flow.json")
    with io.atomic_write(json_path, "w") as f:
        json.dump({"settings": settings, "runs": runs}, f, indent=1)
    png_path = plot_flow(runs, os.path.join(out, "flow.png"),
                         title=f"Gradient norms at initialisation: {bn}, {'He' if init == 'he' else 'Xavier'} init, "
                               f"batch of {batch_size} random images")
    return runs, png_path, json_path
