"""Rank collapse: how many directions a batch's representations span, block by block, at
initialisation (Daneshmand, Kohler, Bach, Hofmann and Lucchi 2020, "Batch normalization provably
avoids rank collapse for randomly initialised deep networks"; Dong, Cordonnier and Loukas 2021,
"Attention is not all you need: pure attention loses rank doubly exponentially with depth").

Feed a batch of N images through a net and stack what block l outputs, one image per row:

    H_l: (N, C*H*W)   row n = the block's output for image n, flattened

If the rows become collinear, every image is mapped to (a multiple of) the same vector: the net
can no longer tell its inputs apart, and the gradients of all of them point the same way. That is
rank collapse, and deep nets without normalisation drift into it at initialisation (Daneshmand et
al.: with batch norm the rank stays bounded away from 1 at any depth). Dong et al. show the same
collapse for self-attention, and that skip connections stop it: in x_{l+1} = x_l + F(x_l) the
identity carries x_l's directions through, *as long as F does not drown x_l*.

Two measures of "how many directions", both from the singular values s_1 >= s_2 >= ... of H_l:

    effective rank (Roy and Vetterli 2007)   erank(H) = exp(-sum_i p_i log p_i),  p_i = s_i / sum s
    stable rank                              srank(H) = ||H||_F^2 / ||H||_2^2 = sum s_i^2 / s_1^2

Both are 1 for a rank-1 matrix and k for k equal singular values; both are invariant to the
matrix's scale (so they compare nets whose activations explode or vanish). The stable rank is
dominated by the top singular value: after a ReLU every feature has a positive mean, the mean
image is one strong direction shared by all rows, and the stable rank stays near 1 or 2 even
where the effective rank is high. Representations are not centred (Daneshmand et al.'s H_l).

The variants, all CIFAR-layout nets of ``nets.build_net`` at He initialisation (the models'
default), batch norm in train mode (batch statistics: at initialisation the running statistics
are 0 and 1, and eval mode would be no normalisation at all):

    plain, resnet              the ordinary nets, with batch norm
    plain_nobn, resnet_nobn    every BatchNorm2d an Identity (``surgery.strip_batch_norm``)
    resnet_nobn_small          resnet_nobn with every residual branch scaled by alpha =
                               1/sqrt(blocks): the last conv of each block times alpha, so the
                               block computes ReLU(x + alpha F(x)) (F is positively homogeneous
                               in that conv without batch norm). Dropping its shortcuts gives
                               plain_nobn up to a scale, which no rank measure sees.

Without batch norm and at He initialisation each branch F(x) is as large as x, in every block;
with batch norm the stream's variance grows block by block while each branch's stays about 1, so
the branches shrink relative to the stream (De and Smith 2020); the small-branch variant has the
same effect with no normalisation at all. ``run`` writes rank.json and rank.png and checks the
claims (``check_claims``) in every seed.
"""
import math
import os
import time

import numpy as np

from .. import backend, data, fast, machine
from ..autograd import Tensor, no_grad
from . import nets, surgery
from .output import Output, claim_lines, progress_bar, save_figure

VARIANTS = ("plain", "resnet", "plain_nobn", "resnet_nobn", "resnet_nobn_small")
LABELS = {"plain": "plain, BN", "resnet": "ResNet, BN", "plain_nobn": "plain, no BN",
          "resnet_nobn": "ResNet, no BN", "resnet_nobn_small": "ResNet, no BN, branch/sqrt(B)"}
DEPTHS = (20, 56, 110)
SEEDS = (0, 1, 2)
BATCH = 128
# The claims ``check_claims`` tests on the last block's effective rank (chosen on tuning seeds
# 100, 101 and 102, before the reported seeds were run).
FACTOR = 2.0  # "keeps (much) more rank": at least twice the other net's
FALLS = 0.5   # "collapses with depth": the deepest net's at most half the shallowest's
PROTOCOL = ("The claims, their thresholds (FACTOR, FALLS) and the small-branch variant were "
            "chosen on tuning seeds 100, 101 and 102 at depths 20, 56 and 110, then fixed; the "
            "reported seeds were run once.")


# -- the two measures ------------------------------------------------------------------------------

def singular_values(h):
    """The singular values of ``h`` reshaped to (N, -1), in float64, largest first."""
    h = np.asarray(backend.as_numpy(h), dtype=np.float64)
    return np.linalg.svd(h.reshape(len(h), -1), compute_uv=False)


def effective_rank(h):
    """Roy and Vetterli's effective rank exp(H(p)), p = s / sum(s), of ``h`` as (N, -1); 0 for a
    zero matrix. Between 1 and the rank; k for k equal non-zero singular values."""
    s = singular_values(h)
    if not s.sum() > 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def stable_rank(h):
    """||h||_F^2 / ||h||_2^2 = sum s_i^2 / s_1^2 of ``h`` as (N, -1); 0 for a zero matrix."""
    s = singular_values(h)
    return float((s ** 2).sum() / s[0] ** 2) if s[0] > 0 else 0.0


# -- the nets and their representations ------------------------------------------------------------

def scale_branches(model, alpha):
    """Multiply the last conv of every residual branch by ``alpha``, in place; returns the model.
    Without batch norm the branch is then alpha F(x) (F is linear in that conv's weights)."""
    for _, block in surgery.blocks(model):
        if not block.residual:
            raise ValueError("scale_branches: a plain block has no residual branch")
        last = block.conv3 if hasattr(block, "conv3") else block.conv2
        last.weight.data = last.weight.data * alpha
    return model


def build_variant(variant, depth, *, num_classes=10, in_channels=1, seed=0):
    """The ``variant`` (one of VARIANTS) of the CIFAR net of ``depth`` layers, seeded."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    backend.manual_seed(seed)
    model = nets.build_net(f"{variant.split('_')[0]}{depth}", num_classes, in_channels)
    if "nobn" in variant:
        surgery.strip_batch_norm(model)
    if variant.endswith("_small"):
        scale_branches(model, 1 / math.sqrt(len(surgery.blocks(model))))
    return model


def representations(model, x):
    """{"input": x, block name: its output, ...} for the batch ``x`` (N, C, H, W), in forward
    order, each an array (N, C', H', W'); batch norm in train mode (batch statistics), no
    gradients, and the model's modes and running statistics restored afterwards."""
    reps = {"input": x}
    hooks = [block.register_forward_hook(
        lambda m, inputs, out, name=name: reps.__setitem__(name, out.data))
        for name, block in surgery.blocks(model)]
    try:
        with surgery.unchanged(model, training=True), no_grad():
            model(Tensor(x))
    finally:
        for h in hooks:
            h.remove()
    return reps


def batch(train_set, size, seed):
    """``size`` training images drawn without replacement by ``default_rng(seed)``, normalised as
    the loaders normalise them, unaugmented: (N, C, H, W) float32."""
    if not 2 <= size <= len(train_set):
        raise ValueError(f"batch_size must be in 2..{len(train_set)} (batch norm needs a "
                         f"batch), got {size}")
    pick = np.random.default_rng(seed).choice(len(train_set), size, replace=False)
    x, _ = next(iter(data.DataLoader(train_set.subset(np.sort(pick)), size)))
    return x


# -- measuring -------------------------------------------------------------------------------------

def measure(train_set, *, depths=DEPTHS, variants=VARIANTS, seeds=SEEDS, batch_size=BATCH,
            device="cpu", on_run=None):
    """The effective and stable rank of every block's output, for each variant, depth and seed.

    Seed s draws the weights and the batch (``batch_size`` images of ``train_set``). Returns a
    list of runs {"variant", "depth", "seed", "layers" (["input", "layer1.0", ...]),
    "effective_rank", "stable_rank" (lists, one value per layer)}. ``on_run``: called with each.
    """
    device = backend.check_device(device)
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if not depths or bad:
        raise ValueError(f"depths: each must be 6n + 2 (8, 14, 20, 56, 110, ...), got "
                         f"{list(depths)}")
    runs = []
    for seed in seeds:
        x = backend.to_device(batch(train_set, batch_size, seed), device)
        for depth in depths:
            for variant in variants:
                model = build_variant(variant, depth, num_classes=train_set.num_classes,
                                      in_channels=train_set.images.shape[1], seed=seed)
                reps = representations(model.to(device), x)
                runs.append({"variant": variant, "depth": depth, "seed": seed,
                             "layers": list(reps),
                             "effective_rank": [effective_rank(h) for h in reps.values()],
                             "stable_rank": [stable_rank(h) for h in reps.values()]})
                if on_run:
                    on_run(runs[-1])
    return runs


def summarise(runs):
    """{variant: {str(depth): {"seeds", "input", "first", "last", "ratio", "last_stable"}}},
    each a list over seeds: the effective rank of the input, of the first block's and the last
    block's output, last / first, and the last block's stable rank."""
    out = {}
    for r in runs:
        e = r["effective_rank"]
        cell = out.setdefault(r["variant"], {}).setdefault(str(r["depth"]), {
            "seeds": [], "input": [], "first": [], "last": [], "ratio": [], "last_stable": []})
        cell["seeds"].append(r["seed"])
        cell["input"].append(e[0])
        cell["first"].append(e[1])
        cell["last"].append(e[-1])
        cell["ratio"].append(e[-1] / e[1])
        cell["last_stable"].append(r["stable_rank"][-1])
    return out


def check_claims(summary):
    """The claims, on the effective rank of the last block's output, each in every seed:
    {claim: {"claim", "holds", "detail"}} (claims whose variants or depths were not measured are
    left out; "deepest" and "shallowest" are the depths measured).

    bn_keeps:        with batch norm the plain net keeps >= FACTOR x the rank it has without,
                     at every depth (Daneshmand et al.);
    nobn_collapses:  without batch norm the plain net's rank falls with depth: the deepest's
                     <= FALLS x the shallowest's;
    small_branches:  the ResNet without BN with branches / sqrt(blocks) keeps more rank than the
                     same net without its shortcuts (plain, no BN) at every depth, and >= FACTOR
                     x as much at the deepest;
    full_branches:   the ResNet without BN at He initialisation (full-size branches) keeps more
                     rank than the plain net without BN at the deepest depth;
    bn_resnet:       with batch norm, the ResNet keeps at least the plain net's rank at the
                     deepest depth.
    """
    depths = sorted({int(d) for by_depth in summary.values() for d in by_depth})
    lo, hi = str(depths[0]), str(depths[-1])

    def last(variant, depth):
        return summary[variant][depth]["last"]

    def show(pairs):
        return ", ".join(f"{a:.1f} vs {b:.1f}" for a, b in pairs)

    claims = {}
    if {"plain", "plain_nobn"} <= set(summary):
        pairs = {d: list(zip(last("plain", d), last("plain_nobn", d))) for d in summary["plain"]}
        claims["bn_keeps"] = {
            "claim": f"with batch norm the plain net keeps >= {FACTOR:g} x the rank it has "
                     "without, at every depth, in every seed",
            "holds": all(a >= FACTOR * b for ps in pairs.values() for a, b in ps),
            "detail": "erank of the last block, BN vs no BN: "
                      + "; ".join(f"depth {d}: {show(ps)}" for d, ps in pairs.items())}
    if "plain_nobn" in summary and lo != hi:
        pairs = list(zip(last("plain_nobn", hi), last("plain_nobn", lo)))
        claims["nobn_collapses"] = {
            "claim": f"without batch norm the plain net's rank falls with depth: depth {hi}'s "
                     f"<= {FALLS:g} x depth {lo}'s, in every seed",
            "holds": all(a <= FALLS * b for a, b in pairs),
            "detail": f"erank of the last block, depth {hi} vs {lo}: {show(pairs)}"}
    if {"resnet_nobn_small", "plain_nobn"} <= set(summary):
        pairs = {d: list(zip(last("resnet_nobn_small", d), last("plain_nobn", d)))
                 for d in summary["plain_nobn"]}
        claims["small_branches"] = {
            "claim": "shortcuts with branches / sqrt(blocks), no batch norm, keep more rank than "
                     f"the same net without shortcuts at every depth, and >= {FACTOR:g} x as much "
                     f"at depth {hi}, in every seed",
            "holds": all(a > b for ps in pairs.values() for a, b in ps)
                     and all(a >= FACTOR * b for a, b in pairs[hi]),
            "detail": "erank of the last block, with vs without shortcuts: "
                      + "; ".join(f"depth {d}: {show(ps)}" for d, ps in pairs.items())}
    if {"resnet_nobn", "plain_nobn"} <= set(summary):
        pairs = list(zip(last("resnet_nobn", hi), last("plain_nobn", hi)))
        claims["full_branches"] = {
            "claim": "shortcuts alone (no batch norm, He initialisation, full-size branches) "
                     f"keep more rank than the plain net without batch norm at depth {hi}, in "
                     "every seed",
            "holds": all(a > b for a, b in pairs),
            "detail": f"erank of the last block, ResNet vs plain, no BN: {show(pairs)}"}
    if {"resnet", "plain"} <= set(summary):
        pairs = list(zip(last("resnet", hi), last("plain", hi)))
        claims["bn_resnet"] = {
            "claim": f"with batch norm the ResNet keeps at least the plain net's rank at depth "
                     f"{hi}, in every seed",
            "holds": all(a >= b for a, b in pairs),
            "detail": f"erank of the last block, ResNet vs plain, BN: {show(pairs)}"}
    return claims


# -- plots -----------------------------------------------------------------------------------------

def plot_rank(runs, path, title=None):
    """Effective rank (top) and stable rank (bottom) of every block's output against the block
    (0 = the input images), one panel per depth, one colour per variant: the mean over seeds,
    the band from min to max. Log y."""
    from matplotlib.figure import Figure

    depths = sorted({r["depth"] for r in runs})
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
    fig = Figure(figsize=(4.2 * len(depths) + 1, 7), layout="constrained")
    axes = fig.subplots(2, len(depths), squeeze=False, sharey="row")
    for col, depth in enumerate(depths):
        for i, variant in enumerate(variants):
            rs = [r for r in runs if r["depth"] == depth and r["variant"] == variant]
            for row, key in enumerate(("effective_rank", "stable_rank")):
                values = np.array([r[key] for r in rs])
                x = np.arange(values.shape[1])
                ax = axes[row, col]
                ax.plot(x, values.mean(axis=0), color=f"C{i}", lw=1.3, label=LABELS[variant])
                ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=f"C{i}",
                                alpha=0.2, lw=0)
        for row in range(2):
            ax = axes[row, col]
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("block (0 = input images)")
        axes[0, col].set_title(f"depth {depth}")
    axes[0, 0].set_ylabel("effective rank (Roy and Vetterli)")
    axes[1, 0].set_ylabel(r"stable rank $\|H\|_F^2 / \|H\|_2^2$")
    axes[0, 0].legend(fontsize=7)
    return save_figure(fig, path, title, dpi=90)


# -- the table and the run -------------------------------------------------------------------------

def table(summary, claims):
    """Per variant and depth: the effective rank of the input, first and last block (mean over
    seeds, and the range of last / first), the last block's stable rank; then the claims."""
    lines = [f"{'variant':>30} {'depth':>5} {'input':>6} {'first':>6} {'last':>6} "
             f"{'last/first (min..max)':>22} {'stable rank, last':>18}"]
    for variant, by_depth in summary.items():
        for depth, c in by_depth.items():
            ratio = f"{np.mean(c['ratio']):.2f} ({min(c['ratio']):.2f}..{max(c['ratio']):.2f})"
            lines.append(f"{LABELS[variant]:>30} {depth:>5} {np.mean(c['input']):6.1f} "
                         f"{np.mean(c['first']):6.1f} {np.mean(c['last']):6.1f} {ratio:>22} "
                         f"{np.mean(c['last_stable']):18.2f}")
    return "\n".join(lines + claim_lines(claims))


def run(out, *, depths=DEPTHS, variants=VARIANTS, seeds=SEEDS, batch_size=BATCH, train_set=None,
        device="cpu", command=None, progress=True, log=print):
    """Measure every variant, depth and seed on batches of training digits (``train_set``: None
    for the bundled digits), print the table and the claims, write rank.json and rank.png in
    ``out``; returns the report written to rank.json (``command``: the command line, recorded
    with the machine and its load average before and after)."""
    start = time.perf_counter()
    load_before = os.getloadavg()
    train_set, _ = nets.datasets(train_set, None)
    variants = [v for v in VARIANTS if v in variants]
    bar = progress_bar(len(seeds) * len(depths) * len(variants), "rank", enabled=progress,
                       unit="net")
    runs = measure(train_set, depths=depths, variants=variants, seeds=seeds,
                   batch_size=batch_size, device=device, on_run=lambda r: bar.update())
    bar.close()
    summary = summarise(runs)
    claims = check_claims(summary)
    seconds = time.perf_counter() - start
    settings = {"data": train_set.name, "batch_size": batch_size, "depths": list(depths),
                "variants": variants, "seeds": list(seeds), "device": device,
                "batch_norm": "train mode (batch statistics)", "init": "He (the models' default)",
                "branch_scale": "resnet_nobn_small: last conv of each block x 1/sqrt(blocks)",
                "factor": FACTOR, "falls": FALLS, "seconds": round(seconds, 1),
                "protocol": PROTOCOL, "command": command,
                "machine": {**machine.describe(), "minires_threads": fast.num_threads()},
                "load_average": {"before": list(load_before), "after": list(os.getloadavg())}}
    report = {"settings": settings, "runs": runs, "summary": summary, "claims": claims}
    log("\n" + table(summary, claims) + "\n")
    output = Output(out)
    output.json("rank.json", report)
    output.figure("rank.png", plot_rank, runs,
                  title=f"Rank of a batch of {batch_size} digits' representations at "
                        f"initialisation, block by block (seeds {', '.join(map(str, seeds))})")
    output.done(seconds, log=log)
    return report
