"""The paper's training recipe per data set, as the ``train`` command's defaults.

Per data set: (epochs, batch size, lr). The lr is divided by 10 at 50% and 75% of the epochs, the
paper's CIFAR-10 schedule (sec. 4.2: at 32k and 48k of 64k iterations; at batch 128, epochs 82 and
123). An image folder follows sec. 3.4: batch 256, lr 0.1 divided by 10 when the error plateaus,
up to 60e4 iterations (120 epochs of ImageNet's 1.28M images).

``check_run_settings`` checks a run's settings as a checkpoint records them, field by field.
"""
from .checkpoint import bad_field, is_int, is_number

DEFAULTS = {"digits": (15, 64, 0.1), "cifar10": (164, 128, 0.1), "imagefolder": (120, 256, 0.1)}
# Settings that define a run: --resume refuses to change them (--epochs may grow).
RUN_SETTINGS = ("model", "data", "batch_size", "lr", "momentum", "weight_decay", "milestones",
                "warmup", "seed", "schedule", "patience", "image_size", "ten_crop")


def default_milestones(epochs):
    """The paper's schedule scaled to ``epochs``: lr / 10 at 50% and at 75% of the run.

    A milestone that would fall on the first epoch or after the last, or twice on one epoch
    (short runs), is dropped rather than dividing the lr at once or by 100.
    """
    return sorted({m for m in (round(epochs * 0.5), round(epochs * 0.75)) if 0 < m < epochs})


def _milestones(value):
    return isinstance(value, list) and all(is_int(m) and m >= 1 for m in value)


# Each setting of a run: (the test its value passes, what it is expected to be).
SETTING_TYPES = {
    "model": (lambda v: isinstance(v, str), "a model name"),
    "data": (lambda v: isinstance(v, str) and v in DEFAULTS, "one of " + ", ".join(DEFAULTS)),
    "epochs": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "momentum": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "milestones": (_milestones, "a list of epochs >= 1"),
    "warmup": (lambda v: v is None or is_number(v) and v > 0, "null or a number > 0"),
    "seed": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "schedule": (lambda v: v in ("multistep", "plateau"), "multistep or plateau"),
    "patience": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "image_size": (lambda v: v is None or is_int(v) and v >= 1, "null or an integer >= 1"),
    "ten_crop": (lambda v: isinstance(v, bool), "true or false"),
}


def check_run_settings(path, config):
    """The settings ``config`` that the checkpoint at ``path`` records, each of its type and
    range (``SETTING_TYPES``), else a CheckpointError naming the file and the first field that
    is not. Settings it lacks are left to the caller (an older or a foreign run)."""
    from .. import models

    for key, (ok, expected) in SETTING_TYPES.items():
        if key in config and not ok(config[key]):
            raise bad_field(path, f"config.{key}", config[key], expected)
    if "model" in config and config["model"] not in models.BUILDERS:
        raise bad_field(path, "config.model", config["model"], "a model of minires")
    return config
