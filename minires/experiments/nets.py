"""The trained nets the experiments study: names, builders, the recipe, training, saving, loading.

A net is named by its kind and depth, "plain20" or "resnet56": the CIFAR layout of the paper
(sec. 4.2, 6n + 2 layers), option-A shortcuts for the ResNet, none for its plain twin. Every
experiment that needs trained nets trains them here with one :class:`Recipe`, saves each as
``<net>-seed<S>.npz`` in its run folder, and can load another run's nets (``--from DIR``), so the
degradation, responses, lesion, paths and landscape experiments all study the same nets.
"""
import dataclasses
import os
import re
from collections import namedtuple

import numpy as np

from .. import backend, data, io, models, optim, train
from .output import progress_bar
from .probes import EpochRecorder


@dataclasses.dataclass(frozen=True)
class Recipe:
    """SGD with momentum and weight decay, lr / 10 at ``milestones`` (by default at 50% and 75% of
    the epochs, the paper's schedule); ``warmup``: None, or the lr used until the training error is
    below 80% (the paper's ResNet-110 warm-up, sec. 4.2)."""

    epochs: int
    batch_size: int
    lr: float
    warmup: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple | None = None

    def __post_init__(self):
        if self.milestones is None:
            object.__setattr__(self, "milestones", tuple(train.default_milestones(self.epochs)))

    def replace(self, **changes):
        """A copy with ``changes``; the milestones follow a new ``epochs`` unless given."""
        if "epochs" in changes and "milestones" not in changes:
            changes["milestones"] = None
        return dataclasses.replace(self, **changes)

    def at_most(self, images):
        """The recipe with its batch no larger than ``images`` (a small subset; None: unchanged)."""
        if images is None or self.batch_size <= images:
            return self
        return self.replace(batch_size=images)

    def as_dict(self):
        """The recipe for a JSON report (milestones as a list)."""
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}


# Per data set. cifar10: the paper's (sec. 4.2), 64k iterations at batch 128 (164 epochs), which
# needs a GPU. digits: the paper's with the lr scaled to the batch (0.1 per 128 images, so 0.025
# at batch 32, and the warm-up's 0.01 to 0.0025): on 1,438 images small batches give more steps
# per epoch for the same work. Sized for 3 seeds of the degradation run in at most 20 minutes on
# 2 idle cores.
RECIPES = {
    "digits": Recipe(epochs=30, batch_size=32, lr=0.025, warmup=0.0025),
    "cifar10": Recipe(epochs=164, batch_size=128, lr=0.1, warmup=0.01),
}

TrainedNet = namedtuple("TrainedNet", "history flow model")
CHECKPOINT_NAME = re.compile(r"(plain|resnet)\d+-seed\d+\.npz")


def datasets(train_set=None, test_set=None):
    """(train, test): the given pair, or the bundled digits when ``train_set`` is None."""
    return (train_set, test_set) if train_set is not None else data.load_digits()


def net_names(depths):
    """["plain20", "plain56", "resnet20", "resnet56"] for depths (20, 56)."""
    return [f"{kind}{d}" for kind in ("plain", "resnet") for d in depths]


def depth_of(name):
    """56 for "plain56" or "resnet56"."""
    return int(re.search(r"\d+$", name).group())


def pretty(name):
    """"plain-20" for "plain20", "ResNet-56" for "resnet56"."""
    kind = "plain-" if name.startswith("plain") else "ResNet-"
    return re.sub(r"^(plain|resnet)", kind, name)


def build_net(name, num_classes, in_channels):
    """The CIFAR net called ``name``: "resnetD" (option A shortcuts) or its plain twin "plainD"."""
    return models.cifar_resnet(depth_of(name), num_classes=num_classes, in_channels=in_channels,
                               shortcut="A" if name.startswith("resnet") else None)


def build_loaders(train_set, test_set, batch_size, seed, limit=None):
    """(train loader, test loader, probe batch); ``limit`` keeps a random subset of each split."""
    if limit is not None:
        rng = np.random.default_rng(seed)
        train_set = train_set.subset(rng.permutation(len(train_set))[:limit])
        test_set = test_set.subset(rng.permutation(len(test_set))[:limit])
    train_loader = data.DataLoader(train_set, batch_size, shuffle=True, seed=seed,
                                   augment=data.paper_augment(train_set))
    test_loader = data.DataLoader(test_set, 256)
    # The gradient-flow probe: the first training images, unaugmented, the same for every net
    # and epoch.
    probe = next(iter(data.DataLoader(train_set, min(batch_size, len(train_set)))))
    return train_loader, test_loader, probe


def train_one(name, train_set, test_set, recipe, *, seed, device="cpu", limit=None, out=None,
              progress=True, position=None):
    """Train one net with ``recipe``; returns ``TrainedNet(history, flow, model)``.

    history: ``train.fit``'s rows; flow: ``probes.EpochRecorder.records`` (epoch 0 = at
    initialisation); model: the trained net. With ``out``, the trained net is saved as
    ``out/<name>-seed<seed>.npz`` (see :func:`load_trained`). ``position``: the progress bar's line.
    """
    backend.manual_seed(seed)
    model = build_net(name, train_set.num_classes, train_set.images.shape[1])
    model.to(device)
    # Same seed for every net: the same batch order and the same augmentation draws.
    train_loader, test_loader, (px, py) = build_loaders(train_set, test_set, recipe.batch_size,
                                                        seed, limit)
    optimizer = optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    scheduler = optim.MultiStepLR(optimizer, list(recipe.milestones), gamma=0.1)
    recorder = EpochRecorder(model, px, py)
    recorder(0)  # at initialisation
    bar = progress_bar(recipe.epochs, f"{name:>9} seed {seed}", enabled=progress, unit="epoch",
                       position=position, leave=True)

    def on_epoch(row):
        recorder(row["epoch"])
        bar.update()
        bar.set_postfix({"train_err": f"{row['train_error']:.1%}",
                         "test_err": f"{row['test_error']:.1%}"})

    history = train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler,
                        epochs=recipe.epochs, device=device, warmup=recipe.warmup, progress=False,
                        on_epoch=on_epoch)
    bar.close()
    if out is not None:
        save_trained(model, out, name, seed)
    return TrainedNet(history, recorder.records, model)


# -- the trained nets on disk ----------------------------------------------------------------------

def checkpoint_path(out, name, seed):
    return os.path.join(out, f"{name}-seed{seed}.npz")


def save_trained(model, out, name, seed):
    """``model``'s state dict to ``out/<name>-seed<seed>.npz`` with the meta that rebuilds it."""
    meta = {"net": name, "seed": int(seed), "depth": depth_of(name),
            "shortcut": "A" if name.startswith("resnet") else None,
            "num_classes": int(model.fc.weight.shape[0]),
            "in_channels": int(model.conv1.weight.shape[1])}
    path = checkpoint_path(out, name, seed)
    io.save_arrays(path, model.state_dict(), meta)
    return path


class TrainedNetError(ValueError):
    """A file ``<net>-seed<S>.npz`` that is not that trained net: damaged, another net's, weights
    without the metadata that rebuilds them, a folder. The message names the file."""


def load_trained(directory, net, seed, device="cpu"):
    """The net ``net`` ("plain20", "resnet56", ...) of ``seed`` trained in ``directory`` (by a
    degradation, responses, lesion, paths or landscape run), rebuilt, in eval mode on ``device``.

    A missing file is a FileNotFoundError; a file that is not the net its name says (damaged,
    truncated, a folder, no metadata, metadata of another kind, depth or seed than the name's,
    weights that do not fit) a TrainedNetError naming it.
    """
    path = checkpoint_path(directory, net, seed)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: no {net} of seed {seed} in {directory} "
                                f"(run `python -m minires degradation --out {directory}` first)")
    try:
        arrays, meta = io.load_arrays(path)
    except (OSError, ValueError) as e:  # a folder, or not a readable .npz (io names the file)
        raise TrainedNetError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    _check_trained_meta(path, meta, net, seed)
    model = models.cifar_resnet(meta["depth"], num_classes=meta["num_classes"],
                                in_channels=meta["in_channels"], shortcut=meta["shortcut"])
    try:
        model.load_state_dict(arrays)
    except (KeyError, ValueError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise TrainedNetError(f"{path}: its weights are not those of a {net} ({message})") \
            from None
    return model.eval().to(device)


def _check_trained_meta(path, meta, net, seed):
    """The metadata ``save_trained`` writes, and the net, depth and seed of the file's name."""
    if not isinstance(meta, dict):
        raise TrainedNetError(f"{path} holds weights without the metadata of a trained net of "
                              "minires (net, depth, shortcut, ...), so it cannot be rebuilt")
    expected = {"net": net, "seed": int(seed), "depth": depth_of(net),
                "shortcut": "A" if net.startswith("resnet") else None}
    for key, value in expected.items():
        if key not in meta or meta[key] != value or type(meta[key]) is not type(value):
            raise TrainedNetError(f"{path} is not a trained {net} of seed {seed}: its metadata "
                                  f"has {key} {meta.get(key)!r}, the file's name says {value!r}")
    for key in ("num_classes", "in_channels"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**6:
            raise TrainedNetError(f"{path}: its metadata has {key} {value!r}, expected a count "
                                  ">= 1")


def remove_stale(out, log=print):
    """A folder holds one run: remove the trained nets an earlier run left in ``out``, which would
    otherwise pass for this run's."""
    if not os.path.isdir(out):
        return
    stale = [f for f in os.listdir(out) if CHECKPOINT_NAME.fullmatch(f)]
    if stale:
        log(f"note: {out} holds {len(stale)} trained nets of an earlier run; removing them")
        for f in stale:
            os.remove(os.path.join(out, f))


def get_net(name, train_set, test_set, recipe, *, from_dir=None, save_dir=None, seed=0,
            device="cpu", limit=None, progress=True):
    """(model, info): the net loaded from ``from_dir``, or trained here with ``recipe`` (and then
    saved to ``save_dir`` when given, so that other experiments can reuse it with ``from_dir``)."""
    if from_dir is not None:
        return load_trained(from_dir, name, seed, device), {"source": f"loaded from {from_dir}"}
    trained = train_one(name, train_set, test_set, recipe, seed=seed, device=device, limit=limit,
                        out=save_dir, progress=progress)
    last = trained.history[-1]
    info = {"source": "trained", "train_error": last["train_error"],
            "test_error": last["test_error"],
            "seconds": round(sum(h["seconds"] for h in trained.history), 1)}
    if save_dir is not None:
        info["checkpoint"] = checkpoint_path(save_dir, name, seed)
    return trained.model, info
