"""The record of a run: one row per epoch, as ``history.json``, ``history.csv`` and ``curves.png``.

A row holds ``HISTORY_KEYS`` (and ``test_top5_error`` when ``fit`` tests top-5): losses are mean
cross-entropies, errors fractions in [0, 1], ``lr`` the rate of the epoch's last step, ``seconds``
its wall time.
"""
import csv
import json
import os

from .. import io

HISTORY_KEYS = ("epoch", "train_loss", "train_error", "test_loss", "test_error", "lr", "seconds")
HISTORY_FILES = ("history.json", "history.csv", "curves.png")


def write_history(history, out_dir):
    """``history.json``, ``history.csv`` and ``curves.png`` in ``out_dir``, each atomically."""
    with io.atomic_write(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    with io.atomic_write(os.path.join(out_dir, "history.csv"), "w") as f:
        # HISTORY_KEYS first, then any others (test_top5_error).
        keys = list(HISTORY_KEYS) + [k for k in history[0] if k not in HISTORY_KEYS]
        writer = csv.DictWriter(f, keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    plot_history(history, os.path.join(out_dir, "curves.png"))


def plot_history(history, path, title=None):
    """Loss and error (%) per epoch, train dashed and test bold as in the paper's figures, to the
    PNG ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)  # renders to memory: no display, no global pyplot state
    epochs = [row["epoch"] for row in history]
    for ax, key, label in zip(fig.subplots(1, 2), ("loss", "error"),
                              ("cross-entropy loss", "error (%)")):
        scale = 100 if key == "error" else 1
        ax.plot(epochs, [row[f"train_{key}"] * scale for row in history], "--", color="C0",
                label="train")
        test = [(e, row[f"test_{key}"] * scale) for e, row in zip(epochs, history)
                if row[f"test_{key}"] is not None]
        top5 = [(e, row["test_top5_error"] * scale) for e, row in zip(epochs, history)
                if key == "error" and row.get("test_top5_error") is not None]
        if test:
            ax.plot(*zip(*test), "-", color="C1", linewidth=2,
                    label="test top-1" if top5 else "test")
        if top5:
            ax.plot(*zip(*top5), ":", color="C1", linewidth=2, label="test top-5")
        if key == "loss":
            # Epoch 1's test loss can be hundreds of times the rest (batch norm's running statistics
            # have not settled yet): a log axis keeps the later epochs readable.
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path, dpi=100)
