"""Loss landscapes with filter normalisation (Li, Xu, Taylor, Studer and Goldstein, 2018,
"Visualizing the loss landscape of neural nets", NeurIPS, sec. 4 and 6, Fig. 5 and 7).

Around trained weights theta*, plot

    1-D:  f(a)    = L(theta* + a d)
    2-D:  f(a, b) = L(theta* + a d + b e)

with d, e random Gaussian directions. A raw random direction means little: batch norm makes a
net invariant to the scale of each filter, so a step of one size is large for small filters and
tiny for large ones. Li et al. (sec. 4) therefore *filter-normalise* each direction: for every
filter j of every layer i (the weights that make one output channel; a row of a linear layer),

    d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||theta_{i,j}||

so the direction has the weights' scale filter by filter. Batch-norm parameters and biases get a
zero direction (the paper's choice). L is the mean cross-entropy over a fixed subset of the
training images, with batch norm in eval mode (the trained net's running statistics).

What the pictures show is put in numbers (``summarise``), the curvatures only near the minimum
(loss within ``REGION`` = 1 of it: far out the loss explodes and its bends say nothing of the
basin):
    basin:      the share of grid points whose loss is within 0.1 of the grid's minimum;
    2-D:        at each interior grid point the 2x2 Hessian of f by central differences and its
                principal curvatures lambda_min <= lambda_max; the share of points near the
                minimum where lambda_min / |lambda_max| < -0.1 (a clearly negative curvature: a
                saddle or a ridge, not a bowl), and the median of that ratio (Li's Fig. 7 maps
                |lambda_min / lambda_max| of the full Hessian; this is the same idea in the
                plotted plane);
    1-D:        the share of slice points near the minimum where the curve bends down.

``run`` trains (or loads) the plain net and ResNet of each depth and writes landscape.json,
landscape.png (contours side by side on the same levels) and landscape_1d.png.
"""
import time

import numpy as np

from .. import backend, data
from .. import functional as F
from ..autograd import Tensor, no_grad
from . import nets, surgery
from .output import Output, progress_bar, save_figure

BASIN = 0.1  # "within 0.1 of the minimum loss"
REGION = 1.0  # curvatures are counted where the loss is within 1 of the minimum
RATIO = 0.1  # lambda_min / |lambda_max| below -RATIO: a clearly negative curvature


def filter_normalized_direction(model, seed=0):
    """{parameter name: array}: a random direction with filter normalisation (Li et al., sec. 4).

    Entries of parameters with more than one axis (conv weights (C_out, C_in, kh, kw), linear
    weights (out, in)) are N(0, 1), then each filter d[j] (index j of axis 0) is scaled to the norm
    of the same filter of the weights; one-axis parameters (batch-norm weights and biases, biases)
    get zeros. Seeded: the same model and seed give the same direction.
    """
    rng = np.random.default_rng(seed)
    direction = {}
    for name, p in model.named_parameters():
        w = backend.as_numpy(p.data).astype(np.float64)
        if w.ndim <= 1:
            direction[name] = np.zeros_like(w)
            continue
        d = rng.standard_normal(w.shape)
        axes = tuple(range(1, w.ndim))
        w_norm = np.sqrt((w ** 2).sum(axis=axes, keepdims=True))
        d_norm = np.sqrt((d ** 2).sum(axis=axes, keepdims=True))
        direction[name] = d * w_norm / np.where(d_norm > 0, d_norm, 1)
    return direction


class Landscape:
    """L(theta* + sum_i t_i d_i) of ``model`` on the fixed batch (x, labels), batch norm in eval
    mode.

    ``directions``: a list of {parameter name: array}. ``loss(*t)`` moves the weights to the point,
    returns the mean cross-entropy there, and puts the trained weights and the model's modes back
    (``surgery.unchanged``): the model is never left moved.
    """

    def __init__(self, model, x, labels, directions):
        self.model, self.labels, self.directions = model, labels, directions
        self.x = Tensor(x)
        self.params = dict(model.named_parameters())
        xp = backend.get_array_module(self.x.data)
        self.dirs = [{n: xp.asarray(d[n].astype(p.data.dtype)) for n, p in self.params.items()
                      if d[n].any()} for d in directions]

    def loss(self, *t):
        if len(t) != len(self.dirs):
            raise ValueError(f"Landscape.loss: {len(self.dirs)} coordinates expected, got {len(t)}")
        with surgery.unchanged(self.model, training=False), no_grad():
            for n, p in self.params.items():
                w = p.data  # theta* (unchanged() puts this very array back)
                for ti, d in zip(t, self.dirs):
                    if n in d:
                        w = w + float(ti) * d[n]  # a Python float keeps float32 weights float32
                p.data = w
            return float(F.softmax_cross_entropy(self.model(self.x), self.labels).data)


def slice_1d(landscape, coords, progress=None):
    """f(a) at each a of ``coords`` along the landscape's single direction."""
    out = []
    for a in coords:
        out.append(landscape.loss(a))
        if progress:
            progress()
    return np.array(out)


def grid_2d(landscape, coords, progress=None):
    """f(a, b) on the grid coords x coords; ``[i, j]`` is a = coords[i], b = coords[j]."""
    out = np.empty((len(coords), len(coords)))
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            out[i, j] = landscape.loss(a, b)
            if progress:
                progress()
    return out


# -- what the pictures show, in numbers ------------------------------------------------------------

def concave_share_1d(curve, tol=1e-3, region=None):
    """The share of interior points of a 1-D curve where it bends down: f[i-1] - 2 f[i] + f[i+1]
    < -tol * scale (the tolerance keeps round-off in flat stretches from counting). ``region``:
    None counts every point, scale = max f - min f; a number counts only the points with
    f <= min f + region, scale = region."""
    f = np.asarray(curve, dtype=np.float64)
    if f.size < 3:
        raise ValueError(f"concave_share_1d needs at least 3 points, got {f.size}")
    d2 = f[:-2] - 2 * f[1:-1] + f[2:]
    if region is None:
        return float((d2 < -tol * (f.max() - f.min())).mean())
    near = f[1:-1] <= f.min() + region
    return float((d2[near] < -tol * region).mean()) if near.any() else 0.0


def principal_curvatures(grid, h):
    """(lambda_min, lambda_max), each (n-2, n-2): the eigenvalues of the 2x2 Hessian of the
    grid by central differences with spacing ``h``, at every interior point."""
    f = np.asarray(grid, dtype=np.float64)
    faa = (f[:-2, 1:-1] - 2 * f[1:-1, 1:-1] + f[2:, 1:-1]) / h ** 2
    fbb = (f[1:-1, :-2] - 2 * f[1:-1, 1:-1] + f[1:-1, 2:]) / h ** 2
    fab = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * h ** 2)
    mean, root = (faa + fbb) / 2, np.sqrt(((faa - fbb) / 2) ** 2 + fab ** 2)
    return mean - root, mean + root


def summarise(grid, coords, curves, tol=1e-3):
    """The numbers of one net's landscape (its report's "measures"): {"min_loss", "max_loss",
    "loss_at_origin", "basin_share" (grid points within BASIN of the minimum), and near the
    minimum (interior points within REGION of it, "region_points" of them): "saddle_share"
    (lambda_min / |lambda_max| < -RATIO), "median_curvature_ratio" (of lambda_min / |lambda_max|),
    "concave_share_1d" (mean over the 1-D curves, each near its own minimum)}."""
    grid = np.asarray(grid, dtype=np.float64)
    h = float(coords[1] - coords[0])
    lo, hi = principal_curvatures(grid, h)
    near = grid[1:-1, 1:-1] <= grid.min() + REGION
    ratio = lo[near] / np.maximum(np.abs(hi[near]), 1e-300)
    centre = len(coords) // 2
    return {"min_loss": float(grid.min()), "max_loss": float(grid.max()),
            "loss_at_origin": float(grid[centre, centre]),
            "basin_share": float((grid <= grid.min() + BASIN).mean()),
            "region_points": int(near.sum()),
            "saddle_share": float((ratio < -RATIO).mean()) if near.any() else 0.0,
            "median_curvature_ratio": float(np.median(ratio)) if near.any() else float("nan"),
            "concave_share_1d": float(np.mean([concave_share_1d(c, tol, REGION)
                                               for c in curves]))}


# -- the experiment --------------------------------------------------------------------------------

def measure(model, x, labels, coords, coords_1d, *, slices=2, seed=0, progress=None):
    """One net's landscape on the batch (x, labels): {"measures": ``summarise`` of the two below,
    "grid": f(a, b) on coords x coords (array), "curves": ``slices`` 1-D slices f(a) on
    ``coords_1d`` (arrays)}. The directions: seeds 1000 seed + 1 and + 2 for the grid, 1000 seed
    + 10 + s for slice s, the same for every net, so that directions differ only through the
    weights' norms. ``progress``: a callable run after each loss."""
    d, e = (filter_normalized_direction(model, seed=1000 * seed + i) for i in (1, 2))
    grid = grid_2d(Landscape(model, x, labels, [d, e]), coords, progress=progress)
    curves = []
    for s in range(slices):
        direction = filter_normalized_direction(model, seed=1000 * seed + 10 + s)
        curves.append(slice_1d(Landscape(model, x, labels, [direction]), coords_1d,
                               progress=progress))
    return {"measures": summarise(grid, coords, curves), "grid": grid, "curves": curves}


def plot_contours(grids, coords, path, title=None):
    """Li et al.'s Fig. 5: one contour plot per net, side by side, all on the same levels."""
    from matplotlib.figure import Figure

    names = list(grids)
    # Far from the minimum (a wide span) the loss may overflow to inf or NaN: the levels come from
    # the finite losses, and the others are left blank.
    finite = np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grids.values()])
    finite = finite[np.isfinite(finite)]
    lo = finite.min() if finite.size else 0.0
    # beyond lo + 5 the lines crowd out the basin
    hi = min(finite.max(), lo + 5.0) if finite.size else 1.0
    levels = np.linspace(lo, hi if hi > lo else lo + 1.0, 26)  # a flat grid: one band
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.3 * cols + 1, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    cs = None
    for ax, name in zip(axes, names):
        grid = np.ma.masked_invalid(np.asarray(grids[name]).T)
        cs = ax.contour(coords, coords, grid, levels=levels, cmap="viridis", linewidths=0.8)
        ax.plot([0], [0], "r+", ms=8)
        ax.set_title(name)
        ax.set_aspect("equal")
        ax.set_xlabel("a (direction d)")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].set_ylabel("b (direction e)")
    if cs is not None:
        fig.colorbar(cs, ax=list(axes[:len(names)]),
                     label="training loss (same levels in every panel)")
    return save_figure(fig, path, title, dpi=90)


def plot_curves(curves, coords, path, title=None):
    """The 1-D slices f(a) = L(theta* + a d), every direction of every net, one panel per depth."""
    from matplotlib.figure import Figure

    depths = sorted({nets.depth_of(n) for n in curves})
    fig = Figure(figsize=(4.5 * len(depths), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(depths), squeeze=False)).ravel()
    for ax, depth in zip(axes, depths):
        for i, kind in enumerate(("plain", "resnet")):
            name = f"{kind}{depth}"
            for j, c in enumerate(curves.get(name, [])):
                ax.plot(coords, c, color=f"C{i}", lw=1, alpha=0.8, label=name if j == 0 else None)
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("a (filter-normalised direction)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss")
    return save_figure(fig, path, title, dpi=90)


def table(results):
    """The numbers the command prints: per net, its ``summarise`` numbers (``results``: {net
    name: {"measures": ...}})."""
    lines = [f"{'net':>9} {'loss at 0':>9} {'min':>7} {'max':>10} {'basin':>6}   near the "
             f"minimum: {'points':>6} {'saddle':>7} {'median ratio':>12} {'1-D bends down':>14}"]
    for name, r in results.items():
        m = r["measures"]
        lines.append(f"{name:>9} {m['loss_at_origin']:9.3f} {m['min_loss']:7.3f} "
                     f"{m['max_loss']:10.4g} {m['basin_share']:6.1%}   {'':>18}"
                     f"{m['region_points']:6d} {m['saddle_share']:7.1%} "
                     f"{m['median_curvature_ratio']:12.2f} {m['concave_share_1d']:14.1%}")
    lines.append(f"basin: grid points with loss <= min + {BASIN}; near the minimum: interior "
                 f"points with loss <= min + {REGION:g}; saddle: lambda_min / |lambda_max| < "
                 f"-{RATIO}; ratio: lambda_min / |lambda_max|")
    return "\n".join(lines)


def run(out, *, depths=(20, 56), recipe=nets.RECIPES["digits"], from_dir=None, points=21,
        points_1d=31, slices=2, span=1.0, images=128, seed=0, limit=None, train_set=None,
        test_set=None, device="cpu", progress=True, log=print):
    """Train with ``recipe`` (or load, ``from_dir``) the plain net and ResNet of each depth and
    ``measure`` each on the first ``images`` training images: a ``points`` x ``points`` grid over
    [-span, span]^2 and ``slices`` 1-D curves of ``points_1d`` points; write landscape.json,
    landscape.png and landscape_1d.png to ``out`` and print the table; returns the report (what
    landscape.json holds). ``limit``: train on random subsets of that size. ``train_set``,
    ``test_set``: None for the bundled digits."""
    start = time.perf_counter()
    output = Output(out)
    train_set, test_set = nets.datasets(train_set, test_set)
    recipe = recipe.at_most(limit)
    # The fixed training subset: the first ``images`` training digits, unaugmented.
    x, labels = next(iter(data.DataLoader(train_set, min(images, len(train_set)))))
    x = backend.to_device(x, device)
    coords = np.linspace(-span, span, points)
    coords_1d = np.linspace(-span, span, points_1d)
    results, grids, curves = {}, {}, {}
    for name in [f"{kind}{d}" for d in depths for kind in ("plain", "resnet")]:
        model, info = nets.get_net(name, train_set, test_set, recipe, from_dir=from_dir,
                                   save_dir=out, seed=seed, device=device, limit=limit,
                                   progress=progress)
        bar = progress_bar(points ** 2 + slices * points_1d, f"landscape {name}",
                           enabled=progress, unit="loss")
        m = measure(model, x, labels, coords, coords_1d, slices=slices, seed=seed,
                    progress=bar.update)
        bar.close()
        grids[name], curves[name] = m["grid"], m["curves"]
        results[name] = {"training": info, "measures": m["measures"], "grid": m["grid"].tolist(),
                         "curves": [c.tolist() for c in m["curves"]]}
    seconds = time.perf_counter() - start
    settings = {"data": train_set.name, "images": len(labels), "depths": list(depths),
                "points": points, "points_1d": points_1d, "slices": slices, "span": span,
                "coords": coords.tolist(), "coords_1d": coords_1d.tolist(),
                "bn_mode": "eval (running statistics)",
                "directions": "Gaussian, filter-normalised; batch-norm parameters and biases zero",
                "basin": BASIN, "seed": seed, "device": device, "limit": limit, "from": from_dir,
                "recipe": recipe.as_dict(), "seconds": round(seconds, 1)}
    report = {"settings": settings, "nets": results}
    output.json("landscape.json", report)
    output.figure("landscape.png", plot_contours, grids, coords,
                  title="Training loss around the trained weights, filter-normalised directions "
                        f"({len(labels)} training digits)")
    output.figure("landscape_1d.png", plot_curves, curves, coords_1d,
                  title="1-D slices L(theta* + a d), filter-normalised random directions")
    log("\n" + table(results) + "\n")
    output.done(seconds, extra=None if from_dir else "and the trained nets (<net>-seed<S>.npz)",
                log=log)
    return report
