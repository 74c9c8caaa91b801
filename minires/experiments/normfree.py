"""Training deep ResNets without normalisation: batch norm, none, SkipInit and Fixup, one recipe.

Batch norm lets a deep ResNet train because, at initialisation, it keeps the residual stream from
growing faster than linearly and each branch's share of it small (De and Smith 2020): the signal
propagation plot (``python -m minires signal``) shows the stream's variance growing by about one
per block with batch norm, doubling per block without it, and flat with SkipInit (a scalar at 0 on
each branch; De and Smith 2020) and Fixup (the last layer of each branch at 0, the others scaled
down by L^-1/2, scalar biases; Zhang, Dauphin and Ma 2019). The prediction, for the same net
trained with the same recipe:

    no normalisation   the logits start huge (the stream has grown like 2^L), the loss with them:
                       SGD diverges, or stalls at chance
    batch norm         trains
    SkipInit, Fixup    train without any normalisation, each block starting as the identity

This experiment trains the CIFAR ResNet of each depth (option-A shortcuts, ``models.cifar_resnet``
with ``norm`` and ``init``) in the four variants, for every seed, with one recipe (``RECIPE``,
chosen on tuning seeds: see ``PROTOCOL``), and records for each run: the loss and the logits'
size at initialisation (what the signal propagation predicts), the training and test error per
epoch, where training diverged (a NaN or infinite loss; ``train.TrainingDiverged``), and how fast
it trained (the first epoch with training error at most 50% and at most ``TRAINED``).
Training error is the running error over each epoch's augmented batches; test error is measured
after each epoch, in eval mode.

Outputs in ``out``: normfree.json (recipe, machine, histories, the summary and the claims),
normfree.csv (one row per variant, seed and epoch) and normfree.png (the curves).
"""
import time

import numpy as np

from .. import backend, fast, machine, models, optim, train
from .. import functional as F
from ..autograd import Tensor, no_grad
from . import nets, surgery
from .output import Output, progress_bar, save_figure

VARIANTS = ("batch_norm", "no_norm", "skipinit", "fixup")
LABELS = {"batch_norm": "batch norm", "no_norm": "no normalisation", "skipinit": "SkipInit",
          "fixup": "Fixup"}
MODEL_OPTIONS = {"batch_norm": {"norm": "batch", "init": "he"},
                 "no_norm": {"norm": None, "init": "he"},
                 "skipinit": {"norm": None, "init": "skipinit"},
                 "fixup": {"norm": None, "init": "fixup"}}
DEPTHS = (56,)
SEEDS = (0, 1, 2)
TRAINED = 0.10   # a run "trains" when its final training error is at most 10% (chance: 90%)
STALLED = 0.80   # a run that ends at or above 80% training error learned next to nothing; below,
                 # it "learns"
HALF = 0.50      # "how fast": the first epoch with training error at most 50% (and at most 10%)

# The shared digits recipe (nets.RECIPES["digits"]: batch 32, lr 0.025, momentum 0.9, weight
# decay 1e-4, /10 at 50% and 75% of the epochs) for fewer epochs and without its warm-up.
RECIPE = nets.RECIPES["digits"].replace(epochs=10, warmup=None)
QUICK = {"depths": (8,), "seeds": (0, 1), "epochs": 1, "limit": 64}

# How the recipe was chosen: written into normfree.json with every run.
PROTOCOL = (
    "One recipe for all four nets; chosen on tuning seeds 100 and 101, never on the seeds "
    "reported (0, 1, 2 by default), then fixed and run once. ResNet-56, 10 epochs of batch 32 "
    "(the budget: three seeds of the four nets in well under 15 minutes on 2 idle cores).",
    "Tried first: the shared digits recipe as it is, with its warm-up (lr 0.0025 until the "
    "training error is below 80%, then 0.025), for 6 epochs on seed 100: SkipInit and Fixup "
    "never left the warm-up (their training error stayed above 80%), so they trained at a tenth "
    "of the lr throughout and ended at 87-88% training error. So no warm-up: the paper uses it "
    "for ResNet-110 only.",
    "Then lr 0.025, 0.05 and 0.1 (0.1 on seed 100 only) without warm-up, 10 epochs. Final "
    "training error, seeds 100 / 101: lr 0.025: batch norm 3.4% / 1.6%, SkipInit 44.9% / 73.9%, "
    "Fixup 46.9% / 47.1%; lr 0.05: batch norm 14.8% / 27.5%, SkipInit 9.5% / 7.6%, Fixup stuck "
    "at chance (89.8-89.9%) in both; lr 0.1: batch norm 63.0%, SkipInit 6.1%, Fixup at chance. "
    "Without normalisation the net diverged in the first epoch (at step 3) at every lr and seed.",
    "Chosen: lr 0.025, the paper's lr per image (0.1 per 128 images) and the shared recipe's, "
    "the only one under which no net but the one without normalisation stalled at chance on a "
    "tuning seed. No lr made all three of batch norm, SkipInit and Fixup reach 10% training "
    "error within 10 epochs: batch norm wants the lower lr, SkipInit the higher, and Fixup "
    "collapses above 0.025.",
    "Checked after the choice, on seed 100 only, not part of the recipe: the authors' code "
    "trains Fixup's scalar biases and multipliers at a tenth of the lr (and uses mixup and 200 "
    "epochs). With only that change (their gradients scaled by 0.1), Fixup at lr 0.05 no longer "
    "collapsed: 16.2% training and 12.3% test error after 10 epochs. Here every parameter of "
    "every net gets the same lr.",
)


# -- one run -----------------------------------------------------------------------------------

def build_net(variant, depth, *, seed=0, num_classes=10, in_channels=1):
    """The CIFAR ResNet of ``depth`` in ``variant`` (seeded: every variant draws the same He conv
    weights for the same seed; Fixup rescales and zeroes some of them)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    backend.manual_seed(seed)
    return models.cifar_resnet(depth, num_classes=num_classes, in_channels=in_channels,
                               **MODEL_OPTIONS[variant])


def at_init(model, x, labels):
    """{"loss", "logit_std"} of ``model`` on one batch before training (train mode: batch
    statistics), the model left unchanged: how far the signal has grown by the logits."""
    with surgery.unchanged(model, training=True), no_grad():
        logits = model(Tensor(x))
        loss = float(F.softmax_cross_entropy(logits, labels).item())
    return {"loss": loss, "logit_std": float(np.std(backend.as_numpy(logits.data)))}


def train_variant(variant, depth, train_set, test_set, recipe, *, seed, device="cpu",
                  limit=None, progress=True):
    """Train one net with ``recipe``; returns {"history" (``train.fit``'s rows, up to where it
    stopped), "diverged" (None, or {"epoch", "step"} where the loss went NaN/inf), "init"
    (:func:`at_init`), "seconds"}. Seeded: the same weights for the same seed, and the same batch
    order and augmentation for every variant."""
    model = build_net(variant, depth, seed=seed, num_classes=train_set.num_classes,
                      in_channels=train_set.images.shape[1]).to(device)
    train_loader, test_loader, (px, py) = nets.build_loaders(train_set, test_set,
                                                             recipe.batch_size, seed, limit)
    init = at_init(model, backend.to_device(px, device), py)
    optimizer = optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    scheduler = optim.MultiStepLR(optimizer, list(recipe.milestones), gamma=0.1)
    history, diverged = [], None
    bar = progress_bar(recipe.epochs, f"{LABELS[variant]:>16}-{depth} seed {seed}",
                       enabled=progress, unit="epoch", leave=True)

    def on_epoch(row):
        history.append(row)
        bar.update()
        bar.set_postfix({"train_err": f"{row['train_error']:.1%}"})

    start = time.perf_counter()
    try:
        train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler,
                  epochs=recipe.epochs, device=device, warmup=recipe.warmup, progress=False,
                  on_epoch=on_epoch)
    except train.TrainingDiverged as e:
        diverged = {"epoch": e.epoch, "step": e.step}
    bar.close()
    return {"history": history, "diverged": diverged, "init": init,
            "seconds": round(time.perf_counter() - start, 1)}


# -- measuring: how each run went, and the claims ---------------------------------------------

def first_epoch_below(history, threshold):
    """The first epoch whose training error is at most ``threshold``, or None."""
    return next((r["epoch"] for r in history if r["train_error"] <= threshold), None)


def outcome(run):
    """One run's numbers: {"final_train_error", "final_test_error", "best_test_error" (None when
    no epoch finished), "diverged", "epoch_half", "epoch_trained", "trains", "init_loss",
    "init_logit_std"}. A diverged run ends at chance (0.9) for the claims."""
    h = run["history"]
    done = run["diverged"] is None and bool(h)
    final_train = h[-1]["train_error"] if done else 0.9
    final_test = h[-1]["test_error"] if done else 0.9
    return {"final_train_error": final_train, "final_test_error": final_test,
            "best_test_error": min(r["test_error"] for r in h) if h else None,
            "diverged": run["diverged"], "epoch_half": first_epoch_below(h, HALF),
            "epoch_trained": first_epoch_below(h, TRAINED), "trains": final_train <= TRAINED,
            "init_loss": run["init"]["loss"], "init_logit_std": run["init"]["logit_std"]}


def measure(runs):
    """{"outcomes": {depth: {variant: {seed: outcome}}}, "claims": check_claims(...)} from
    ``runs`` ({depth: {variant: {seed: train_variant result}}})."""
    outcomes = {d: {v: {s: outcome(r) for s, r in by_seed.items()} for v, by_seed in by_v.items()}
                for d, by_v in runs.items()}
    return {"outcomes": outcomes, "claims": check_claims(outcomes)}


def check_claims(outcomes):
    """The predictions of the signal propagation plot and the papers' claims, per depth, each
    checked in every seed: {key: {"holds", "claim", "detail"}} for the variants that were run.

    no_norm:     does not train: diverges, or ends at or above ``STALLED`` training error
    batch_norm:  trains: final training error at most ``TRAINED``
    skipinit, fixup: learns without normalisation (final training error below ``STALLED``);
                 trains as batch norm does, within the same epochs (at most ``TRAINED``); and
                 is slower than batch norm (reaches ``HALF`` training error later, or never)
    """
    claims = {}

    def add(key, holds, claim, by_seed, what):
        claims[key] = {"holds": bool(holds), "claim": claim + ", in every seed",
                       "detail": what + "; ".join(f"seed {s}: {v}" for s, v in by_seed.items())}

    def final(x):
        if x["diverged"]:
            return f"diverged in epoch {x['diverged']['epoch']}"
        return f"{100 * x['final_train_error']:.1f}%"

    def half(x):
        return "never" if x["epoch_half"] is None else f"epoch {x['epoch_half']}"

    for depth, by_variant in outcomes.items():
        net = f"ResNet-{depth}"
        for variant, by_seed in by_variant.items():
            o, label = list(by_seed.values()), LABELS[variant]
            finals = {s: final(x) for s, x in by_seed.items()}
            if variant == "no_norm":
                add(f"{variant}-{depth}",
                    all(x["diverged"] or x["final_train_error"] >= STALLED for x in o),
                    f"{net} without normalisation does not train (it diverges, or ends at >= "
                    f"{STALLED:.0%} training error)", finals, "final training error: ")
            elif variant == "batch_norm":
                add(f"{variant}-{depth}", all(x["trains"] for x in o),
                    f"{net} with batch norm trains (final training error <= {TRAINED:.0%})",
                    finals, "final training error: ")
            else:
                add(f"{variant}-{depth}",
                    all(not x["diverged"] and x["final_train_error"] < STALLED for x in o),
                    f"{net} with {label} learns without normalisation (final training error < "
                    f"{STALLED:.0%})", finals, "final training error: ")
                add(f"{variant}-{depth}-as-bn", all(x["trains"] for x in o),
                    f"{net} with {label} trains as batch norm does in the same epochs (final "
                    f"training error <= {TRAINED:.0%})", finals, "final training error: ")
                bn = by_variant.get("batch_norm")
                if bn is not None and set(bn) == set(by_seed):
                    later = {s: bn[s]["epoch_half"] is not None
                             and (x["epoch_half"] is None or bn[s]["epoch_half"] < x["epoch_half"])
                             for s, x in by_seed.items()}
                    add(f"{variant}-{depth}-slower", all(later.values()),
                        f"{net} with {label} reaches {HALF:.0%} training error later than with "
                        "batch norm (or never)", {s: f"{half(x)} ({half(bn[s])} with batch norm)"
                                                  for s, x in by_seed.items()},
                        "first epoch at <= 50% training error: ")
    return claims


# -- plots -------------------------------------------------------------------------------------

STYLE = {"batch_norm": "C0", "no_norm": "C3", "skipinit": "C2", "fixup": "k"}


def plot_curves(runs, path, title=None):
    """Training (dashed) and test (solid) error per epoch, one panel per depth, one colour per
    variant, every seed a line; a diverged run ends with an x at chance (90%).
    ``runs``: {depth: {variant: {seed: train_variant result}}}."""
    from matplotlib.figure import Figure

    depths = list(runs)
    fig = Figure(figsize=(6.5 * len(depths), 4.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(depths)))
    for ax, depth in zip(axes, depths):
        for variant, by_seed in runs[depth].items():
            c = STYLE.get(variant)
            for i, r in enumerate(by_seed.values()):
                h = r["history"]
                epochs = [0] + [row["epoch"] for row in h]
                label = LABELS.get(variant, variant) if i == 0 else None
                ax.plot(epochs, [90] + [100 * row["train_error"] for row in h], "--", color=c,
                        lw=1, alpha=0.8)
                ax.plot(epochs, [90] + [100 * row["test_error"] for row in h], "-", color=c,
                        lw=1.5, alpha=0.8, label=label)
                if r["diverged"]:
                    ax.plot([r["diverged"]["epoch"]], [90], "x", color=c, ms=9, mew=2,
                            label=f"{LABELS.get(variant, variant)}: diverged" if i == 0 else None)
        ax.axhline(100 * TRAINED, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 100)
        ax.set_xlabel("epoch (0 = initialisation, drawn at chance)")
        ax.set_ylabel("error (%): training dashed, test solid")
        ax.set_title(f"ResNet-{depth}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


# -- the table and the run ---------------------------------------------------------------------

def _cell(values, fmt):
    """"median [min, max]" of the values that are not None, each written by ``fmt``."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{fmt(np.median(values))} [{fmt(min(values))}, {fmt(max(values))}]"


def table(outcomes):
    """Markdown: per depth and variant, median [min, max] over seeds of the final training and
    test errors, the epochs to 50% and to ``TRAINED`` training error, the loss and logit std at
    initialisation, and how many seeds diverged."""
    lines = ["| net | final training error | final test error | epoch to <= 50% | "
             f"epoch to <= {TRAINED:.0%} | loss at init | logit std at init | diverged |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    pct = "{:.1f}%".format
    for depth, by_variant in outcomes.items():
        for variant, by_seed in by_variant.items():
            o = list(by_seed.values())
            n = len(o)

            def epochs(key):
                got = [x[key] for x in o if x[key] is not None]
                if not got:
                    return "never"
                return _cell(got, "{:.0f}".format) + ("" if len(got) == n
                                                      else f", {n - len(got)} never")

            lines.append(
                f"| ResNet-{depth}, {LABELS.get(variant, variant)} "
                f"| {_cell([100 * x['final_train_error'] for x in o], pct)} "
                f"| {_cell([100 * x['final_test_error'] for x in o], pct)} "
                f"| {epochs('epoch_half')} | {epochs('epoch_trained')} "
                f"| {_cell([x['init_loss'] for x in o], '{:.3g}'.format)} "
                f"| {_cell([x['init_logit_std'] for x in o], '{:.3g}'.format)} "
                f"| {sum(bool(x['diverged']) for x in o)} of {n} |")
    return "\n".join(lines)


def csv_rows(runs):
    """One row per (depth, variant, seed, epoch) for normfree.csv."""
    return [{"depth": d, "variant": v, "seed": s, **row} for d, by_v in runs.items()
            for v, by_seed in by_v.items() for s, r in by_seed.items() for row in r["history"]]


def run(out, *, depths=DEPTHS, variants=VARIANTS, seeds=SEEDS, recipe=RECIPE, limit=None,
        train_set=None, test_set=None, command=None, device="cpu", progress=True, log=print):
    """Train every variant at every depth for every seed with ``recipe``; write normfree.json,
    normfree.csv and normfree.png to ``out`` and print the table and the claims; returns the
    report written to normfree.json. ``limit``: train and test on random subsets of that size;
    ``train_set``, ``test_set``: None for the bundled digits; ``command``: for the report."""
    start, cpu_start = time.perf_counter(), time.process_time()
    device = backend.check_device(device)
    train_set, test_set = nets.datasets(train_set, test_set)
    recipe = recipe.at_most(limit)
    depths, seeds, variants = [int(d) for d in depths], [int(s) for s in seeds], tuple(variants)
    warm = f"warm-up at lr {recipe.warmup:g}, then " if recipe.warmup else ""
    log(f"training without normalisation on {train_set.name}: ResNet-"
        f"{', '.join(map(str, depths))} with {', '.join(LABELS[v] for v in variants)}; seeds "
        f"{', '.join(map(str, seeds))}; {recipe.epochs} epoch(s) of batch {recipe.batch_size}, SGD "
        f"with {warm}lr {recipe.lr:g} (/10 at epochs {list(recipe.milestones)}), momentum "
        f"{recipe.momentum}, weight decay {recipe.weight_decay:g}, augmentation")
    runs = {d: {v: {} for v in variants} for d in depths}
    for depth in depths:
        for seed in seeds:
            for variant in variants:
                r = runs[depth][variant][seed] = train_variant(
                    variant, depth, train_set, test_set, recipe, seed=seed, device=device,
                    limit=limit, progress=progress)
                last = r["history"][-1] if r["history"] else None
                log(f"  ResNet-{depth}, {LABELS[variant]}, seed {seed}: "
                    + (f"diverged in epoch {r['diverged']['epoch']}" if r["diverged"] else
                       f"training error {last['train_error']:.1%}, test error "
                       f"{last['test_error']:.1%}") + f" ({r['seconds']:.0f} s)")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    measured = measure(runs)
    n_train = min(len(train_set), limit or len(train_set))
    n_test = min(len(test_set), limit or len(test_set))
    report = {"data": train_set.name, "depths": depths, "variants": list(variants),
              "model_options": {v: MODEL_OPTIONS[v] for v in variants}, "seeds": seeds,
              "recipe": recipe.as_dict(), "images": {"train": n_train, "test": n_test},
              "limit": limit, "device": device, "command": command,
              "machine": {**machine.describe(), "minires_threads": fast.num_threads()},
              "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
              "thresholds": {"trained": TRAINED, "stalled": STALLED,
                             "half": HALF},
              **measured, "protocol": list(PROTOCOL),
              "runs": {d: {v: {s: {k: r[k] for k in ("diverged", "init", "seconds", "history")}
                               for s, r in by_seed.items()} for v, by_seed in by_v.items()}
                       for d, by_v in runs.items()}}
    log("\n" + table(measured["outcomes"]) + "\n")
    for c in measured["claims"].values():
        log(f"{'holds' if c['holds'] else 'FAILS'}: {c['claim']} ({c['detail']})")
    output = Output(out)
    output.json("normfree.json", report)
    output.csv("normfree.csv", ("depth", "variant", "seed") + train.HISTORY_KEYS, csv_rows(runs))
    output.figure("normfree.png", plot_curves, runs,
                  title=f"Training without normalisation on {train_set.name}: {len(seeds)} "
                        f"seed(s), {recipe.epochs} epochs, lr {recipe.lr:g}")
    log("")
    output.done(seconds, log=log)
    return report
