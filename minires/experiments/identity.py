"""Shortcut and activation variants in miniature (He, Zhang, Ren, Sun, 2016, "Identity Mappings in
Deep Residual Networks", sec. 3-4, Fig. 2 and Table 1, Fig. 4 and Table 2).

With an identity shortcut and nothing after the addition, x_{l+1} = x_l + F(x_l) (eq. 3), and the
gradient reaches every unit through a term that no weight can shrink (eq. 5). Anything else on the
shortcut multiplies that term, over L units, by a product: a scale lambda gives prod lambda_i
(eq. 7-8), which vanishes or explodes with depth. The paper tries the shortcuts of its Fig. 2 and
the activation orders of its Fig. 4 on ResNet-110 (CIFAR-10); here the same variants train, with
one recipe, a deep narrow CIFAR-layout net on the bundled 8x8 digits:

    Fig. 2 (original units, ReLU after the addition; g(x) = sigmoid(conv1x1(x) + b_g)):
      (a) identity            y = ReLU(F(x) + x)                  ``models.BasicBlock``
      (b) constant scaling    y = ReLU(F(x) + 0.5 x)              ``ScaledShortcutBlock``
      (c) exclusive gating    y = ReLU(g(x) F(x) + (1 - g(x)) x)  ``ExclusiveGatingBlock``
      (d) shortcut-only gate  y = ReLU(F(x) + (1 - g(x)) x)       ``ShortcutGatingBlock``
      (e) 1x1 conv shortcut   y = ReLU(F(x) + BN(conv1x1(x)))     ``models.BasicBlock``,
                              shortcut "C" on every unit, the two between stages included
      (f) dropout shortcut    y = ReLU(F(x) + dropout_0.5(x))     ``DropoutShortcutBlock``
    Fig. 4 (where BN and ReLU go; F's convs are the same):
      (a) original            y = ReLU(BN(conv(ReLU(BN(conv(x))))) + x)
      (b) BN after addition   y = ReLU(BN(conv(ReLU(BN(conv(x)))) + x))  ``BNAfterAdditionBlock``
      (c) ReLU before add.    y = ReLU(BN(conv(ReLU(BN(conv(x)))))) + x  ``ReLUBeforeAdditionBlock``
      (d) ReLU-only pre-act.  y = BN(conv(ReLU(BN(conv(ReLU(x)))))) + x  ``ReLUOnlyPreActBlock``
      (e) full pre-act.       y = conv(ReLU(BN(conv(ReLU(BN(x)))))) + x  ``models.PreActBlock``

(d) and (e) sit in ``models.PreActResNet`` (no BN on the stem, BN + ReLU before the pooling, sec.
4.1); the others in ``models.ResNet``. Each variant replaces the identity shortcuts; the two
where the shape changes (between stages) stay option A, zero-padding, in every variant.

Every variant trains with one ``nets.Recipe`` (``RECIPE``: SGD, momentum 0.9, weight decay 1e-4,
lr / 10 at 50% and 75% of the epochs, no warm-up) and one-pixel shifts; the same seed gives every
variant the same batches. Outputs in ``out``: identity_loss.png (training loss per epoch, the
paper's argument being about optimisation), identity.json (settings, histories, the table) and
identity.csv. ``merge`` makes one table and figure from several runs of the same recipe (halves of
the variants, more seeds).
"""
import json
import os
import time

import numpy as np

from .. import backend, models, nn, optim, train
from ..autograd import Tensor
from ..data import load_digits
from ..models import BasicBlock
from . import nets
from .output import Output, progress_bar, save_figure


def sigmoid(z):
    """1 / (1 + exp(-z)), from the engine's exp and division."""
    return 1 / (1 + (-z).exp())


class _OriginalBranch(BasicBlock):
    """The original unit's modules (conv1, bn1, conv2, bn2, downsample) with helpers for the
    variants."""

    def branch(self, x):
        """F(x) = BN(conv(ReLU(BN(conv(x))))), the residual function of Fig. 2."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def shortcut_of(self, x, variant):
        """``variant(x)`` on an identity shortcut; option A's zero-padding where the shape
        changes."""
        return variant(x) if self.downsample is None else self.downsample(x)


class ScaledShortcutBlock(_OriginalBranch):
    """Fig. 2(b), constant scaling: y = ReLU(residual_scale * F(x) + shortcut_scale * x).

    Over the units from l to L the shortcut carries x_l times prod lambda_i (eq. 7): 0.5^52 over
    ResNet-110's 52 identity shortcuts.
    """

    def __init__(self, in_planes, planes, stride=1, shortcut="A", shortcut_scale=0.5,
                 residual_scale=1.0):
        super().__init__(in_planes, planes, stride, shortcut)
        self.shortcut_scale, self.residual_scale = shortcut_scale, residual_scale

    def forward(self, x):
        out = self.branch(x)
        if self.residual_scale != 1.0:
            out = self.residual_scale * out
        return self.relu(out + self.shortcut_of(x, lambda v: self.shortcut_scale * v))


class _Gated(_OriginalBranch):
    """A 1x1 conv gate g(x) = sigmoid(conv1x1(x) + b_g), one gate per channel and position
    (Fig. 2(c), (d))."""

    def __init__(self, in_planes, planes, stride=1, shortcut="A", gate_bias=-6.0):
        super().__init__(in_planes, planes, stride, shortcut)
        self.gate_bias = gate_bias
        if self.downsample is None:  # gates only on identity shortcuts
            self.gate = nn.Conv2d(in_planes, planes, 1, bias=True)
            nn.init.constant_(self.gate.bias, gate_bias)
        else:
            self.gate = None

    def g(self, x):
        return sigmoid(self.gate(x))


class ExclusiveGatingBlock(_Gated):
    """Fig. 2(c), exclusive gating (as in highway networks): y = ReLU(g(x) F(x) + (1 - g(x)) x).

    b_g very negative starts every gate near 0: then the unit is nearly the identity and F nearly
    off.
    """

    def forward(self, x):
        if self.gate is None:
            return self.relu(self.branch(x) + self.downsample(x))
        g = self.g(x)
        return self.relu(g * self.branch(x) + (1 - g) * x)


class ShortcutGatingBlock(_Gated):
    """Fig. 2(d), shortcut-only gating: y = ReLU(F(x) + (1 - g(x)) x); b_g -> -inf gives the
    identity."""

    def forward(self, x):
        if self.gate is None:
            return self.relu(self.branch(x) + self.downsample(x))
        return self.relu(self.branch(x) + (1 - self.g(x)) * x)


class DropoutShortcutBlock(_OriginalBranch):
    """Fig. 2(f), dropout on the shortcut: y = ReLU(F(x) + m * x), m ~ Bernoulli(1 - p) per element.

    No 1 / (1 - p) rescaling: as in the paper, the shortcut is scaled by a random lambda whose
    expectation is 1 - p = 0.5; in eval mode it is scaled by that expectation.
    """

    def __init__(self, in_planes, planes, stride=1, shortcut="A", p=0.5):
        super().__init__(in_planes, planes, stride, shortcut)
        if not 0 <= p < 1:
            raise ValueError(f"DropoutShortcutBlock: p must be in [0, 1), got {p}")
        self.p = p

    def _drop(self, x):
        if not self.training:
            return (1 - self.p) * x
        keep = backend.default_rng().random(x.shape) >= self.p
        xp = backend.get_array_module(x.data)
        return x * Tensor(xp.asarray(keep.astype(x.dtype)))

    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut_of(x, self._drop))


class BNAfterAdditionBlock(_OriginalBranch):
    """Fig. 4(b): y = ReLU(BN(conv(ReLU(BN(conv(x)))) + x)); the BN now also stands on the
    shortcut path."""

    def forward(self, x):
        out = self.conv2(self.relu(self.bn1(self.conv1(x))))
        return self.relu(self.bn2(out + self.shortcut_of(x, lambda v: v)))


class ReLUBeforeAdditionBlock(_OriginalBranch):
    """Fig. 4(c): y = ReLU(F(x)) + x; the branch can only add, never subtract (F >= 0)."""

    def forward(self, x):
        return self.relu(self.branch(x)) + self.shortcut_of(x, lambda v: v)


class ReLUOnlyPreActBlock(_OriginalBranch):
    """Fig. 4(d): y = BN(conv(ReLU(BN(conv(ReLU(x)))))) + x; ReLU moved before the branch, BN
    kept after the convs."""

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(self.relu(x))))))
        return out + self.shortcut_of(x, lambda v: v)


def unit(cls, **kwargs):
    """A unit constructor with ``kwargs`` fixed, as ``models.ResNet`` calls it: (in, planes,
    stride, shortcut)."""
    def make(in_planes, planes, stride=1, shortcut="A"):
        return cls(in_planes, planes, stride, shortcut, **kwargs)
    make.expansion = cls.expansion
    make.__name__ = cls.__name__
    return make


# name: (label, figure, the paper's ResNet-110 CIFAR-10 test error in % or "fail", net, unit,
# shortcut)
VARIANTS = {
    "original": ("original (identity)", "Fig. 2(a) / 4(a)", "6.61", "resnet", BasicBlock, "A"),
    "scaling": ("constant scaling 0.5", "Fig. 2(b)", "fail", "resnet",
                unit(ScaledShortcutBlock), "A"),
    "exclusive_gating": ("exclusive gating, b_g = -6", "Fig. 2(c)", "8.70", "resnet",
                         unit(ExclusiveGatingBlock, gate_bias=-6.0), "A"),
    "shortcut_gating_0": ("shortcut-only gating, b_g = 0", "Fig. 2(d)", "12.86", "resnet",
                          unit(ShortcutGatingBlock, gate_bias=0.0), "A"),
    "shortcut_gating_6": ("shortcut-only gating, b_g = -6", "Fig. 2(d)", "6.91", "resnet",
                          unit(ShortcutGatingBlock, gate_bias=-6.0), "A"),
    "conv_shortcut": ("1x1 conv shortcut", "Fig. 2(e)", "12.22", "resnet", BasicBlock, "C"),
    "dropout_shortcut": ("dropout shortcut 0.5", "Fig. 2(f)", "fail", "resnet",
                         unit(DropoutShortcutBlock), "A"),
    "bn_after_addition": ("BN after addition", "Fig. 4(b)", "8.17", "resnet",
                          unit(BNAfterAdditionBlock), "A"),
    "relu_before_addition": ("ReLU before addition", "Fig. 4(c)", "7.84", "resnet",
                             unit(ReLUBeforeAdditionBlock), "A"),
    "relu_only_preact": ("ReLU-only pre-activation", "Fig. 4(d)", "6.71", "preact",
                         unit(ReLUOnlyPreActBlock), "A"),
    "full_preact": ("full pre-activation", "Fig. 4(e)", "6.37", "preact", models.PreActBlock, "A"),
}
TABLE1 = ("original", "scaling", "exclusive_gating", "shortcut_gating_0", "shortcut_gating_6",
          "conv_shortcut", "dropout_shortcut")
TABLE2 = ("original", "bn_after_addition", "relu_before_addition", "relu_only_preact",
          "full_preact")
# Defaults: the eleven variants with one seed take about 5.5 minutes of CPU time (330 s measured,
# one thread); --seeds 3 about 17 minutes.
DEPTH, WIDTHS = 32, (8, 16, 32)
RECIPE = nets.Recipe(epochs=10, batch_size=64, lr=0.1)
PAPER = ("He et al. 2016, Identity Mappings: Table 1 (shortcuts) and Table 2 (activations), "
         "ResNet-110 on CIFAR-10, test error %")


def build(variant, depth=DEPTH, widths=WIDTHS, num_classes=10, in_channels=1):
    """The CIFAR-layout net (6n + 2 layers, planes ``widths``) built from ``variant``'s unit."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (8, 14, 20, 56, 110, ...), got {depth}")
    _, _, _, net, block, shortcut = VARIANTS[variant]
    n = (depth - 2) // 6
    cls = models.PreActResNet if net == "preact" else models.ResNet
    return cls(block, [n, n, n], num_classes=num_classes, stem="cifar", shortcut=shortcut,
               in_channels=in_channels, widths=tuple(widths))


def recipe_settings(recipe, *, data, depth, widths, limit, augment=True):
    """What makes two runs comparable (``merge`` checks it), in identity.json's words and order:
    the data, the net, the training recipe (``nets.Recipe`` less its warm-up, which the variants
    never use), the augmentation and the subset of images."""
    fields = recipe.as_dict()
    del fields["warmup"]
    return {"data": data, "depth": depth, "widths": list(widths), **fields, "augment": augment,
            "limit": limit}


def train_variant(variant, train_set, test_set, recipe=RECIPE, *, depth=DEPTH, widths=WIDTHS,
                  seed=0, device="cpu", limit=None, progress=True):
    """Train one variant with ``recipe``; returns (history, diverged_at or None).

    history: ``train.fit``'s rows, one per epoch. A run whose loss turns NaN/inf stops there (the
    paper's "fail"), keeping the epochs before it; diverged_at is the epoch it failed in.
    """
    if recipe.warmup is not None:
        raise ValueError(f"train_variant: the variants train without warm-up, got warmup "
                         f"{recipe.warmup}")
    backend.manual_seed(seed)
    model = build(variant, depth, widths, train_set.num_classes, train_set.images.shape[1])
    model.to(device)
    # Same seed for every variant: the same batch order and the same augmentation draws.
    train_loader, test_loader, _ = nets.build_loaders(train_set, test_set, recipe.batch_size,
                                                      seed, limit)
    optimizer = optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    scheduler = optim.MultiStepLR(optimizer, list(recipe.milestones), gamma=0.1)
    bar = progress_bar(recipe.epochs, f"{variant} seed {seed}", enabled=progress, unit="epoch",
                       leave=False)
    history = []

    def on_epoch(row):
        history.append(row)
        bar.update()
        bar.set_postfix({"train_err": f"{row['train_error']:.1%}",
                         "test_err": f"{row['test_error']:.1%}"})

    try:
        train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler,
                  epochs=recipe.epochs, device=device, progress=False, on_epoch=on_epoch)
    except train.TrainingDiverged as e:
        return history, e.epoch
    finally:
        bar.close()
    return history, None


def measure(train_set, test_set, *, variants=tuple(VARIANTS), recipe=RECIPE, depth=DEPTH,
            widths=WIDTHS, seeds=(0,), limit=None, device="cpu", progress=True, on_run=None):
    """Train every variant for every seed (``train_variant``).

    Returns {variant: [{"seed", "history", "diverged_at", "seconds"}, ...]} in the order of
    ``variants`` and ``seeds``; ``on_run(variant, run)``, if given, is called after each run.
    """
    runs = {}
    for name in variants:
        runs[name] = []
        for seed in seeds:
            start = time.perf_counter()
            history, diverged = train_variant(name, train_set, test_set, recipe, depth=depth,
                                              widths=widths, seed=seed, device=device,
                                              limit=limit, progress=progress)
            runs[name].append({"seed": int(seed), "history": history, "diverged_at": diverged,
                               "seconds": round(time.perf_counter() - start, 1)})
            if on_run is not None:
                on_run(name, runs[name][-1])
    return runs


def plot_loss(runs, path, title=None):
    """Training loss per epoch, one panel per table (Fig. 2 shortcuts, Fig. 4 orders), mean over
    seeds; a dotted line where a seed diverged."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, names, heading in ((axes[0], TABLE1, "shortcuts (Fig. 2, Table 1)"),
                               (axes[1], TABLE2, "activation orders (Fig. 4, Table 2)")):
        for c, name in enumerate(n for n in names if n in runs):
            seeds = runs[name]
            curves = [[r["train_loss"] for r in s["history"]] for s in seeds]
            length = min(len(cv) for cv in curves)
            if length:
                mean = np.mean([cv[:length] for cv in curves], axis=0)
                ax.plot(range(1, length + 1), mean, "-o", ms=3, color=f"C{c}",
                        label=VARIANTS[name][0])
            for s in seeds:
                if s["diverged_at"] is not None:
                    ax.axvline(s["diverged_at"], color=f"C{c}", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(heading)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss (cross-entropy, log scale)")
    return save_figure(fig, path, title, dpi=80)


def summarise(runs):
    """Rows of the table: per variant, final training/test error (mean and per seed), and
    failures."""
    rows = []
    for name, seeds in runs.items():
        label, figure, paper = VARIANTS[name][:3]
        done = [s for s in seeds if s["diverged_at"] is None and s["history"]]
        train_err = [s["history"][-1]["train_error"] for s in done]
        test_err = [s["history"][-1]["test_error"] for s in done]
        final_loss = [s["history"][-1]["train_loss"] for s in done]
        rows.append({"variant": name, "label": label, "figure": figure, "paper_test_error": paper,
                     "seeds": [s["seed"] for s in seeds],
                     "train_error": float(np.mean(train_err)) if train_err else None,
                     "test_error": float(np.mean(test_err)) if test_err else None,
                     "final_train_loss": float(np.mean(final_loss)) if done else None,
                     "train_errors": train_err, "test_errors": test_err,
                     "diverged": [s["diverged_at"] for s in seeds if s["diverged_at"] is not None]})
    return rows


def table(rows):
    """The table the command prints: ours (final training and test error, loss) beside the
    paper's test error, one row per variant of ``summarise``."""
    lines = [f"{'variant':>31} {'figure':>17} {'train err':>10} {'test err':>9} {'loss':>7}   "
             "paper (CIFAR-10, ResNet-110)"]
    for r in rows:
        if r["train_error"] is None:
            ours = f"{'diverged':>10} {'':>9} {'':>7}"
        else:
            ours = f"{r['train_error']:10.2%} {r['test_error']:9.2%} {r['final_train_loss']:7.4f}"
        note = ""
        if r["diverged"] and r["train_error"] is not None:
            note = f"  ({len(r['diverged'])} of {len(r['seeds'])} seeds diverged)"
        if len(r["seeds"]) > 1 and r["train_errors"]:
            note += (f"  [seeds {'/'.join(map(str, r['seeds']))}: train "
                     f"{' '.join(f'{e:.1%}' for e in r['train_errors'])}, "
                     f"test {' '.join(f'{e:.1%}' for e in r['test_errors'])}]")
        paper = r["paper_test_error"] + ("%" if r["paper_test_error"] != "fail" else "")
        lines.append(f"{r['label']:>31} {r['figure']:>17} {ours}   {paper}{note}")
    return "\n".join(lines)


def run(out, *, variants=tuple(VARIANTS), recipe=RECIPE, depth=DEPTH, widths=WIDTHS, seeds=(0,),
        data="digits", train_set=None, test_set=None, limit=None, device="cpu", progress=True,
        log=print):
    """Train every variant for every seed; print the table; write identity.json, identity.csv
    and identity_loss.png into ``out``; returns the JSON's dict. ``data`` names the data set in
    the settings (None ``train_set``: the bundled digits)."""
    if train_set is None:
        if data != "digits":
            raise ValueError("run: pass train_set and test_set for data other than the bundled "
                             "digits")
        train_set, test_set = load_digits()
    seeds = [int(s) for s in seeds]

    def report_run(name, result):
        last = result["history"][-1] if result["history"] else None
        state = (f"diverged at epoch {result['diverged_at']}" if result["diverged_at"] else
                 f"train error {last['train_error']:.2%}, test error {last['test_error']:.2%}, "
                 f"loss {last['train_loss']:.4f}")
        log(f"  {VARIANTS[name][0]:>31} seed {result['seed']}: {state} "
            f"({result['seconds']:.0f} s)")

    start = time.perf_counter()
    runs = measure(train_set, test_set, variants=variants, recipe=recipe, depth=depth,
                   widths=widths, seeds=seeds, limit=limit, device=device, progress=progress,
                   on_run=report_run)
    seconds = time.perf_counter() - start
    settings = {**recipe_settings(recipe, data=data, depth=depth, widths=widths, limit=limit),
                "seeds": seeds, "device": device, "seconds": round(seconds, 1)}
    return _write(Output(out), runs, settings, log, seconds)


def _write(output, runs, settings, log, seconds=None):
    """Print the table and write identity.json, identity.csv and identity_loss.png for ``runs``
    ({variant: [{"seed", "history", "diverged_at", "seconds"}, ...]}); returns the JSON's dict.
    ``seconds``: the time the closing line reports (None: none)."""
    rows = summarise(runs)
    log("\n" + table(rows))
    report = {"settings": {**settings, "paper": PAPER}, "table": rows, "runs": runs}
    output.json("identity.json", report)
    output.csv("identity.csv", ("variant", "seed") + train.HISTORY_KEYS,
               [{"variant": name, "seed": s["seed"], **row}
                for name, seed_runs in runs.items() for s in seed_runs for row in s["history"]])
    n_seeds = "/".join(map(str, sorted({len(v) for v in runs.values()})))
    output.figure("identity_loss.png", plot_loss, runs,
                  title=f"{settings['depth']}-layer nets, widths "
                        f"{'/'.join(map(str, settings['widths']))}, on {settings['data']}: "
                        f"{settings['epochs']} epochs, lr {settings['lr']}, mean of {n_seeds} "
                        "seed(s); dotted: diverged")
    log("")
    output.done(seconds, log=log)
    return report


def merge(folders, out, log=print):
    """One table and figure from several runs of the same recipe (e.g. halves of the variants, or
    more seeds, run in parallel): reads each folder's identity.json, writes the merged outputs
    into ``out``; returns the merged JSON's dict."""
    docs = [_read_run(folder) for folder in folders]
    recipes = [_comparable(doc["settings"], folder) for folder, doc in zip(folders, docs)]
    runs, seen = {}, set()
    for folder, doc, recipe in zip(folders, docs, recipes):
        differ = [k for k in recipes[0] if recipe[k] != recipes[0][k]]
        if differ:
            raise ValueError(f"merge: {folder} was trained with other settings "
                             f"({', '.join(differ)}) than {folders[0]}")
        for name, seed_runs in doc["runs"].items():
            for s in seed_runs:
                if (name, s["seed"]) in seen:
                    raise ValueError(f"merge: {name} seed {s['seed']} appears twice "
                                     f"(again in {folder})")
                seen.add((name, s["seed"]))
                runs.setdefault(name, []).append(s)
    runs = {name: sorted(runs[name], key=lambda s: s["seed"]) for name in VARIANTS if name in runs}
    settings = {**recipes[0], "seeds": sorted({s for _, s in seen}),
                "device": docs[0]["settings"]["device"],
                "seconds": round(sum(d["settings"]["seconds"] for d in docs), 1),
                "merged_from": list(folders)}
    return _write(Output(out), runs, settings, log)


def _read_run(folder):
    """The identity.json of ``folder``, as ``run`` writes it: {"settings": {...}, "runs": {variant:
    [{"seed", "history", "diverged_at", ...}]}}; anything else is one ValueError naming the
    file (and the field)."""
    path = os.path.join(folder, "identity.json")
    if not os.path.isfile(path):
        raise ValueError(f"merge: no identity.json in {folder}")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:  # json.JSONDecodeError and UnicodeDecodeError are these
        raise ValueError(f"merge: {path} is not a readable JSON file ({e})") from None
    except RecursionError:
        raise ValueError(f"merge: {path} is nested too deep to be an identity.json") from None

    def bad(field, expected):
        return ValueError(f"merge: {path} is not an identity.json of this command: its {field} "
                          f"is not {expected}")

    if not isinstance(doc, dict):
        raise bad("top level", f"an object (it is a {type(doc).__name__})")
    if not isinstance(doc.get("settings"), dict):
        raise bad('"settings"', "an object of the run's settings")
    for key in ("device", "seconds"):
        if key not in doc["settings"]:
            raise ValueError(f"merge: the identity.json in {folder} does not record '{key}'")
    if not isinstance(doc["settings"]["seconds"], (int, float)):
        raise bad('"settings"."seconds"', "a number")
    if not isinstance(doc.get("runs"), dict):
        raise bad('"runs"', "an object of variants")
    for name, seed_runs in doc["runs"].items():
        if not isinstance(seed_runs, list):
            raise bad(f'"runs"."{name}"', "a list of runs")
        for i, r in enumerate(seed_runs):
            where = f'"runs"."{name}"[{i}]'
            if not (isinstance(r, dict) and isinstance(r.get("seed"), int)
                    and isinstance(r.get("history"), list) and "diverged_at" in r):
                raise bad(where, "a run (seed, history, diverged_at)")
            for row in r["history"]:
                if not isinstance(row, dict) or not all(
                        isinstance(row.get(k), (int, float)) or row.get(k) is None
                        for k in ("train_loss", "train_error", "test_error")):
                    raise bad(f"{where} history", "a list of epochs' numbers")
    return doc


def _comparable(settings, folder):
    """``recipe_settings`` of a run, read back from its identity.json's settings."""
    try:
        recipe = nets.Recipe(**{k: settings[k] for k in ("epochs", "batch_size", "lr", "momentum",
                                                         "weight_decay")},
                             milestones=tuple(settings["milestones"]))
        return recipe_settings(recipe, data=settings["data"], depth=settings["depth"],
                               widths=settings["widths"], limit=settings["limit"],
                               augment=settings["augment"])
    except KeyError as e:
        raise ValueError(f"merge: the identity.json in {folder} does not record {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"merge: the settings of the identity.json in {folder} are not a "
                         f"run's ({e})") from None
