"""The paper's training recipe per data set, as the ``train`` command's defaults.

Per data set: (epochs, batch size, lr). The lr is divided by 10 at 50% and 75% of the epochs, the
paper's CIFAR-10 schedule (sec. 4.2: at 32k and 48k of 64k iterations; at batch 128, epochs 82 and
123). An image folder follows sec. 3.4: batch 256, lr 0.1 divided by 10 when the error plateaus,
up to 60e4 iterations (120 epochs of ImageNet's 1.28M images).
"""
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
