"""Signal propagation plots (Brock, De and Smith 2021, "Characterizing signal propagation to close
the performance gap in unnormalized ResNets", Fig. 1): how large the residual stream is, block by
block, at initialisation, with batch norm, without it, with SkipInit and with Fixup.

For a batch of activations x of shape (N, C, H, W) at one point of the net, two numbers:

    average squared channel mean   mean_c ( mean_{n,h,w} x[n, c, h, w] )^2
    average channel variance       mean_c  var_{n,h,w} x[n, c, h, w]

taken on the residual stream, at the stem's output and at the output of every block, and the
average channel variance of each residual branch's output F(x_l), the term the block adds to its
shortcut. What to expect, for x_{l+1} = ReLU(F(x_l) + x_l) (De and Smith 2020, sec. 2):

    batch norm  F ends with a BN in train mode (gamma = 1): Var F = 1 whatever x_l, so the stream
                grows by about 1 per block, Var x_l ~ l: linearly with depth; the branch's share
                sqrt(Var F / Var x_l) ~ 1/sqrt(l), and a deep net starts close to the identity
    no norm     He init keeps the size of the branch's input, Var F ~ Var x_l, so every block
                about doubles the stream: Var x_l ~ 2^l, an explosion
    SkipInit    F is multiplied by alpha = 0: the stream does not change from block to block
    Fixup       the last layer of each branch is 0: the same, flat, at initialisation

(The ReLU after the sum clips part of the sum while the stream's mean is small, so the growth is
a little slower than these rates.) Where the shape changes (the first block of stages 2 and 3),
the option-A shortcut subsamples x and appends as many zero channels: the averages over channels
drop there, by about half in the flat nets; the claims are about the blocks within a stage.

Batch-norm nets are measured in train mode (batch statistics, as at the first training step) and
every model is left as it was (``surgery.unchanged``); the nets are the CIFAR layout of
``models.cifar_resnet`` with ``norm`` and ``init`` (``models/normfree.py``) on the digits.
"""
import time

import numpy as np

from .. import backend, data, fast, machine, models
from ..autograd import Tensor, no_grad
from . import nets, surgery
from .output import Output, progress_bar, save_figure

VARIANTS = ("batch_norm", "no_norm", "skipinit", "fixup")
LABELS = {"batch_norm": "batch norm", "no_norm": "no normalisation", "skipinit": "SkipInit",
          "fixup": "Fixup"}
OPTIONS = {"batch_norm": {"norm": "batch", "init": "he"}, "no_norm": {"norm": None, "init": "he"},
           "skipinit": {"norm": None, "init": "skipinit"}, "fixup": {"norm": None, "init": "fixup"}}
DEPTHS = (20, 32, 56, 110)
FLAT = 1e-6  # a stream is flat when no block inside a stage changes its variance by more


def build_net(variant, depth, *, seed=0, num_classes=10, in_channels=1, dtype=np.float32):
    """The CIFAR ResNet of ``depth`` with ``variant``'s normalisation and initialisation (option-A
    shortcuts), seeded: the same seed gives every variant the same He-drawn conv weights."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth, num_classes=num_classes, in_channels=in_channels,
                                **OPTIONS[variant])
    return model.to(dtype=dtype)


def batch(batch_size=128, *, gaussian=False, seed=0, train_set=None):
    """(N, 1, 8, 8) float32 images: the first ``batch_size`` training digits as the training
    loader normalises them (unaugmented), or, with ``gaussian``, N(0, 1) noise of that shape."""
    train_set = train_set if train_set is not None else data.load_digits()[0]
    if gaussian:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch_size,) + train_set.images.shape[1:]).astype(np.float32)
    return next(iter(data.DataLoader(train_set, min(batch_size, len(train_set)))))[0]


# -- measuring ---------------------------------------------------------------------------------

def channel_stats(x):
    """(average squared channel mean, average channel variance) of x (N, C, H, W): the mean over
    channels of (mean over N, H, W)^2 and of the variance over N, H, W (1/M, not 1/(M - 1))."""
    xp = backend.get_array_module(x)
    axes = (0, 2, 3)
    return float((x.mean(axis=axes) ** 2).mean()), float(xp.mean(x.var(axis=axes)))


def measure(model, x, *, training=True):
    """The signal propagation of ``model`` on the batch ``x`` (an array on the model's device).

    Returns {"points": ["stem", "layer1.0", ...], "mean_sq": [...], "variance": [...],
    "branch_variance": [...]}: the residual stream at the stem's output (the first block's input)
    and at every block's output; the branch's output (``block.residual_function``, what the block
    adds to its shortcut) for every block, None at the stem. ``training``: the mode to measure in
    (batch statistics by default); modes, weights and BN statistics are restored after.
    """
    found = surgery.blocks(model)
    if not found:
        raise ValueError(f"measure: {type(model).__name__} has no residual or plain blocks")
    rec = {"points": [], "mean_sq": [], "variance": [], "branch_variance": []}

    def add(point, stream, branch):
        m2, var = channel_stats(stream)
        rec["points"].append(point)
        rec["mean_sq"].append(m2)
        rec["variance"].append(var)
        rec["branch_variance"].append(None if branch is None else channel_stats(branch)[1])

    def hook(block, inputs, output, name):
        if not rec["points"]:
            add("stem", inputs[0].data, None)
        branch = block.residual_function(inputs[0]).data if block.residual else None
        add(name, output.data, branch)

    handles = [b.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
               for name, b in found]
    try:
        with surgery.unchanged(model, training), no_grad():
            model(Tensor(x))
    finally:
        for h in handles:
            h.remove()
    return rec


def segments(points):
    """The stretches of ``points`` between shape changes: [[0, 1, ..., n], [n + 1, ...], ...] (the
    stem with the first stage, then each stage that starts with a shape change)."""
    out = []
    for i, point in enumerate(points):
        stage = 1 if point == "stem" else int(point.split(".")[0].removeprefix("layer"))
        if not out or stage != out[-1][0]:
            out.append((stage, []))
        out[-1][1].append(i)
    return [idx for _, idx in out]


def summarise(rec):
    """The numbers the claims are about, from one :func:`measure` record:

    final_variance       the stream's average channel variance after the last block
    growth_per_block     geometric mean of Var x_{l+1} / Var x_l over the blocks inside stages
    within_stage_change  the largest |Var x_l / Var x_first - 1| inside a stage (0: flat)
    linear_r2            the smallest R^2 of a straight line through Var x_l against l, per stage
    variance_per_block   per stage, (Var x_last - Var x_first) / blocks: the mean growth per block
    moment_per_block     the same for the second moment, mean^2 + Var (what the argument's
                         "+1 per block" is about: the ReLU turns part of the variance into mean)
    branch_share_last    sqrt(Var F / Var x) at the last block (the branch against the stream)
    """
    var = np.asarray(rec["variance"], dtype=np.float64)
    moment = var + np.asarray(rec["mean_sq"], dtype=np.float64)
    ratios, change, r2, per_block, moment_per_block = [], 0.0, [], [], []
    for idx in segments(rec["points"]):
        v = var[idx]
        if len(v) > 1:
            per_block.append(float((v[-1] - v[0]) / (len(v) - 1)))
            moment_per_block.append(float((moment[idx][-1] - moment[idx][0]) / (len(v) - 1)))
        ratios += list(v[1:] / v[:-1])
        change = max(change, float(np.max(np.abs(v / v[0] - 1))))
        if len(v) >= 3:
            fit = np.polyval(np.polyfit(np.arange(len(v)), v, 1), np.arange(len(v)))
            total = float(((v - v.mean()) ** 2).sum())
            r2.append(1 - float(((v - fit) ** 2).sum()) / total if total > 0 else 1.0)
    branch = rec["branch_variance"][-1]
    return {"final_variance": float(var[-1]), "final_mean_sq": float(rec["mean_sq"][-1]),
            "growth_per_block": float(np.exp(np.mean(np.log(ratios)))),
            "within_stage_change": change, "linear_r2": min(r2) if r2 else None,
            "variance_per_block": per_block, "moment_per_block": moment_per_block,
            "branch_share_last": None if branch is None else float(np.sqrt(branch / var[-1]))}


def fit_depths(summaries):
    """How the top of the stream scales with depth D, per variant, by least squares over the
    depths: {"variance_power": b in Var x_final ~ D^b (1 for linear growth), "variance_per_layer":
    exp(c) in Var x_final ~ exp(c D) (the growth per layer of an exponential), "share_power": b in
    share_last ~ D^b (-1/2 for 1/sqrt(depth); None where the branch is 0)}; None for fewer than
    two depths. ``summaries``: {depth: {variant: :func:`summarise` result}}."""
    depths = sorted(summaries)
    if len(depths) < 2:
        return None
    log_d = np.log(depths)
    out = {}
    for variant in summaries[depths[0]]:
        var = np.log([summaries[d][variant]["final_variance"] for d in depths])
        shares = [summaries[d][variant]["branch_share_last"] for d in depths]
        out[variant] = {
            "variance_power": float(np.polyfit(log_d, var, 1)[0]),
            "variance_per_layer": float(np.exp(np.polyfit(depths, var, 1)[0])),
            "share_power": (float(np.polyfit(log_d, np.log(shares), 1)[0])
                            if all(x is not None and x > 0 for x in shares) else None)}
    return out


# -- plots -------------------------------------------------------------------------------------

STYLE = {"batch_norm": ("C0", "-"), "no_norm": ("C3", "-"), "skipinit": ("C2", "-"),
         "fixup": ("k", ":")}


def plot_signal(records, path, title=None):
    """Brock et al.'s Fig. 1 for one depth: the stream's average squared channel mean (left) and
    average channel variance (middle), and the branch's average channel variance (right), against
    the block (0 = the stem's output), one line per variant; log y (a branch at exactly 0 is not
    drawn: SkipInit's and Fixup's). ``records``: {variant: :func:`measure` record}."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    keys = (("mean_sq", "average squared channel mean"), ("variance", "average channel variance"),
            ("branch_variance", "residual branch: average channel variance"))
    for variant, rec in records.items():
        colour, style = STYLE.get(variant, (None, "-"))
        for ax, (key, _) in zip(axes, keys):
            y = np.array([np.nan if v is None or v <= 0 else v for v in rec[key]])
            x = np.arange(len(y))
            label = LABELS.get(variant, variant)
            if key == "branch_variance" and np.all(np.isnan(y[1:])):
                label += " (0 at every block)"
            ax.semilogy(x, y, style, color=colour, lw=1.5, label=label)
    for ax, (_, name) in zip(axes, keys):
        ax.set_title(name)
        ax.set_xlabel("block (0 = stem output)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


def plot_depths(results, path, title=None):
    """Against depth, log-log: the stream's variance after the last block, per variant (left),
    and the last block's branch share sqrt(Var F / Var x) with batch norm (right), with D and
    1/sqrt(D) dashed through the shallowest net. ``results``: {depth: {variant: record}}."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    depths = sorted(results)
    d = np.array(depths, dtype=float)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for variant in results[depths[0]]:
        colour, style = STYLE.get(variant, (None, "-"))
        final = [results[k][variant]["variance"][-1] for k in depths]
        left.loglog(d, final, "o" + style, color=colour, label=LABELS.get(variant, variant))
        if variant == "batch_norm":
            left.loglog(d, final[0] * d / d[0], "--", color=colour, lw=0.8,
                        label="proportional to depth")
    left.set_ylabel("average channel variance after the last block")
    left.set_title("the stream at the top of the net")
    if "batch_norm" in results[depths[0]]:
        share = [np.sqrt(results[k]["batch_norm"]["branch_variance"][-1]
                         / results[k]["batch_norm"]["variance"][-1]) for k in depths]
        right.loglog(d, share, "o-", color=STYLE["batch_norm"][0], label="batch norm")
        right.loglog(d, share[0] * np.sqrt(d[0] / d), "k--", lw=0.8, label="1/sqrt(depth)")
        ticks = np.round(np.geomspace(min(share), max(share), 5), 2)
        right.set_yticks(ticks, [f"{t:g}" for t in ticks])
        right.yaxis.set_minor_locator(NullLocator())
    right.set_ylabel("sqrt(Var F / Var x) at the last block")
    right.set_title("batch norm: the last branch's share of the stream")
    for ax in (left, right):
        ax.set_xlabel("depth (layers)")
        ax.set_xticks(depths, [str(k) for k in depths])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


# -- the table and the run ---------------------------------------------------------------------

def table(summaries):
    """One line per depth and variant, then the fits against depth (:func:`fit_depths`).
    ``summaries``: {depth: {variant: :func:`summarise` result}}."""
    lines = [f"{'depth':>5} {'variant':>17} {'final Var x':>12} {'final mean^2':>13} "
             f"{'growth/block':>13} {'in-stage change':>16} {'linear R^2':>11} {'share':>7}"]
    for depth, by_variant in summaries.items():
        for variant, s in by_variant.items():
            r2 = "-" if s["linear_r2"] is None else f"{s['linear_r2']:.3f}"
            share = "-" if s["branch_share_last"] is None else f"{s['branch_share_last']:.3f}"
            lines.append(f"{depth:>5} {LABELS.get(variant, variant):>17} "
                         f"{s['final_variance']:12.4g} {s['final_mean_sq']:13.4g} "
                         f"{s['growth_per_block']:13.4f} {s['within_stage_change']:16.4g} "
                         f"{r2:>11} {share:>7}")
    fits = fit_depths(summaries)
    if fits:
        lines.append("\nagainst depth D: Var x_final ~ D^b, or ~ g^D; the last branch's share "
                     "~ D^b")
        for variant, f in fits.items():
            share = ("every branch is 0" if f["share_power"] is None
                     else f"share D^{f['share_power']:.3f}")
            lines.append(f"{LABELS.get(variant, variant):>17}: variance D^{f['variance_power']:.3f}"
                         f" or {f['variance_per_layer']:.4f}^D; {share}")
    return "\n".join(lines)


def run(out, *, depths=DEPTHS, variants=VARIANTS, batch_size=128, gaussian=False, seed=0,
        device="cpu", progress=True, log=print):
    """Measure every variant at every depth on one batch, write signal.json, signal.png (the
    deepest net) and, with two depths or more, signal_depth.png to ``out``, print the table;
    returns the JSON's report."""
    start = time.perf_counter()
    device = backend.check_device(device)
    depths, variants = sorted(int(d) for d in depths), tuple(variants)
    train_set, _ = nets.datasets()
    x = backend.to_device(batch(batch_size, gaussian=gaussian, seed=seed, train_set=train_set),
                          device)
    inputs = "N(0, 1) noise" if gaussian else "training digits (normalised, unaugmented)"
    log(f"signal propagation at initialisation: {', '.join(LABELS[v] for v in variants)}; "
        f"depths {', '.join(map(str, depths))}; a batch of {len(x)} {inputs}; seed {seed}")
    results, summaries = {}, {}
    bar = progress_bar(len(depths) * len(variants), "nets", enabled=progress, unit="net")
    for depth in depths:
        results[depth], summaries[depth] = {}, {}
        for variant in variants:
            model = build_net(variant, depth, seed=seed, num_classes=train_set.num_classes,
                              in_channels=train_set.images.shape[1]).to(device)
            results[depth][variant] = measure(model, x)
            summaries[depth][variant] = summarise(results[depth][variant])
            bar.update()
    bar.close()
    seconds = time.perf_counter() - start
    log("\n" + table(summaries) + "\n")
    settings = {"depths": depths, "variants": list(variants), "options": OPTIONS,
                "batch_size": int(len(x)), "inputs": inputs, "seed": seed, "mode": "train",
                "device": device, "seconds": round(seconds, 1),
                "machine": {**machine.describe(), "minires_threads": fast.num_threads()}}
    report = {"settings": settings, "summary": summaries, "depth_fit": fit_depths(summaries),
              "records": results}
    output = Output(out)
    output.json("signal.json", report)
    output.figure("signal.png", plot_signal, results[depths[-1]],
                  title=f"Signal propagation at initialisation, ResNet-{depths[-1]} on a batch of "
                        f"{len(x)} {'N(0, 1) inputs' if gaussian else 'digits'} (seed {seed})")
    if len(depths) > 1:
        output.figure("signal_depth.png", plot_depths, results,
                      title="The stream against depth, and the batch-norm branch's share")
    output.done(seconds, log=log)
    return report
