"""Training: ``fit`` and ``evaluate``, with progress, history, curves and exact resume.

One epoch is mini-batch SGD over the training set (sec. 3.4 and 4.2 of the paper):

    for each batch (x, y):  L = mean_n CE(model(x)_n, y_n);  backward;  optimizer.step()

then the learning-rate schedule steps, the model is evaluated on the test set and, with
``out_dir``, the epoch is recorded: ``history.json`` and ``history.csv`` (one row per epoch),
``curves.png`` and ``checkpoint.npz``, each written atomically.

A checkpoint holds everything the next epoch depends on: parameters and batch-norm statistics,
momentum buffers, the schedule, the loaders' and minires's random generators, the warm-up state
and the history, and the run's settings (``config``). So ``resume=True`` continues the run
exactly: on the CPU, 1 + 1 epochs give the same bits as 2 (with the same number of BLAS threads:
another count sums in another order). Checkpoints are .npz arrays plus JSON metadata, never pickles.

The checkpoint is written before the history files, and a resume rewrites those from the
checkpoint's history, so a kill between the two loses nothing; a resume or a new start also
removes the temporary files a kill mid-write leaves behind.

``python -m minires train`` (``minires/cli/train.py``) trains ResNet-20 on the bundled digits.
"""
import csv
import json
import math
import os
import time
import warnings

import numpy as np

from . import backend, evaluation, io, optim
from . import functional as F
from .autograd import Tensor, no_grad

HISTORY_KEYS = ("epoch", "train_loss", "train_error", "test_loss", "test_error", "lr", "seconds")
CHECKPOINT = "checkpoint.npz"
CONFIG = "config.json"  # the run's settings, as the train command wrote them
# The files of one run: a run folder holds these and nothing of another run.
RUN_FILES = (CONFIG, CHECKPOINT, "history.json", "history.csv", "curves.png", "multiscale.json")
CHECKPOINT_FORMAT = "minires-checkpoint-1"
WARMUP_ERROR = 0.8  # the paper's ResNet-110 warm-up lasts until the training error is below 80%
# How often (in steps) the loss is read back for the progress bar and the NaN check. Reading a
# GPU value waits for all queued work, so on the GPU it is rare; on the CPU it costs nothing.
SYNC_EVERY = {"cpu": 1, "gpu": 25}
# NumPy's floating-point warnings (as raised in the map_chunks worker threads, which np.errstate
# does not reach): silenced during training, where a non-finite loss is reported on its own.
_FLOAT_WARNINGS = r"(overflow|invalid value|divide by zero) encountered"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``epoch`` and ``step`` say where; the last good checkpoint is kept."""

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch, self.step = epoch, step


# -- evaluation ----------------------------------------------------------------------------------

def evaluate(model, loader, device="cpu"):
    """(mean cross-entropy, error fraction) of ``model`` in eval mode over every batch of ``loader``."""
    device = backend.check_device(device)
    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        with no_grad():
            for x, y in loader:
                logits = model(Tensor(backend.to_device(x, device)))
                # Sums stay on the device; one read-back at the end.
                loss_sum = loss_sum + F.softmax_cross_entropy(logits, y).data * len(y)
                correct = correct + (logits.data.argmax(axis=1) == backend.to_device(y, device)).sum()
                seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return float(loss_sum) / seen, 1.0 - int(correct) / seen


# -- warm-up -------------------------------------------------------------------------------------

class Warmup:
    """Paper, sec. 4.2, for ResNet-110: "we use 0.01 to warm up the training until the training
    error is below 80% (about 400 iterations), and then go back to 0.1 and continue training".

    While ``active`` the optimizer runs at ``lr``; the training error is measured over windows of
    at least ``window`` images, and the first window below 80% ends the warm-up.
    """

    def __init__(self, lr=0.01, window=256):
        if not lr > 0:
            raise ValueError(f"warmup: the warm-up lr must be > 0, got {lr}")
        self.lr, self.window, self.active = float(lr), window, True
        self._seen = self._correct = 0

    def observe(self, correct, seen):
        """Count a stretch of training results; True when the warm-up has just ended."""
        self._correct, self._seen = self._correct + correct, self._seen + seen
        if self._seen < self.window:
            return False
        error = 1 - self._correct / self._seen
        self._seen = self._correct = 0
        if error < WARMUP_ERROR:
            self.active = False
            self.last_error = error
        return not self.active

    def state_dict(self):
        return {"lr": self.lr, "active": self.active, "seen": self._seen, "correct": self._correct}

    def load_state_dict(self, state):
        self.lr, self.active = float(state["lr"]), bool(state["active"])
        self._seen, self._correct = int(state["seen"]), int(state["correct"])


# -- training ------------------------------------------------------------------------------------

def fit(model, train_loader, test_loader=None, *, optimizer, scheduler=None, epochs, device="cpu",
        out_dir=None, resume=False, warmup=None, progress=True, config=None, top5=False):
    """Train for epochs 1..``epochs`` (with ``resume``, from the one after the checkpoint's); returns the history.

    history: one dict per epoch with ``HISTORY_KEYS``; losses are mean cross-entropies and errors
    fractions in [0, 1] (test values None without a ``test_loader``); lr is the rate of the
    epoch's last step; seconds its wall time. ``warmup``: None, or the warm-up lr (the paper's
    0.01) used until the training error drops below 80%. ``config``: the run's settings (a
    JSON-able dict), kept in every checkpoint; with ``resume`` the checkpoint's must be the same
    (``epochs`` may differ). ``top5``: test with ``evaluation.evaluate`` (top-1 and top-5 error;
    several crops per image averaged) and record ``test_top5_error`` too. A ``ReduceLROnPlateau``
    scheduler watches the test error (without a test loader, the training error). Raises
    ``TrainingDiverged`` if the loss goes NaN/inf, leaving the last good checkpoint in ``out_dir``.
    """
    device = backend.check_device(device)
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if resume and out_dir is None:
        raise ValueError("fit: resume=True needs the out_dir that holds the checkpoint")
    warm = Warmup(warmup) if warmup is not None else None
    model.to(device)  # before loading optimizer state, so momentum buffers land on the same device
    path = os.path.join(out_dir, CHECKPOINT) if out_dir is not None else None
    if out_dir is not None:
        for name in RUN_FILES:
            io.remove_leftovers(os.path.join(out_dir, name))
    history = []
    if resume:
        if not os.path.exists(path):
            raise FileNotFoundError(f"fit: nothing to resume, {path} does not exist")
        history = load_checkpoint(path, model, optimizer, scheduler, [train_loader, test_loader], warm, config)
        # The checkpoint's history is the record: rewrite the files from it, in case a kill
        # came between the last checkpoint and its history.
        write_history(history, out_dir)
        if progress:
            print(f"resuming from {path} after epoch {len(history)}")
        if len(history) >= epochs:
            print(f"{path} has already trained {len(history)} epochs (asked for {epochs}): nothing to do")
            return history

    from tqdm.auto import tqdm

    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        scheduled_lr = optimizer.lr
        if warm is not None and warm.active:
            optimizer.lr = warm.lr
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress,
                   dynamic_ncols=True)
        try:
            # A diverging loss overflows on its way to inf/NaN; the check below reports that in one
            # message, so NumPy's floating-point warnings would only repeat it, less clearly.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning, message=_FLOAT_WARNINGS)
                train_loss, train_error = _train_epoch(model, train_loader, optimizer, device, epoch, bar, warm,
                                                       scheduled_lr)
                test_loss = test_error = test_top5 = None
                if test_loader is not None and top5:
                    result = evaluation.evaluate(model, test_loader, device)
                    test_loss, test_error, test_top5 = result["loss"], result["top1_error"], result["top5_error"]
                elif test_loader is not None:
                    test_loss, test_error = evaluate(model, test_loader, device)
            if test_loss is not None and not math.isfinite(test_loss):
                raise TrainingDiverged(f"the test loss is {test_loss} after epoch {epoch}", epoch, None)
        except BaseException as e:
            bar.close()  # also on Ctrl-C, so the caller's message starts on a line of its own
            if not isinstance(e, TrainingDiverged):
                raise
            # In epoch 1 a checkpoint in out_dir can only be left from an earlier run, not a good state of this one.
            kept = (f"the last good checkpoint, {path}, is from epoch {epoch - 1}"
                    if path is not None and epoch > 1 and os.path.exists(path) else "no checkpoint was written")
            raise TrainingDiverged(f"training diverged: {e}; stopped ({kept}). "
                                   "Try a lower --lr, or --warmup for very deep nets.", e.epoch, e.step) from None
        lr = optimizer.lr
        optimizer.lr = scheduled_lr  # the warm-up only overrides the schedule, never changes it
        if isinstance(scheduler, optim.ReduceLROnPlateau):
            scheduler.step(test_error if test_error is not None else train_error)
        elif scheduler is not None:
            scheduler.step()
        history.append({"epoch": epoch, "train_loss": train_loss, "train_error": train_error,
                        "test_loss": test_loss, "test_error": test_error, "lr": lr,
                        "seconds": round(time.perf_counter() - start, 3)})
        if top5:
            history[-1]["test_top5_error"] = test_top5
        summary = {"loss": f"{train_loss:.3f}", "train_acc": f"{1 - train_error:.1%}"}
        if test_error is not None:
            summary["test_acc"] = f"{1 - test_error:.1%}"
        bar.set_postfix(summary)
        bar.close()
        if out_dir is not None:
            # The checkpoint first: it is the record a resume rebuilds the history files from.
            save_checkpoint(path, model, optimizer, scheduler, [train_loader, test_loader], warm, history, config)
            write_history(history, out_dir)
    if out_dir is not None:
        print(f"wrote {os.path.join(out_dir, 'history.json')} (and .csv), {os.path.join(out_dir, 'curves.png')}, {path}")
    return history


def _train_epoch(model, loader, optimizer, device, epoch, bar, warm, scheduled_lr):
    """One pass over ``loader``; returns (mean training loss, training error) of the epoch."""
    model.train()
    sync_every = SYNC_EVERY[device]
    loss_sum, correct, seen = 0.0, 0, 0
    mark_correct, mark_seen, mark_time = 0, 0, time.perf_counter()
    for step, (x, y) in enumerate(loader, 1):
        logits = model(Tensor(backend.to_device(x, device)))
        loss = F.softmax_cross_entropy(logits, y)  # y stays on the host: its range check needs no GPU read
        loss_sum = loss_sum + loss.data * len(y)
        correct = correct + (logits.data.argmax(axis=1) == backend.to_device(y, device)).sum()
        seen += len(y)
        if step % sync_every == 0 or step == len(loader):
            # Checked before the update, so on the CPU no step is ever taken from a NaN loss.
            value, total = float(loss.data), float(loss_sum)
            if not (math.isfinite(value) and math.isfinite(total)):
                where = f"step {step}" if sync_every == 1 else f"step {step} or one of the {sync_every - 1} before it"
                raise TrainingDiverged(f"the loss is {value if not math.isfinite(value) else total} "
                                       f"at epoch {epoch}, {where} (lr {optimizer.lr:g})", epoch, step)
            n_correct, now = int(correct), time.perf_counter()
            if warm is not None and warm.active and warm.observe(n_correct - mark_correct, seen - mark_seen):
                bar.write(f"warm-up over at epoch {epoch}, step {step}: training error {warm.last_error:.1%} "
                          f"< {WARMUP_ERROR:.0%}; lr {optimizer.lr:g} -> {scheduled_lr:g}")
                optimizer.lr = scheduled_lr
            bar.set_postfix({"loss": f"{value:.3f}", "acc": f"{n_correct / seen:.1%}",
                             "img/s": f"{(seen - mark_seen) / max(now - mark_time, 1e-9):.0f}"}, refresh=False)
            bar.update(step - bar.n)
            mark_correct, mark_seen, mark_time = n_correct, seen, now
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if seen == 0:
        raise ValueError("fit: the training loader yielded no batches")
    return float(loss_sum) / seen, 1.0 - int(correct) / seen


# -- checkpoints ---------------------------------------------------------------------------------

def save_checkpoint(path, model, optimizer, scheduler, loaders, warm, history, config=None):
    """Write the training state after ``len(history)`` epochs, and the run's ``config``, to ``path``
    (.npz + JSON meta, atomic)."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"format": CHECKPOINT_FORMAT, "epoch": len(history), "history": history, "config": config,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "loaders": [ld.state_dict() if hasattr(ld, "state_dict") else None for ld in loaders],
            "global_rng": backend.default_rng().bit_generator.state,
            "warmup": warm.state_dict() if warm is not None else None}
    io.save_arrays(path, arrays, _plain(meta))


# What every checkpoint's metadata holds ("config" may be None: a run without recorded settings).
CHECKPOINT_KEYS = ("format", "epoch", "history", "scheduler", "loaders", "global_rng", "warmup")


def read_checkpoint(path):
    """The metadata of the checkpoint at ``path`` (``epoch``, ``history``, ``config``, ...), checked:
    a file that is not a minires training checkpoint, or lacks a key, is a ValueError naming it."""
    return _read_checkpoint(path)[1]


def _read_checkpoint(path):
    arrays, meta = io.load_arrays(path)
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a minires training checkpoint (no {CHECKPOINT_FORMAT!r} metadata)")
    missing = [k for k in CHECKPOINT_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path}: the checkpoint's metadata lacks {', '.join(missing)}; it is damaged or "
                         "was not written by minires")
    if not isinstance(meta["history"], list) or meta["epoch"] != len(meta["history"]):
        raise ValueError(f"{path}: the checkpoint's history does not match its epoch ({meta['epoch']}); it is damaged")
    meta.setdefault("config", None)
    return arrays, meta


def check_config(path, saved, config):
    """``config`` (the settings a resume asks for) must be the checkpoint's ``saved`` ones, but for ``epochs``."""
    if saved is None:
        raise ValueError(f"{path} does not record the settings it was trained with (an older minires "
                         "wrote it), so it cannot be checked against this run's; start a fresh run")
    differ = sorted(k for k in set(saved) | set(config) if k != "epochs" and saved.get(k) != config.get(k))
    if differ:
        raise ValueError(f"{path} was trained with other settings than this run's: "
                         + ", ".join(f"{k} {saved.get(k)} (asked: {config.get(k)})" for k in differ))


def load_checkpoint(path, model, optimizer, scheduler=None, loaders=(), warm=None, config=None):
    """Restore what :func:`save_checkpoint` wrote into these objects; returns the history.

    With ``config``, first check that the checkpoint was trained with those settings (see ``check_config``).
    """
    arrays, meta = _read_checkpoint(path)
    if config is not None:
        check_config(path, meta["config"], config)
    for what, ours, theirs in (("a scheduler", scheduler, meta["scheduler"]), ("warm-up", warm, meta["warmup"])):
        if (ours is None) != (theirs is None):
            raise ValueError(f"{path} was written {'with' if theirs is not None else 'without'} {what}; "
                             "resume the run with the settings it was started with")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")})
        optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in arrays.items() if k.startswith("optimizer.")})
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
        if warm is not None:
            warm.load_state_dict(meta["warmup"])
        for loader, state in zip(loaders, meta["loaders"]):
            if loader is not None and state is not None:
                loader.load_state_dict(state)
        backend.default_rng().bit_generator.state = meta["global_rng"]
    except (KeyError, TypeError, ValueError) as e:  # another model's checkpoint, or damaged metadata
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise ValueError(f"{path}: cannot restore this run from it: {message}") from None
    return meta["history"]


def _plain(obj):
    """``obj`` with NumPy scalars turned into Python numbers, for JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj.item() if isinstance(obj, np.generic) else obj


# -- history and curves --------------------------------------------------------------------------

def write_history(history, out_dir):
    """``history.json``, ``history.csv`` and ``curves.png`` in ``out_dir``, each written atomically."""
    with io.atomic_write(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    with io.atomic_write(os.path.join(out_dir, "history.csv"), "w") as f:
        keys = list(HISTORY_KEYS) + [k for k in history[0] if k not in HISTORY_KEYS]  # and test_top5_error
        writer = csv.DictWriter(f, keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    plot_history(history, os.path.join(out_dir, "curves.png"))


def plot_history(history, path, title=None):
    """Loss and error (%) per epoch, train dashed and test bold as in the paper's figures, to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)  # renders to memory: no display, no global pyplot state
    epochs = [row["epoch"] for row in history]
    for ax, key, label in zip(fig.subplots(1, 2), ("loss", "error"), ("cross-entropy loss", "error (%)")):
        scale = 100 if key == "error" else 1
        ax.plot(epochs, [row[f"train_{key}"] * scale for row in history], "--", color="C0", label="train")
        test = [(e, row[f"test_{key}"] * scale) for e, row in zip(epochs, history) if row[f"test_{key}"] is not None]
        top5 = [(e, row["test_top5_error"] * scale) for e, row in zip(epochs, history)
                if key == "error" and row.get("test_top5_error") is not None]
        if test:
            ax.plot(*zip(*test), "-", color="C1", linewidth=2, label="test top-1" if top5 else "test")
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


# -- the recipe's defaults -------------------------------------------------------------------------
# Per data set: (epochs, batch size, lr). The lr is divided by 10 at 50% and 75% of the epochs,
# the paper's schedule (32k and 48k of 64k iterations; for CIFAR-10 at batch 128, epochs 82 and 123).
# An image folder follows sec. 3.4: batch 256, lr 0.1 divided by 10 when the error plateaus, up to
# 60e4 iterations (120 epochs of ImageNet's 1.28M images).
DEFAULTS = {"digits": (15, 64, 0.1), "cifar10": (164, 128, 0.1), "imagefolder": (120, 256, 0.1)}
# Settings that define a run: --resume refuses to change them (--epochs may grow).
RUN_SETTINGS = ("model", "data", "batch_size", "lr", "momentum", "weight_decay", "milestones", "warmup", "seed",
                "schedule", "patience", "image_size", "ten_crop")


def default_milestones(epochs):
    """The paper's schedule scaled to ``epochs``: lr / 10 at 50% and at 75% of the run.

    A milestone that would fall on the first epoch or after the last, or twice on one epoch
    (short runs), is dropped rather than dividing the lr at once or by 100.
    """
    return sorted({m for m in (round(epochs * 0.5), round(epochs * 0.75)) if 0 < m < epochs})
