"""The degradation problem (paper sec. 4.1 and 4.2, Figure 6), in miniature.

A deeper plain net holds the shallower one as a solution (its extra layers set to identities),
yet trained by SGD it reaches a *higher training error*: that is degradation, an optimisation
failure rather than overfitting. The residual twins, y = F(x) + x, do not degrade: deeper is
as good or better. This command trains plain-20, plain-56, ResNet-20 and ResNet-56 with one recipe
(the paper's: SGD, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 50% and 75% of the
epochs, its augmentation) and plots training (dashed) and test (bold) error per epoch, plain nets
on the left and ResNets on the right, as in Figure 6. After every epoch it also records the
per-layer gradient norms on one fixed training batch (``flow.EpochRecorder``).

Training error is the running error over each epoch's augmented mini-batches, as the network
trains (the paper plots it the same way); test error is measured after the epoch, in eval mode.
On the 8x8 digits "the paper's augmentation" is a random shift by up to one pixel, no flips.

Outputs in ``--out``: degradation.png (the curves), flow_over_training.png (the gradient-norm
profile of each net after every epoch), degradation.json (settings, histories, per-epoch gradient
norms) and degradation.csv (one row per net and epoch).
"""
import csv
import re

import numpy as np

from . import backend, data, flow, io, models, optim, train

# Epochs per data set: digits sized for about ten minutes on 2 CPU cores; cifar10 the paper's 64k
# iterations at batch 128 (164 epochs), which needs a GPU. Batch size and lr are train.DEFAULTS'.
EPOCHS = {"digits": 20, "cifar10": 164}


def build_loaders(train_set, test_set, batch_size, seed, limit=None):
    """(train loader, test loader, probe batch); ``limit`` keeps a random subset of each split."""
    if limit is not None:
        rng = np.random.default_rng(seed)
        train_set = train_set.subset(rng.permutation(len(train_set))[:limit])
        test_set = test_set.subset(rng.permutation(len(test_set))[:limit])
    train_loader = data.DataLoader(train_set, batch_size, shuffle=True, seed=seed,
                                   augment=data.paper_augment(train_set))
    test_loader = data.DataLoader(test_set, 256)
    # The gradient-flow probe: the first training images, unaugmented, the same for every net and epoch.
    probe = next(iter(data.DataLoader(train_set, min(batch_size, len(train_set)))))
    return train_loader, test_loader, probe


def train_one(name, train_set, test_set, *, epochs, batch_size, lr, milestones, seed, device, limit=None,
              progress=True):
    """Train one net with the shared recipe; returns (history, flow records per epoch)."""
    from tqdm.auto import tqdm

    backend.manual_seed(seed)
    model = models.cifar_resnet(_depth(name), num_classes=train_set.num_classes, in_channels=train_set.images.shape[1],
                                shortcut="A" if name.startswith("resnet") else None)
    model.to(device)
    # Same seed for every net: the same batch order and the same augmentation draws.
    train_loader, test_loader, (px, py) = build_loaders(train_set, test_set, batch_size, seed, limit)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    scheduler = optim.MultiStepLR(optimizer, milestones, gamma=0.1)
    recorder = flow.EpochRecorder(model, px, py)
    recorder(0)  # at initialisation
    history = []
    bar = tqdm(range(1, epochs + 1), desc=f"{name:>9}", unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        # fit has no per-epoch callback, so it runs one epoch at a time; optimizer, scheduler and
        # loaders carry their state across calls, which makes this the same as one fit(epochs=N).
        row = train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=1,
                        device=device, progress=False)[0]
        history.append({**row, "epoch": epoch})
        recorder(epoch)
        bar.set_postfix({"train_err": f"{row['train_error']:.1%}", "test_err": f"{row['test_error']:.1%}"})
    bar.close()
    return history, recorder.records


def _depth(name):
    return int(re.search(r"\d+$", name).group())


def write_csv(histories, path):
    """One row per (net, epoch) with ``train.HISTORY_KEYS``: the curves, for a spreadsheet or pandas."""
    with io.atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, ("net",) + train.HISTORY_KEYS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for name, hist in histories.items():
            writer.writerows({"net": name, **row} for row in hist)
    return path


def plot_degradation(histories, path, milestones=(), title=None):
    """Figure 6 in miniature: error (%) per epoch, training dashed, test bold; plain left, ResNet right.

    ``histories``: {net name ("plain20", "resnet56", ...): fit history}.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    depths = sorted({_depth(n) for n in histories})
    colours = {d: f"C{i}" for i, d in enumerate(depths)}
    shown = []
    for ax, kind, label in ((axes[0], "plain", "plain"), (axes[1], "resnet", "ResNet")):
        for name, hist in histories.items():
            if not name.startswith(kind):
                continue
            depth = _depth(name)
            epochs = [r["epoch"] for r in hist]
            train_err = [100 * r["train_error"] for r in hist]
            test_err = [100 * r["test_error"] for r in hist]
            c = colours[depth]
            ax.plot(epochs, train_err, "--", color=c, lw=1, label=f"{label}-{depth} train")
            ax.plot(epochs, test_err, "-", color=c, lw=2.2, label=f"{label}-{depth} test")
            skip = max(1, len(hist) // 10)  # the first epochs' near-chance errors would flatten the rest
            shown += (train_err[skip:] + test_err[skip:]) or (train_err + test_err)
        for m in milestones:
            ax.axvline(m, color="grey", lw=0.6, alpha=0.5)
        ax.set_title(f"{label} nets")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, not 2.5, 7.5, ...
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)  (dashed: training, bold: test)")
    if shown:
        axes[0].set_ylim(0, min(100, 1.15 * max(shown) + 0.5))
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path, dpi=80)
    return path
