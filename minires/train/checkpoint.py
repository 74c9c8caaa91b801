"""Checkpoints: everything the next epoch depends on, so that a resume continues a run exactly.

A checkpoint holds parameters and batch-norm statistics, momentum buffers, the schedule, the
loaders' and minires's random generators, the warm-up state and the history, and the run's
settings (``config``). Arrays go in an .npz, the rest in its JSON metadata: never a pickle.

Reading one checks each key of its metadata against what ``save_checkpoint`` writes (and
restoring turns any state the objects cannot take into the same error), so a damaged or
hand-edited file is one error naming the file and the field, never a traceback from deep inside
a resume. Errors have their own types, so a caller tells them apart without reading messages:
``CheckpointError`` (a ValueError) for a file that is not a minires checkpoint, is damaged, or does
not fit the model and optimizer given; ``ResumeError``, a kind of it, for an intact checkpoint of
a run set up differently from the one asked to continue.
"""
import math
import os

import numpy as np

from .. import backend, io
from .history import HISTORY_FILES, HISTORY_KEYS

CHECKPOINT = "checkpoint.npz"
CONFIG = "config.json"  # the run's settings, as the train command wrote them
# The files of one run: a run folder holds these and nothing of another run.
RUN_FILES = (CONFIG, CHECKPOINT) + HISTORY_FILES + ("multiscale.json",)
CHECKPOINT_FORMAT = "minires-checkpoint-1"
# What every checkpoint's metadata holds ("config" may be None: a run without recorded settings).
CHECKPOINT_KEYS = ("format", "epoch", "history", "config", "scheduler", "loaders", "global_rng",
                   "warmup")


class CheckpointError(ValueError):
    """Not a minires training checkpoint, a damaged one, or one these objects cannot take."""


class ResumeError(CheckpointError):
    """An intact checkpoint that this run cannot continue: it records other settings, or none."""


def save_checkpoint(path, model, optimizer, scheduler, loaders, warm, history, config=None):
    """Write the training state after ``len(history)`` epochs, and the run's ``config``, to ``path``
    (.npz + JSON meta, atomic)."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"format": CHECKPOINT_FORMAT, "epoch": len(history), "history": history,
            "config": config,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "loaders": [ld.state_dict() if hasattr(ld, "state_dict") else None for ld in loaders],
            "global_rng": backend.default_rng().bit_generator.state,
            "warmup": warm.state_dict() if warm is not None else None}
    io.save_arrays(path, arrays, _plain(meta))


def read_checkpoint(path):
    """The metadata of the checkpoint at ``path`` (``epoch``, ``history``, ``config``, ...),
    checked: a file that is not a minires training checkpoint, or lacks a key, is a
    CheckpointError naming it."""
    return _read_checkpoint(path)[1]


def _read_checkpoint(path):
    try:
        arrays, meta = io.load_arrays(path)
    except ValueError as e:  # empty, truncated, not an .npz: io's message names the file
        raise CheckpointError(str(e)) from None
    except OSError as e:
        if not os.path.exists(path):
            raise  # no checkpoint at all: a FileNotFoundError, as for any missing file
        # a folder where the file should be, or a file that cannot be read
        why = "it is a folder" if os.path.isdir(path) else e.strerror or e
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({why})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a minires training checkpoint "
                              f"(no {CHECKPOINT_FORMAT!r} metadata)")
    missing = [k for k in CHECKPOINT_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: the checkpoint's metadata lacks {', '.join(missing)}; "
                              "it is damaged or was not written by minires")
    _check_meta(path, meta)
    if meta["epoch"] != len(meta["history"]):
        raise CheckpointError(f"{path}: the checkpoint's history does not match its epoch "
                              f"({meta['epoch']}); it is damaged")
    return arrays, meta


def is_int(value):
    """An int that is not a bool (JSON's true would pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bad_field(path, field, value, expected):
    """The CheckpointError for one field of the metadata of the checkpoint at ``path``."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return CheckpointError(f"{path}: the checkpoint's {field} is {shown}, expected {expected}; "
                           "it is damaged or was not written by minires")


def _check_meta(path, meta):
    """Each key of the metadata has the type ``save_checkpoint`` writes: one CheckpointError
    naming the first field that does not."""
    if not is_int(meta["epoch"]) or meta["epoch"] < 0:
        raise bad_field(path, "epoch", meta["epoch"], "an integer >= 0")
    history = meta["history"]
    if not isinstance(history, list):
        raise bad_field(path, "history", history, "a list of rows, one per epoch")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise bad_field(path, f"history[{i}]", row, "a row (a dict of the epoch's numbers)")
        if row.get("epoch") != i + 1 or not is_int(row["epoch"]):
            raise bad_field(path, f"history[{i}].epoch", row.get("epoch"), i + 1)
        for key in HISTORY_KEYS[1:] + ("test_top5_error",):
            if key == "test_top5_error" and key not in row:
                continue  # recorded only when fit tests top-5
            optional = key.startswith("test_")  # None without a test loader
            value = row.get(key)
            if key not in row or not (is_number(value) or optional and value is None):
                raise bad_field(path, f"history[{i}].{key}", value,
                                "a number" + (" or null" if optional else ""))
    for key in ("config", "scheduler", "warmup"):
        if meta[key] is not None and not isinstance(meta[key], dict):
            raise bad_field(path, key, meta[key], "a dict or null")
    if not isinstance(meta["loaders"], list) or not all(
            state is None or isinstance(state, dict) for state in meta["loaders"]):
        raise bad_field(path, "loaders", meta["loaders"], "a list of dicts")
    if not isinstance(meta["global_rng"], dict):
        raise bad_field(path, "global_rng", meta["global_rng"], "a generator's state (a dict)")


def saved_config(path, meta):
    """The run settings that the checkpoint ``meta`` (read from ``path``) records; a ResumeError
    if it records none: there is nothing to check a resume against."""
    if meta["config"] is None:
        raise ResumeError(f"{path} records no run settings, so it cannot be resumed as a run; "
                          "start a fresh one")
    return meta["config"]


def check_config(path, meta, config):
    """``config`` (the settings a resume asks for) must be the checkpoint's, but for ``epochs``."""
    saved = saved_config(path, meta)
    differ = sorted(k for k in set(saved) | set(config)
                    if k != "epochs" and saved.get(k) != config.get(k))
    if differ:
        raise ResumeError(f"{path} was trained with other settings than this run's: "
                          + ", ".join(f"{k} {saved.get(k)} (asked: {config.get(k)})"
                                      for k in differ))


def load_checkpoint(path, model, optimizer, scheduler=None, loaders=(), warm=None, config=None):
    """Restore what :func:`save_checkpoint` wrote into these objects; returns the history.

    With ``config``, first check that the checkpoint was trained with those settings
    (``check_config``). The run must have a scheduler and a warm-up where the checkpoint has.
    """
    arrays, meta = _read_checkpoint(path)
    if config is not None:
        check_config(path, meta, config)
    for what, ours, theirs in (("a scheduler", scheduler, meta["scheduler"]),
                               ("warm-up", warm, meta["warmup"])):
        if (ours is None) != (theirs is None):
            raise ResumeError(f"{path} was written {'with' if theirs is not None else 'without'} "
                              f"{what}; resume the run with the settings it was started with")
    try:
        model.load_state_dict(_part(arrays, "model."))
        optimizer.load_state_dict(_part(arrays, "optimizer."))
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
        if warm is not None:
            warm.load_state_dict(meta["warmup"])
        for loader, state in zip(loaders, meta["loaders"]):
            if loader is not None and state is not None:
                loader.load_state_dict(state)
        backend.default_rng().bit_generator.state = meta["global_rng"]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            OverflowError) as e:  # another model's checkpoint, or damaged metadata
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise CheckpointError(f"{path}: cannot restore this run from it: {message}") from None
    return meta["history"]


def _part(arrays, prefix):
    """The arrays whose names start with ``prefix``, under the rest of their names."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _plain(obj):
    """``obj`` with NumPy scalars turned into Python numbers, for JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj.item() if isinstance(obj, np.generic) else obj
