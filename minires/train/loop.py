"""The training loop: ``fit``, epoch by epoch, with progress, history, curves and exact resume.

One epoch is mini-batch SGD over the training set (sec. 3.4 and 4.2 of the paper):

    for each batch (x, y):  L = mean_n CE(model(x)_n, y_n);  backward;  optimizer.step()

then the learning-rate schedule steps, the model is evaluated on the test set (``evaluate``) and,
with ``out_dir``, the epoch is recorded: ``checkpoint.npz``, then ``history.json``,
``history.csv`` and ``curves.png`` (one row per epoch), each written atomically; then
``on_epoch(row)`` is called.

``resume=True`` continues a run from its checkpoint exactly: on the CPU, 1 + 1 epochs give the
same bits as 2 (with the same number of BLAS threads: another count sums in another order). The
checkpoint is written before the history files, and a resume rewrites those from the
checkpoint's history, so a kill between the two loses nothing; a resume or a new start also
removes the temporary files a kill mid-write leaves behind.
"""
import math
import os
import time
import warnings

import numpy as np

from .. import backend, io, optim
from .. import functional as F
from ..autograd import Tensor
from .checkpoint import CHECKPOINT, RUN_FILES, load_checkpoint, save_checkpoint
from .evaluation import evaluate
from .history import write_history

WARMUP_ERROR = 0.8  # the paper's ResNet-110 warm-up lasts until the training error is below 80%
# How often (in steps) the loss is read back for the progress bar and the NaN check. Reading a
# GPU value waits for all queued work, so on the GPU it is rare; on the CPU it costs nothing.
SYNC_EVERY = {"cpu": 1, "gpu": 25}
# NumPy's floating-point warnings (as raised in the map_chunks worker threads, which np.errstate
# does not reach): silenced during training, where a non-finite loss is reported on its own.
_FLOAT_WARNINGS = r"(overflow|invalid value|divide by zero) encountered"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``epoch`` and ``step`` say where; the last good
    checkpoint is kept."""

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class Warmup:
    """Paper, sec. 4.2, for ResNet-110: "we use 0.01 to warm up the training until the training
    error is below 80% (about 400 iterations), and then go back to 0.1 and continue training".

    While ``active`` the optimizer runs at ``lr``; the training error is measured over windows of
    at least ``window`` images, and the first window below 80% ends the warm-up. A window never
    spans two epochs: each epoch starts a new one (``start_epoch``).
    """

    def __init__(self, lr=0.01, window=256):
        if not lr > 0:
            raise ValueError(f"warmup: the warm-up lr must be > 0, got {lr}")
        self.lr, self.window, self.active = float(lr), window, True
        self.start_epoch()

    def start_epoch(self):
        """Open a new window, dropping the unfinished one of the epoch before."""
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
        """The state between epochs: no window is open then."""
        return {"lr": self.lr, "active": self.active}

    def load_state_dict(self, state):
        self.lr, self.active = float(state["lr"]), bool(state["active"])
        self.start_epoch()


def fit(model, train_loader, test_loader=None, *, optimizer, scheduler=None, epochs, device="cpu",
        out_dir=None, resume=False, warmup=None, progress=True, config=None, top5=False,
        on_epoch=None):
    """Train for epochs 1..``epochs`` (with ``resume``, from the one after the checkpoint's);
    returns the history, one dict (row) per epoch with ``HISTORY_KEYS``.

    Rows: losses are mean cross-entropies and errors fractions in [0, 1] (test values None
    without a ``test_loader``); lr is the rate of the epoch's last step; seconds its wall time.
    ``warmup``: None, or the warm-up lr (the paper's 0.01) used until the training error drops
    below 80% (``Warmup``). ``config``: the run's settings (a JSON-able dict), kept in every
    checkpoint; with ``resume`` the checkpoint's must be the same (``epochs`` may differ).
    ``top5``: also record ``test_top5_error``. ``on_epoch(row)``: called after each epoch this
    call trains, once its row is in the history (and, with ``out_dir``, on disk). A
    ``ReduceLROnPlateau`` scheduler watches the test error (without a test loader, the training
    error). Raises ``TrainingDiverged`` if the loss goes NaN/inf, leaving the last good
    checkpoint in ``out_dir``; with ``resume``, a ``CheckpointError`` (a ``ResumeError`` for a
    run set up otherwise) if the checkpoint cannot continue this run.
    """
    device = backend.check_device(device)
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if resume and out_dir is None:
        raise ValueError("fit: resume=True needs the out_dir that holds the checkpoint")
    warm = Warmup(warmup) if warmup is not None else None
    model.to(device)  # before loading optimizer state, so momentum buffers land on the same device
    path = os.path.join(out_dir, CHECKPOINT) if out_dir is not None else None
    loaders = [train_loader, test_loader]
    if out_dir is not None:
        for name in RUN_FILES:
            io.remove_leftovers(os.path.join(out_dir, name))
    history = []
    if resume:
        if not os.path.exists(path):
            raise FileNotFoundError(f"fit: nothing to resume, {path} does not exist")
        history = load_checkpoint(path, model, optimizer, scheduler, loaders, warm, config)
        # The checkpoint's history is the record: rewrite the files from it, in case a kill
        # came between the last checkpoint and its history.
        write_history(history, out_dir)
        if progress:
            print(f"resuming from {path} after epoch {len(history)}")
        if len(history) >= epochs:
            print(f"{path} has already trained {len(history)} epochs (asked for {epochs}): "
                  "nothing to do")
            return history

    from tqdm.auto import tqdm

    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        scheduled_lr = optimizer.lr
        if warm is not None:
            warm.start_epoch()
            if warm.active:
                optimizer.lr = warm.lr
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=not progress, dynamic_ncols=True)
        try:
            # A diverging loss overflows on its way to inf/NaN; the check below reports that in
            # one message, so NumPy's floating-point warnings would only repeat it, less clearly.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning, message=_FLOAT_WARNINGS)
                train_loss, train_error = _train_epoch(model, train_loader, optimizer, device,
                                                       epoch, bar, warm, scheduled_lr)
                test = evaluate(model, test_loader, device) if test_loader is not None else None
            if test is not None and not math.isfinite(test.loss):
                raise TrainingDiverged(f"the test loss is {test.loss} after epoch {epoch}",
                                       epoch, None)
        except BaseException as e:
            bar.close()  # also on Ctrl-C, so the caller's message starts on a line of its own
            if not isinstance(e, TrainingDiverged):
                raise
            # In epoch 1 a checkpoint in out_dir can only be left from an earlier run, not a
            # good state of this one.
            kept = (f"the last good checkpoint, {path}, is from epoch {epoch - 1}"
                    if path is not None and epoch > 1 and os.path.exists(path)
                    else "no checkpoint was written")
            raise TrainingDiverged(f"training diverged: {e}; stopped ({kept}). "
                                   "Try a lower --lr, or --warmup for very deep nets.",
                                   e.epoch, e.step) from None
        lr = optimizer.lr
        optimizer.lr = scheduled_lr  # the warm-up only overrides the schedule, never changes it
        if isinstance(scheduler, optim.ReduceLROnPlateau):
            scheduler.step(test.error if test is not None else train_error)
        elif scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "train_loss": train_loss, "train_error": train_error,
               "test_loss": test.loss if test is not None else None,
               "test_error": test.error if test is not None else None, "lr": lr,
               "seconds": round(time.perf_counter() - start, 3)}
        if top5:
            row["test_top5_error"] = test.top5_error if test is not None else None
        history.append(row)
        summary = {"loss": f"{train_loss:.3f}", "train_acc": f"{1 - train_error:.1%}"}
        if test is not None:
            summary["test_acc"] = f"{1 - test.error:.1%}"
        bar.set_postfix(summary)
        bar.close()
        if out_dir is not None:
            # The checkpoint first: it is the record a resume rebuilds the history files from.
            save_checkpoint(path, model, optimizer, scheduler, loaders, warm, history, config)
            write_history(history, out_dir)
        if on_epoch is not None:
            on_epoch(row)
    if out_dir is not None:
        print(f"wrote {os.path.join(out_dir, 'history.json')} (and .csv), "
              f"{os.path.join(out_dir, 'curves.png')}, {path}")
    return history


def _train_epoch(model, loader, optimizer, device, epoch, bar, warm, scheduled_lr):
    """One pass over ``loader``; returns (mean training loss, training error) of the epoch."""
    model.train()
    sync_every = SYNC_EVERY[device]
    loss_sum, correct, seen = 0.0, 0, 0
    mark_correct, mark_seen, mark_time = 0, 0, time.perf_counter()
    for step, (x, y) in enumerate(loader, 1):
        logits = model(Tensor(backend.to_device(x, device)))
        # y stays on the host: its range check needs no GPU read
        loss = F.softmax_cross_entropy(logits, y)
        loss_sum = loss_sum + loss.data * len(y)
        correct = correct + (logits.data.argmax(axis=1) == backend.to_device(y, device)).sum()
        seen += len(y)
        if step % sync_every == 0 or step == len(loader):
            # Checked before the update, so on the CPU no step is ever taken from a NaN loss.
            value, total = float(loss.data), float(loss_sum)
            if not (math.isfinite(value) and math.isfinite(total)):
                where = (f"step {step}" if sync_every == 1
                         else f"step {step} or one of the {sync_every - 1} before it")
                bad = value if not math.isfinite(value) else total
                raise TrainingDiverged(f"the loss is {bad} at epoch {epoch}, {where} "
                                       f"(lr {optimizer.lr:g})", epoch, step)
            n_correct, now = int(correct), time.perf_counter()
            if (warm is not None and warm.active
                    and warm.observe(n_correct - mark_correct, seen - mark_seen)):
                bar.write(f"warm-up over at epoch {epoch}, step {step}: training error "
                          f"{warm.last_error:.1%} < {WARMUP_ERROR:.0%}; "
                          f"lr {optimizer.lr:g} -> {scheduled_lr:g}")
                optimizer.lr = scheduled_lr
            speed = (seen - mark_seen) / max(now - mark_time, 1e-9)
            bar.set_postfix({"loss": f"{value:.3f}", "acc": f"{n_correct / seen:.1%}",
                             "img/s": f"{speed:.0f}"}, refresh=False)
            bar.update(step - bar.n)
            mark_correct, mark_seen, mark_time = n_correct, seen, now
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if seen == 0:
        raise ValueError("fit: the training loader yielded no batches")
    return float(loss_sum) / seen, 1.0 - int(correct) / seen
