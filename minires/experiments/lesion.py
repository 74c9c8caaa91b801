"""Lesion study: delete blocks from a trained net at test time (Veit, Wilber and Belongie, 2016,
"Residual networks behave like ensembles of relatively shallow networks", NeurIPS, sec. 4).

Unrolling the shortcuts of n residual blocks, y_{i+1} = y_i + F_i(y_i), writes a ResNet as a sum
of 2^n paths from input to output, each through some subset of the residual functions
(Veit, eq. 3 and Fig. 1). Deleting block i at test time,

    ResNet:  y_{i+1} = shortcut(y_i)    (y_i, or the option-A/B shortcut where the shape changes)
    plain:   y_{i+1} = y_i              (only where the block keeps the shape)

removes the half of the paths that pass through F_i and keeps the other half. If the paths
behave like an ensemble, losing half of them costs a little accuracy; in a plain net, which has
a single path, it breaks that path. The study (Veit, Fig. 3 and 5):

    1. delete each block on its own and measure the test error;
    2. delete k random blocks (k = 1, 2, ...) several times each and measure the test error.

Blocks are replaced through the model's public modules (``Lesioned`` stands in for the block in
its stage, ``lesioned`` puts the blocks back afterwards, through ``surgery.swapped``); the models
are unchanged.

Veit's plain baseline had no batch norm; the plain nets here keep theirs, as the plain nets of
He et al. do (sec. 4.1).

``run`` trains the ResNet and plain net of each depth with the shared recipe
(``nets.RECIPES["digits"]``, the degradation experiment's), or loads another run's nets
(``from_dir``), runs both lesion experiments on the test set, and writes lesion.json and
lesion.png.
"""
import os
import time

import numpy as np

from .. import nn, train
from . import nets, surgery
from .output import Output, progress_bar, save_figure

CHANCE = 0.9  # ten classes
SMALL = 0.05  # "a few points": a lesion that raises the test error by at most 5 points


# -- the surgery -----------------------------------------------------------------------------------

class Lesioned(nn.Module):
    """A deleted block: y = block.shortcut(x) in a ResNet, y = x in a plain net.

    A ResNet block's output is ReLU(F(x) + shortcut(x)); with F gone it is ReLU(shortcut(x)) =
    shortcut(x), since x (the output of a ReLU) and so its shortcut are >= 0. A plain block has
    no shortcut: deleting it is only possible where it keeps the shape (stride 1, as many
    output as input channels), and leaves the identity.
    """

    def __init__(self, block):
        super().__init__()
        if not block.residual and not surgery.preserves_shape(block):
            raise ValueError("Lesioned: a plain block that changes the shape cannot be deleted "
                             f"(stride {block.stride}, {block.conv1.in_channels} -> "
                             f"{block.last_bn().weight.shape[0]} channels)")
        self.block = block

    def forward(self, x):
        return self.block.shortcut(x) if self.block.residual else x


def deletable(model):
    """Names of the blocks the study deletes: those that keep the shape (Veit, sec. 4.1)."""
    return [name for name, b in surgery.blocks(model) if surgery.preserves_shape(b)]


def lesioned(model, names):
    """A ``with`` block in which the named blocks of ``model`` are deleted (each replaced by its
    ``Lesioned``); they are put back after it (``surgery.swapped``)."""
    known = dict(surgery.blocks(model))
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"lesioned: no block named {unknown}; the blocks are {list(known)}")
    return surgery.swapped(model, {name: Lesioned(known[name]) for name in names})


def error_without(model, loader, deleted=(), device="cpu"):
    """Test error (fraction) of ``model`` in eval mode with the blocks ``deleted`` removed."""
    with lesioned(model, deleted):
        return train.evaluate(model, loader, device).error


# -- the two experiments ---------------------------------------------------------------------------

def single_lesions(model, loader, device="cpu", progress=None):
    """Veit, Fig. 3: {block name: test error with that block deleted} for every block that can go.

    In a ResNet every block can go (a shape-changing one becomes its option-A/B shortcut); in a
    plain net only the shape-preserving ones. ``progress``: a callable run after each block.
    """
    errors = {}
    for name, block in surgery.blocks(model):
        if block.residual or surgery.preserves_shape(block):
            errors[name] = error_without(model, loader, [name], device)
        if progress:
            progress()
    return errors


def random_lesions(model, loader, ks, draws, seed=0, device="cpu", progress=None):
    """Veit, Fig. 5: {k: [test error, ...]} with k random shape-preserving blocks deleted, ``draws``
    times each; draws are without replacement inside a draw, from a generator seeded by ``seed``."""
    names = deletable(model)
    rng = np.random.default_rng(seed)
    errors = {}
    for k in ks:
        if not 1 <= k <= len(names):
            raise ValueError(f"random_lesions: k must be in 1..{len(names)} (the deletable "
                             f"blocks), got {k}")
        errors[k] = []
        for _ in range(draws):
            chosen = sorted(rng.choice(len(names), size=k, replace=False))
            errors[k].append(error_without(model, loader, [names[i] for i in chosen], device))
            if progress:
                progress()
    return errors


# -- the experiment --------------------------------------------------------------------------------

def measure(model, test_loader, *, ks, draws, seed=0, device="cpu", progress=None):
    """Both lesion experiments on one trained net: {"intact", "single", "random", "summary",
    "all_blocks", "deletable"} (the last two: block names in forward order, and those that keep
    the shape). ``progress``: a callable run after each lesioned evaluation.

    summary: the intact error, the largest and mean error after deleting one shape-preserving
    block, the mean error after deleting a shape-changing one (ResNets only), and the mean error
    per k.
    """
    intact = error_without(model, test_loader, (), device)
    single = single_lesions(model, test_loader, device, progress=progress)
    keep = set(deletable(model))
    ks = [k for k in ks if k <= len(keep)]
    rand = random_lesions(model, test_loader, ks, draws, seed=seed, device=device,
                          progress=progress)
    same = [e for n, e in single.items() if n in keep]
    changing = [e for n, e in single.items() if n not in keep]
    summary = {"intact_error": intact,
               "single_max_error": max(same), "single_mean_error": float(np.mean(same)),
               "single_median_error": float(np.median(same)),
               "single_max_increase": max(same) - intact,
               # how many shape-preserving blocks cost at most SMALL (5 points) when deleted alone
               "single_small": int(sum(e - intact <= SMALL for e in same)),
               "single_count": len(same),
               "downsampling_mean_error": float(np.mean(changing)) if changing else None,
               "random_mean_error": {k: float(np.mean(v)) for k, v in rand.items()}}
    return {"intact": intact, "single": single, "random": rand, "summary": summary,
            "all_blocks": [n for n, _ in surgery.blocks(model)], "deletable": deletable(model)}


def plot_lesions(results, path, title=None):
    """Veit's Fig. 3 and 5 side by side: test error against the deleted block (left; the intact
    net's error dashed, shape-changing blocks marked) and against the number k of deleted blocks
    (right; every draw a dot, the mean a line). ``results``: {net name: ``measure`` result}."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    for i, (name, r) in enumerate(results.items()):
        c = f"C{i}"
        order = list(r["single"])
        all_blocks = r["all_blocks"]
        x = [all_blocks.index(n) + 1 for n in order]
        left.plot(x, [100 * r["single"][n] for n in order], ".-", color=c, lw=1,
                  label=f"{name}, one block deleted")
        left.axhline(100 * r["intact"], color=c, ls="--", lw=1, label=f"{name}, intact")
        for n in all_blocks:
            if n not in r["deletable"] and n in r["single"]:
                left.plot(all_blocks.index(n) + 1, 100 * r["single"][n], "x", color=c, ms=8)
        ks = sorted(r["random"])
        for k in ks:
            right.plot([k] * len(r["random"][k]), [100 * e for e in r["random"][k]], ".", color=c,
                       alpha=0.5)
        right.plot(ks, [100 * np.mean(r["random"][k]) for k in ks], "-", color=c, lw=2,
                   label=f"{name}, mean")
        right.plot([0], [100 * r["intact"]], "o", color=c)
    for ax in (left, right):
        ax.axhline(100 * CHANCE, color="grey", lw=0.8, ls=":", label="chance (90%)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 100)
    left.set_xlabel("deleted block (1 = next to the input; x: the block changes the shape)")
    left.set_ylabel("test error (%)")
    left.set_title("one block deleted (Veit et al., Fig. 3)")
    right.set_xlabel("number of blocks deleted at random (0 = intact)")
    right.set_title("k random shape-preserving blocks deleted (Fig. 5)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return save_figure(fig, path, title, dpi=90)


def table(results):
    """The numbers the command prints: per net, intact and lesioned test errors; then, per net,
    the error with each block deleted on its own (in forward order; * marks a block that changes
    the shape)."""
    lines = [f"{'net':>9} {'intact':>7} {'1 block: max':>13} {'median':>7} {'<= +5 points':>13} "
             f"{'downsampling':>13}   mean error with k random blocks deleted (k = 1, 2, ...)"]
    for name, r in results.items():
        s = r["summary"]
        down = ("-" if s["downsampling_mean_error"] is None
                else f"{s['downsampling_mean_error']:.1%}")
        by_k = " ".join(f"{v:.1%}" for v in s["random_mean_error"].values())
        small = f"{s['single_small']} of {s['single_count']}"
        lines.append(f"{name:>9} {s['intact_error']:7.1%} {s['single_max_error']:13.1%} "
                     f"{s['single_median_error']:7.1%} {small:>13} {down:>13}   {by_k}")
    lines.append("\nerror with one block deleted:")
    for name, r in results.items():
        cells = [f"{b.replace('layer', '')}{'' if b in r['deletable'] else '*'} {e:.1%}"
                 for b, e in r["single"].items()]
        lines.append(f"{name:>9}: " + ", ".join(cells))
    return "\n".join(lines)


def run(out, *, depths=(20, 56), recipe=nets.RECIPES["digits"], from_dir=None,
        ks=tuple(range(1, 11)), draws=5, seed=0, limit=None, train_set=None, test_set=None,
        device="cpu", progress=True, log=print):
    """Train (or load, ``from_dir``) the ResNet and plain net of each depth, ``measure`` each on
    the test set, write lesion.json and lesion.png to ``out`` and print the table; returns the
    report (what lesion.json holds). ``limit``: train and test on random subsets of that size.
    ``train_set``, ``test_set``: None for the bundled digits."""
    start = time.perf_counter()
    output = Output(out)
    train_set, test_set = nets.datasets(train_set, test_set)
    recipe = recipe.at_most(limit)
    _, test_loader, _ = nets.build_loaders(train_set, test_set, recipe.batch_size, seed, limit)
    results = {}
    for name in [f"{kind}{d}" for d in depths for kind in ("resnet", "plain")]:
        model, info = nets.get_net(name, train_set, test_set, recipe, from_dir=from_dir,
                                   save_dir=out, seed=seed, device=device, limit=limit,
                                   progress=progress)
        todo = len(surgery.blocks(model)) + draws * len([k for k in ks
                                                         if k <= len(deletable(model))])
        bar = progress_bar(todo, f"lesions {name}", enabled=progress, unit="eval")
        res = measure(model, test_loader, ks=ks, draws=draws, seed=seed, device=device,
                      progress=bar.update)
        bar.close()
        results[name] = {"training": info, **res}
    seconds = time.perf_counter() - start
    settings = {"data": train_set.name, "test_images": len(test_loader.dataset),
                "depths": list(depths), "ks": list(ks), "draws": draws, "seed": seed,
                "device": device, "limit": limit, "from": from_dir, "recipe": recipe.as_dict(),
                "seconds": round(seconds, 1)}
    report = {"settings": settings, "nets": results}
    output.json("lesion.json", report)
    output.figure("lesion.png", plot_lesions, results,
                  title=f"Deleting blocks at test time ({len(test_loader.dataset)} test digits, "
                        f"seed {seed})")
    log("\n" + table(results) + "\n")
    saved = [os.path.basename(r["training"]["checkpoint"]) for r in results.values()
             if "checkpoint" in r["training"]]
    output.done(seconds, extra=f"and the trained nets ({', '.join(saved)})" if saved else None,
                log=log)
    return report
