"""Training, as in the paper (sec. 3.4 and 4.2): the loop, the one evaluate, checkpoints, history.

    loop.py        fit(..., on_epoch=...), Warmup, TrainingDiverged: mini-batch SGD, epoch by epoch
    evaluation.py  evaluate -> Evaluation(loss, error, top5_error, images); 10-crop, multi-scale
    checkpoint.py  save/read/load_checkpoint; CheckpointError, ResumeError; a run folder's files
    history.py     HISTORY_KEYS, write_history (JSON, CSV), plot_history (the curves)
    recipe.py      DEFAULTS, RUN_SETTINGS, default_milestones: the paper's recipe per data set;
                   check_run_settings: a checkpoint's settings, field by field

``python -m minires train`` (``minires/cli/train.py``) trains ResNet-20 on the bundled digits.
"""
from .checkpoint import (CHECKPOINT, CHECKPOINT_FORMAT, CHECKPOINT_KEYS, CONFIG, RUN_FILES,
                         CheckpointError, ResumeError, check_config, load_checkpoint,
                         read_checkpoint, save_checkpoint, saved_config)
from .evaluation import (Evaluation, evaluate, evaluate_multiscale, predict, softmax, topk_correct,
                         topk_errors)
from .history import HISTORY_FILES, HISTORY_KEYS, plot_history, write_history
from .loop import SYNC_EVERY, WARMUP_ERROR, TrainingDiverged, Warmup, fit
from .recipe import DEFAULTS, RUN_SETTINGS, SETTING_TYPES, check_run_settings, default_milestones

__all__ = [
    "fit", "Warmup", "TrainingDiverged", "SYNC_EVERY", "WARMUP_ERROR",
    "evaluate", "Evaluation", "evaluate_multiscale", "predict", "softmax", "topk_correct",
    "topk_errors",
    "save_checkpoint", "read_checkpoint", "load_checkpoint", "check_config", "saved_config",
    "CheckpointError", "ResumeError", "CHECKPOINT", "CHECKPOINT_FORMAT", "CHECKPOINT_KEYS",
    "CONFIG", "RUN_FILES",
    "HISTORY_KEYS", "HISTORY_FILES", "write_history", "plot_history",
    "DEFAULTS", "RUN_SETTINGS", "SETTING_TYPES", "check_run_settings", "default_milestones",
]
