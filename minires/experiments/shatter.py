"""Shattered gradients (Balduzzi, Frean, Leary, Lewis, Ma, McWilliams, 2017, "The shattered
gradients problem: if resnets are the answer, then what is the question?", ICML; Fig. 1).

The paper's setting: a scalar input x at 256 evenly spaced points in [-2, 2], networks of 200
rectifier units per layer, a scalar output y, He initialisation, no training. For each point we
take the derivative dy/dx and look at it as a signal along x:

    feedforward     h_1 = ReLU(W_1 x + b_1),  h_{l+1} = ReLU(W_{l+1} h_l + b_{l+1})
    feedforward_bn  h_1 = ReLU(BN(W_1 x)),    h_{l+1} = ReLU(BN(W_{l+1} h_l))
    resnet          h_0 = W_0 x + b_0,        h_{l+1} = h_l + W_{l+1} ReLU(h_l) + b_{l+1}
    resnet_bn       h_0 = W_0 x + b_0,        h_{l+1} = h_l + W_{l+1} ReLU(BN(h_l))
    resnet_scaled   h_0 = W_0 x + b_0,        h_{l+1} = sqrt(1/2) h_l + W_{l+1} ReLU(h_l) + b_{l+1}
    output          y = w^T h_L + b           (depth L = the number of rectifier layers)

A one-layer net's gradient, dy/dx = sum_j w_j W_1j [W_1j x + b_1j > 0], is a step function: it
jumps where a unit switches on or off, and is constant between. With depth the switches of every
layer compound: a feedforward net's gradient loses its correlation between neighbouring points
exponentially fast and becomes white noise, while a ResNet's, mostly carried by the identities,
stays correlated like brown noise (a random walk): the paper's Fig. 1 and its analysis in sec. 3.

Measured here: the autocorrelation of the gradient along x,

    r(k) = sum_i (g_i - mean g)(g_{i+k} - mean g) / sum_i (g_i - mean g)^2,      lag k = 0, 1, ...

its value at lag 1 and the first lag where it falls below 0.5, for every depth, averaged over
seeds, and a fit of r(1) against depth: exponential, r(1) = A exp(-L / tau), and power law,
r(1) = A L^(-beta), each by least squares on log r(1).

Batch norm and the derivative. With batch statistics, every output y_i depends on all 256 inputs
(through the batch mean and variance), so the backward of sum_i y_i would add, at each x_i, how x_i
moves the statistics seen by every other point: not the slope of the function at x_i. Here the batch
norm layers first see the paper's batch, the 256 points, once (train mode, momentum 1, so their
running statistics become that batch's); then the net runs in eval mode with those statistics
frozen. Now y_i depends on x_i alone, so one backward of sum_i y_i gives every dy_i/dx_i exactly,
and the function is the one that the batch statistics define.

The nets are built from minires's own layers (``nn.Linear``, ``nn.BatchNorm2d``, ``nn.ReLU``) and
differentiated by its autograd. ``nn.BatchNorm2d`` takes (N, C, H, W): a layer's (N, C)
activations go in as (N, C, 1, 1), which normalises each unit over the batch, batch norm of a fully
connected layer.

Outputs in ``out``: shatter_gradients.png (the paper's Fig. 1), shatter_correlation.png (r(k) and
r(1) against depth, with the fits) and shatter.json.
"""
import math
import time

import numpy as np

from .. import backend, nn
from ..autograd import Tensor, no_grad
from .output import Output, progress_bar, save_figure

VARIANTS = ("feedforward", "feedforward_bn", "resnet", "resnet_bn", "resnet_scaled")
LABELS = {"feedforward": "feedforward", "feedforward_bn": "feedforward + BN", "resnet": "ResNet",
          "resnet_bn": "ResNet + BN", "resnet_scaled": "ResNet, shortcut x sqrt(1/2)"}
POINTS, WIDTH, X_RANGE, DEPTH = 256, 200, (-2.0, 2.0), 50  # the paper's setting


class ShatterNet(nn.Module):
    """A scalar-to-scalar net of ``depth`` rectifier layers of ``width`` units; see the module
    docstring.

    Weights are He normal, N(0, 2 / fan_in), the initialisation for ReLU nets; biases keep
    ``nn.Linear``'s default, uniform in +-1/sqrt(fan_in) (so the first layer's units switch at
    different x). Layers followed by batch norm have no bias: BN's shift replaces it.
    """

    def __init__(self, variant, depth, width=WIDTH, dtype=np.float32):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        if not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"width must be an int >= 1, got {width!r}")
        self.variant, self.depth, self.width = variant, depth, width
        self.residual = variant.startswith("resnet")
        self.bn = variant.endswith("_bn")
        self.alpha = math.sqrt(0.5) if variant == "resnet_scaled" else 1.0
        # feedforward + BN: its first layer feeds a BN, so no bias; a ResNet's input is linear.
        self.input = self._linear(1, width, bias=not (self.bn and not self.residual), dtype=dtype)
        self.layers = nn.Sequential(*[self._linear(width, width, bias=not self.bn, dtype=dtype)
                                      for _ in range(depth if self.residual else depth - 1)])
        if self.bn:
            self.norms = nn.Sequential(*[nn.BatchNorm2d(width, momentum=1.0, dtype=dtype)
                                         for _ in range(depth)])
        self.relu = nn.ReLU()
        self.output = self._linear(width, 1, bias=True, dtype=dtype)

    @staticmethod
    def _linear(n_in, n_out, bias, dtype):
        layer = nn.Linear(n_in, n_out, bias=bias, dtype=dtype)
        nn.init.kaiming_normal_(layer.weight, mode="fan_in")
        return layer

    def _norm(self, i, h):
        if not self.bn:
            return h
        n, c = h.shape
        return self.norms[i](h.reshape(n, c, 1, 1)).reshape(n, c)

    def forward(self, x):
        """x: (N, 1) -> y: (N, 1)."""
        h = self.input(x)
        if self.residual:
            for i, layer in enumerate(self.layers):
                branch = layer(self.relu(self._norm(i, h)))
                h = (h if self.alpha == 1.0 else self.alpha * h) + branch
        else:
            h = self.relu(self._norm(0, h))
            for i, layer in enumerate(self.layers, 1):
                h = self.relu(self._norm(i, layer(h)))
        return self.output(h)


def inputs(points=POINTS, x_range=X_RANGE):
    """The ``points`` evenly spaced scalars in ``x_range``, as a (points,) float64 array."""
    return np.linspace(x_range[0], x_range[1], points)


def derivative(model, x, device="cpu"):
    """dy/dx of the scalar net ``model`` at every point of ``x`` (a 1-D array), by one backward of
    sum_i y_i; returns a float64 array.

    With batch norm, the statistics are those of this batch of points, frozen (see the module
    docstring): the model is left in eval mode with them.
    """
    dtype = next(model.parameters()).dtype
    xt = Tensor(backend.to_device(np.asarray(x, dtype=dtype).reshape(-1, 1), device),
                requires_grad=True)
    if getattr(model, "bn", False):
        model.train()
        with no_grad():
            model(xt)  # momentum 1: each BN's running statistics become this batch's
    model.eval()
    model(xt).sum().backward()
    return backend.as_numpy(xt.grad).reshape(-1).astype(np.float64)


def autocorrelation(g, max_lag=None):
    """r(k) for k = 0..max_lag of the 1-D signal ``g`` (mean removed, r(0) = 1); NaN if ``g`` is
    constant."""
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 1 or len(g) < 2:
        raise ValueError("autocorrelation: expected a 1-D signal of 2 or more values, "
                         f"got shape {g.shape}")
    max_lag = len(g) - 1 if max_lag is None else min(max_lag, len(g) - 1)
    d = g - g.mean()
    energy = float(d @ d)
    if energy == 0.0:
        return np.full(max_lag + 1, np.nan)
    return np.array([float(d[: len(d) - k] @ d[k:]) / energy for k in range(max_lag + 1)])


def half_lag(r):
    """The first lag k >= 1 at which r(k) < 0.5; len(r) if it never falls that low (or r is NaN)."""
    below = np.nonzero(np.asarray(r)[1:] < 0.5)[0]
    return int(below[0]) + 1 if len(below) else len(r)


def white_noise(points, rng):
    return rng.standard_normal(points)


def brown_noise(points, rng):
    """A random walk: the running sum of white noise."""
    return np.cumsum(rng.standard_normal(points))


def noises(points, seed):
    """{"brown noise": signal, "white noise": signal} of ``points`` values, the references the
    gradients are compared with (white drawn first, then brown, from one generator of ``seed``)."""
    rng = np.random.default_rng(seed)
    white = white_noise(points, rng)
    return {"brown noise": brown_noise(points, rng), "white noise": white}


def fit_decay(depths, values, floor=0.0):
    """Least-squares fits of log(values) against depth:
    {"depths_used": [...], "exponential": {A, tau, factor_per_layer, rms_log},
    "power": {A, beta, rms_log}}.

    Only values above ``floor`` enter (log needs positive ones; a white-noise gradient's r(1) is
    itself noise of size about 1/sqrt(points), so ``run`` sets the floor at 2/sqrt(points)).
    ``rms_log`` is the root-mean-square residual of log(values): the smaller says which law fits
    better. None where fewer than 3 values remain.
    """
    d = np.asarray(depths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v) & (v > max(floor, 0.0))
    if keep.sum() < 3:
        return None
    d, y = d[keep], np.log(v[keep])
    out = {"depths_used": [int(x) for x in d]}
    for name, t in (("exponential", d), ("power", np.log(d))):
        slope, intercept = np.polyfit(t, y, 1)
        rms = float(np.sqrt(np.mean((y - (slope * t + intercept)) ** 2)))
        entry = {"A": float(np.exp(intercept)), "rms_log": rms}
        if name == "exponential":
            entry["tau"] = float(-1 / slope) if slope != 0 else math.inf  # layers per factor e
            entry["factor_per_layer"] = float(np.exp(slope))
        else:
            entry["beta"] = float(-slope)
        out[name] = entry
    return out


def measure(variants=VARIANTS, depths=range(1, DEPTH + 1), seeds=(0, 1, 2), width=WIDTH,
            points=POINTS, x_range=X_RANGE, max_lag=64, keep_gradients=(), device="cpu",
            dtype=np.float32, progress=True):
    """Gradients and their autocorrelations for every (variant, depth, seed).

    Returns {variant: {"r1": (len(depths), len(seeds)), "half_lag": same,
    "acf": (len(depths), max_lag + 1) mean over seeds,
    "gradients": {depth: g of the first seed} for depths in ``keep_gradients``}}.
    The net of (variant, depth, seed) is drawn after ``backend.manual_seed(seed)``.
    """
    device = backend.check_device(device)
    depths, seeds = [int(d) for d in depths], [int(s) for s in seeds]
    max_lag = min(max_lag, points - 1)
    x = inputs(points, x_range)
    results = {}
    bar = progress_bar(len(variants) * sum(depths) * len(seeds), "shatter", enabled=progress,
                       unit="layer")
    for variant in variants:
        r1 = np.zeros((len(depths), len(seeds)))
        lags = np.zeros((len(depths), len(seeds)), dtype=int)
        acf = np.zeros((len(depths), max_lag + 1))
        kept = {}
        for i, depth in enumerate(depths):
            for j, seed in enumerate(seeds):
                backend.manual_seed(seed)
                model = ShatterNet(variant, depth, width, dtype=dtype).to(device)
                g = derivative(model, x, device)
                r = autocorrelation(g, max_lag)
                r1[i, j], lags[i, j] = r[1], half_lag(r)
                acf[i] += r / len(seeds)
                if j == 0 and depth in keep_gradients:
                    kept[depth] = g
                bar.update(depth)
                bar.set_postfix({"variant": variant, "depth": depth})
        results[variant] = {"r1": r1, "half_lag": lags, "acf": acf, "gradients": kept}
    bar.close()
    return results


def plot_gradients(x, panels, path, title=None):
    """Fig. 1 of the paper: dy/dx against x, one panel per (label, gradient), noise panels
    included."""
    from matplotlib.figure import Figure

    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (label, g) in zip(axes, panels):
        ax.plot(x, g, lw=0.8, color="C3" if "noise" in label else "C0")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x" if "noise" not in label else "sample")
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, path, title, dpi=80)


def plot_correlation(depths, results, noise_acf, fits, floor, path, title=None):
    """Left: r(k) against lag at the largest depth (and for the noises); right: r(1) against
    depth, with the better fit drawn over the depths it used, and the noise ``floor`` (None: not
    drawn) below which r(1) is noise."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_lag, ax_depth = fig.subplots(1, 2)
    max_depth = max(depths)
    i = depths.index(max_depth)
    for c, (variant, res) in enumerate(results.items()):
        colour = f"C{c}"
        ax_lag.plot(res["acf"][i], color=colour, label=f"{LABELS[variant]}, depth {max_depth}")
        mean_r1 = res["r1"].mean(axis=1)
        ax_depth.plot(depths, mean_r1, "o", ms=3, color=colour, label=LABELS[variant])
        fit = fits.get(variant)
        if fit:
            d = np.asarray(fit["depths_used"], dtype=np.float64)
            d = np.linspace(d.min(), d.max(), 100)
            best = min(("exponential", "power"), key=lambda k: fit[k]["rms_log"])
            e = fit[best]
            model = e["A"] * (np.exp(-d / e["tau"]) if best == "exponential" else d ** -e["beta"])
            ax_depth.plot(d, model, "-", lw=1, color=colour, alpha=0.7)
    for name, r in noise_acf.items():
        ax_lag.plot(r, "--", color="grey" if name == "white noise" else "black", lw=1, label=name)
    ax_lag.axhline(0.5, color="grey", lw=0.5)
    ax_lag.set_xlabel("lag k (points; the grid step is 4/255)")
    ax_lag.set_ylabel("autocorrelation r(k) of dy/dx")
    ax_lag.legend(fontsize=7)
    ax_lag.grid(alpha=0.3)
    if floor:
        ax_depth.axhline(floor, color="grey", ls="--", lw=0.8,
                         label=f"noise floor 2/sqrt(points) = {floor:.3f}")
    ax_depth.set_yscale("log")
    ax_depth.set_xlabel("depth L (rectifier layers)")
    ax_depth.set_ylabel("r(1), mean over seeds (log scale)")
    ax_depth.set_title("lines: the better of the exponential and power-law fits", fontsize=9)
    ax_depth.legend(fontsize=7)
    ax_depth.grid(alpha=0.3, which="both")
    return save_figure(fig, path, title, dpi=80)


def table(depths, seeds, results, noise_acf, fits, floor):
    """What the command prints: r(1) and the first lag where r < 0.5 at a few depths per variant,
    the same for the noises, then the fits of r(1) against depth."""
    max_depth = max(depths)
    show = [d for d in depths if d in (1, 2, 5, 10, 20, 30, 40, 50) or d == max_depth]
    lines = [f"autocorrelation of dy/dx at lag 1, r(1), mean over seeds {seeds} "
             "(and the first lag where r < 0.5, median over seeds)",
             f"{'variant':>30} " + " ".join(f"{'L=' + str(d):>11}" for d in show)]
    for v, res in results.items():
        cells = []
        for d in show:
            i = depths.index(d)
            cells.append(f"{res['r1'][i].mean():6.3f} ({int(np.median(res['half_lag'][i])):>2})")
        lines.append(f"{LABELS[v]:>30} " + " ".join(f"{c:>11}" for c in cells))
    brown, white = noise_acf["brown noise"], noise_acf["white noise"]
    lines.append(f"{'brown noise':>30} {brown[1]:6.3f} ({half_lag(brown):>2})   "
                 f"{'white noise':>11} {white[1]:6.3f} ({half_lag(white):>2})")
    lines += ["", "fits of r(1) against depth (least squares on log r(1), depths where r(1) > "
                  f"{floor:.3f}):"]
    for v in results:
        f = fits[v]
        if f is None:
            lines.append(f"{LABELS[v]:>30}: too few positive values to fit")
            continue
        e, p = f["exponential"], f["power"]
        lines.append(f"{LABELS[v]:>30}: exp(-L/tau) tau = {e['tau']:8.3g} layers "
                     f"(x{e['factor_per_layer']:.3f}/layer, rms {e['rms_log']:.3f});  "
                     f"L^-beta beta = {p['beta']:6.3f} (rms {p['rms_log']:.3f})")
    return "\n".join(lines)


def run(out, *, depths=range(1, DEPTH + 1), seeds=(0, 1, 2), width=WIDTH, points=POINTS,
        variants=VARIANTS, device="cpu", progress=True, log=print):
    """The whole experiment: measure, fit, print the table, write shatter_gradients.png,
    shatter_correlation.png and shatter.json into ``out``; returns the JSON's dict."""
    depths, seeds = sorted(int(d) for d in depths), [int(s) for s in seeds]
    variants = tuple(variants)
    max_depth = depths[-1]
    shown = sorted({depths[0], max_depth} | ({24} if 24 in depths else set()))
    start = time.perf_counter()
    results = measure(variants, depths, seeds, width, points, keep_gradients=shown, device=device,
                      progress=progress)
    seconds = time.perf_counter() - start
    x = inputs(points)
    noise = noises(points, seeds[0])
    max_lag = results[variants[0]]["acf"].shape[1] - 1
    noise_acf = {name: autocorrelation(signal, max_lag) for name, signal in noise.items()}
    floor = 2 / math.sqrt(points)
    fits = {v: fit_decay(depths, results[v]["r1"].mean(axis=1), floor) for v in variants}
    log("\n" + table(depths, seeds, results, noise_acf, fits, floor))

    output = Output(out)
    # Fig. 1: the feedforward net at the smallest depth (and at 24), every variant at the largest.
    panels = []
    if "feedforward" in variants:
        kept = results["feedforward"]["gradients"]
        panels.append((f"{LABELS['feedforward']}, depth {depths[0]}", kept[depths[0]]))
        if 24 in shown and 24 != max_depth:
            panels.append((f"{LABELS['feedforward']}, depth 24", kept[24]))
    panels += [(f"{LABELS[v]}, depth {max_depth}", results[v]["gradients"][max_depth])
               for v in variants]
    panels += list(noise.items())
    output.figure("shatter_gradients.png", plot_gradients, x, panels,
                  title=f"dy/dx at {points} points in [-2, 2], nets of {width} rectifiers per "
                        f"layer, at initialisation (seed {seeds[0]})")
    output.figure("shatter_correlation.png", plot_correlation, depths, results, noise_acf, fits,
                  floor, title=f"Autocorrelation of the gradient (mean over {len(seeds)} seeds)")
    settings = {"points": points, "x_range": list(X_RANGE), "width": width, "depths": depths,
                "seeds": seeds, "variants": list(variants),
                "init": "He normal N(0, 2/fan_in), nn.Linear default biases",
                "batch_norm": "statistics of the batch of points, frozen (eval mode) for the "
                              "derivative",
                "fit_floor": floor, "device": device, "seconds": round(seconds, 1)}
    summary = {v: {"r1_mean": results[v]["r1"].mean(axis=1).tolist(),
                   "r1": results[v]["r1"].tolist(),
                   "half_lag_median": np.median(results[v]["half_lag"], axis=1).tolist(),
                   "half_lag": results[v]["half_lag"].tolist(),
                   f"acf_depth_{max_depth}": results[v]["acf"][depths.index(max_depth)].tolist(),
                   "fit_r1": fits[v]} for v in variants}
    report = {"settings": settings, "variants": summary,
              "noise": {k: {"r1": float(r[1]), "half_lag": half_lag(r), "acf": r.tolist()}
                        for k, r in noise_acf.items()},
              "gradients": {v: {str(d): g.tolist() for d, g in results[v]["gradients"].items()}
                            for v in variants},
              "x": x.tolist()}
    output.json("shatter.json", report)
    log("")
    output.done(seconds, log=log)
    return report
