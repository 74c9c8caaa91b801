"""``ImageDataset``: uint8 images with integer labels, and the statistics that normalise them.

Pixels are stored as the source gives them (0..255 for CIFAR-10, 0..16 for the digits) and
read in [0, 1] units as ``x = image / max_value``. In those units, per channel c, over the
*training* split (the test split borrows them, so that no test statistic leaks into training):

    mean[c] = E[x_c],   std[c] = sqrt(E[(x_c - mean[c])^2])      (over images and positions)
    pixel_mean[c, i, j] = E[x_cij]                                (over images: the paper's
                                                                   "per-pixel mean")
"""

import numpy as np


class ImageDataset:
    """images (N, C, H, W) uint8 in 0..max_value, labels (N,) in [0, num_classes).

    ``stats_from``: the dataset whose mean/std/pixel_mean to use (pass the training split when
    building the test split); by default they are computed from ``images``.
    """

    def __init__(
        self, images, labels, num_classes, *, max_value=255, classes=None, name="", stats_from=None
    ):
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise TypeError(
                "ImageDataset: images must be a uint8 NumPy array (N, C, H, W), got "
                f"{type(images).__name__} {getattr(images, 'dtype', '')} "
                f"{getattr(images, 'shape', '')}"
            )
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
            raise ValueError(
                f"ImageDataset: labels must be {len(images)} integers (one per image), "
                f"got dtype {labels.dtype} shape {labels.shape}"
            )
        if len(images) == 0:
            raise ValueError("ImageDataset: no images")
        if not 0 < max_value <= 255:
            raise ValueError(f"ImageDataset: max_value must be in 1..255, got {max_value}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"ImageDataset: labels must be in [0, {num_classes}), "
                f"got values in [{labels.min()}, {labels.max()}]"
            )
        if images.max() > max_value:
            raise ValueError(
                f"ImageDataset: pixel values must be <= max_value={max_value}, got {images.max()}"
            )
        self.images, self.labels = images, labels.astype(np.int64)
        self.num_classes, self.max_value, self.name = int(num_classes), max_value, name
        self.classes = (
            list(classes) if classes is not None else [str(k) for k in range(num_classes)]
        )
        source = stats_from if stats_from is not None else self
        if source.images.shape[1:] != images.shape[1:] or source.max_value != max_value:
            raise ValueError(
                f"ImageDataset: stats_from has images {source.images.shape[1:]} "
                f"in 0..{source.max_value}, "
                f"these are {images.shape[1:]} in 0..{max_value}"
            )
        self._stats_source = source
        if source is self:
            self.mean, self.std = _channel_mean_std(images, max_value)
        else:
            self.mean, self.std = source.mean, source.std
        self._pixel_mean = None

    @property
    def pixel_mean(self):
        """(C, H, W) float32: the mean image of the statistics' source, in [0, 1] units."""
        source = self._stats_source
        if source._pixel_mean is None:
            source._pixel_mean = (
                source.images.mean(axis=0, dtype=np.float64) / self.max_value
            ).astype(np.float32)
        return source._pixel_mean

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def subset(self, indices):
        """The images at ``indices``, normalised with this dataset's statistics."""
        indices = np.asarray(indices)
        return ImageDataset(
            self.images[indices],
            self.labels[indices],
            self.num_classes,
            max_value=self.max_value,
            classes=self.classes,
            name=self.name,
            stats_from=self._stats_source,
        )

    def __repr__(self):
        n, c, h, w = self.images.shape
        return (
            f"ImageDataset({self.name or 'images'}: {n} x {c}x{h}x{w}, {self.num_classes} classes)"
        )


def _channel_mean_std(images, max_value):
    """Per-channel mean and std in [0, 1] units, exactly, from a histogram of the uint8 values.

    A histogram needs no float copy of the images (CIFAR-10's would take 1.2 GB in float64).
    """
    values = np.arange(256, dtype=np.float64) / max_value
    mean, std = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        m = counts @ values / counts.sum()
        mean.append(m)
        std.append(np.sqrt(counts @ (values - m) ** 2 / counts.sum()))
    return np.array(mean, dtype=np.float32), np.array(std, dtype=np.float32)
