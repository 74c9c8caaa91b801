"""``DataLoader``: shuffled, augmented, normalised mini-batches of an ``ImageDataset``.

Each batch is x float32 (B, C, H, W) and y int64 (B,), NumPy arrays (the trainer moves them to
the device). With u = image / max_value in [0, 1], the normalisation is

    "channel"  x = (u - mean[c]) / std[c]      (per channel, statistics of the training split)
    "pixel"    x = u - pixel_mean[c, i, j]     (the paper's per-pixel mean subtraction)
    None       x = u

A dataset whose images differ in size (``ImageFolder``, decoded lazily) needs ``transform``: it runs
on each image alone, as a batch of one, as the image is read, and must bring every image to one size
(ImageNet: resize, then crop); the images are then stacked and ``augment`` runs on the batch.

Shuffling and augmentation draw from one ``numpy.random.Generator`` that the loader owns: a
seed fixes every epoch's order and every crop, and ``state_dict()`` / ``load_state_dict()``
save and restore it between epochs, so a resumed run draws what the uninterrupted one would.
"""

import numpy as np

from .. import backend

NORMALIZATIONS = ("channel", "pixel", None)


class DataLoader:
    """Batches of ``dataset``; ``len(loader)`` is the number of batches per epoch.

    shuffle: a new random order every epoch. seed: the generator's seed; None draws one from
    minires's global generator (so ``mr.manual_seed`` still makes runs repeatable). augment:
    None or ``augment(images, rng) -> images`` on uint8 (B, C, H, W), see ``transforms`` (it may
    return float32 in the same pixel units, as ``PCALighting`` and ``SubtractMean`` do).
    drop_last: skip the last batch when it has fewer than ``batch_size`` images. transform: None
    or a per-image ``transform(image[None], rng) -> batch of one``, applied before batching (for a
    dataset without an ``images`` array, such as ``ImageFolder``, it is required).
    """

    def __init__(
        self,
        dataset,
        batch_size,
        shuffle=False,
        seed=None,
        augment=None,
        drop_last=False,
        normalize="channel",
        transform=None,
    ):
        needs = {"channel": ("mean", "std"), "pixel": ("pixel_mean",)}.get(normalize, ())
        for attr in ("labels", "max_value") + (("images",) if transform is None else ()) + needs:
            if not hasattr(dataset, attr):
                hint = ""
                # an ImageFolder: images of many sizes
                if attr == "images" and hasattr(dataset, "labels"):
                    hint = (
                        "; pass transform=, a per-image transform "
                        "that brings every image to one size"
                    )
                elif attr in needs:
                    hint = (
                        f"; it has no statistics for normalize={normalize!r}: pass normalize=None"
                    )
                raise TypeError(
                    f"DataLoader: dataset must be an ImageDataset (with .{attr}), got "
                    f"{type(dataset).__name__}{hint}"
                )
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader: transform must be None or a callable(image, rng), got {transform!r}"
            )
        if (
            not isinstance(batch_size, (int, np.integer))
            or isinstance(batch_size, bool)
            or batch_size < 1
        ):
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if augment is not None and not callable(augment):
            raise TypeError(
                f"DataLoader: augment must be None or a callable(images, rng), got {augment!r}"
            )
        if normalize not in NORMALIZATIONS:
            raise ValueError(
                f"DataLoader: normalize must be one of {NORMALIZATIONS}, got {normalize!r}"
            )
        if drop_last and len(dataset) < batch_size:
            raise ValueError(
                f"DataLoader: drop_last with batch_size {batch_size} > {len(dataset)} images "
                "would give no batches"
            )
        if normalize == "channel" and np.any(dataset.std == 0):
            raise ValueError(
                f"DataLoader: a channel of the dataset is constant (std {dataset.std}); "
                "use normalize='pixel' or None"
            )
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.augment, self.drop_last, self.normalize = augment, bool(drop_last), normalize
        self.transform = transform
        if seed is None:
            seed = int(backend.default_rng().integers(2**63))
        self.rng = np.random.default_rng(seed)
        # x = u * scale + shift, with u the uint8 pixel values: one multiply-add per element.
        if normalize == "channel":
            C = len(dataset.mean)
            scale = 1 / (dataset.max_value * dataset.std.astype(np.float64))
            self._scale = scale.astype(np.float32).reshape(C, 1, 1)
            self._shift = (-dataset.mean / dataset.std).astype(np.float32).reshape(C, 1, 1)
        else:
            self._scale = np.float32(1 / dataset.max_value)
            self._shift = -dataset.pixel_mean if normalize == "pixel" else np.float32(0)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.dataset.images[index] if self.transform is None else self.read(index)
            if self.augment is not None:
                images = self.augment(images, self.rng)
                if images.shape[0] != len(index):
                    raise ValueError(
                        f"DataLoader: augment returned {images.shape[0]} images "
                        f"for a batch of {len(index)}"
                    )
            yield self.to_float(images), self.dataset.labels[index]

    def read(self, index):
        """The images at ``index``, each passed through ``transform`` alone, stacked (uint8)."""
        images = [self.transform(self.dataset[i][0][None], self.rng)[0] for i in index]
        shapes = sorted({im.shape for im in images})
        if len(shapes) > 1:
            raise ValueError(
                f"DataLoader: the per-image transform gave images of shapes {shapes}; "
                "end it with a crop to one size"
            )
        return np.stack(images)

    def to_float(self, images):
        """Normalise a uint8 batch (B, C, H, W) to float32 as this loader does."""
        x = images.astype(np.float32)
        x *= self._scale
        x += self._shift
        return x

    def state_dict(self):
        """The generator's state, as JSON-able plain Python (ints and strings)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        bit_generator = self.rng.bit_generator
        if state["rng"].get("bit_generator") != bit_generator.state["bit_generator"]:
            raise ValueError(
                f"DataLoader.load_state_dict: state of a {state['rng'].get('bit_generator')} "
                f"generator, this loader uses {bit_generator.state['bit_generator']}"
            )
        bit_generator.state = state["rng"]

    def __repr__(self):
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"transform={self.transform!r}, augment={self.augment!r}, drop_last={self.drop_last}, "
            f"normalize={self.normalize!r})"
        )
