"""The bundled data set: 1,797 handwritten digits, 8x8 pixels, 10 classes.

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
Learning Repository (1998), https://doi.org/10.24432/C50P49, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). These are the 1,797 images of its test set, the
same that scikit-learn ships as ``load_digits``. Each pixel counts the "on" pixels of a 4x4 block
of a 32x32 bitmap, so values run 0..16; minires keeps them as uint8 0..16 and reads them as
``image / 16`` (``max_value=16``). ``digits.npz`` was made once by ``tools/make_digits.py``.
"""

import hashlib
import os

import numpy as np

from ..io import load_arrays
from .dataset import ImageDataset

PATH = os.path.join(os.path.dirname(__file__), "digits.npz")


def load_digits(test_fraction=0.2, seed=0):
    """(train, test) ImageDatasets of (N, 1, 8, 8) images in 0..16, split per class, reproducibly.

    The split is stratified: from each class, ``round(test_fraction * count)`` images chosen
    by ``numpy.random.default_rng(seed)`` go to the test set (the defaults give 1438 / 359).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = read_digits(PATH)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for k in range(10):
        members = np.flatnonzero(labels == k)
        test[rng.permutation(members)[: round(test_fraction * len(members))]] = True
    train = ImageDataset(images[~test], labels[~test], 10, max_value=16, name="digits")
    return train, ImageDataset(
        images[test], labels[test], 10, max_value=16, name="digits", stats_from=train
    )


def checksum(images, labels):
    """SHA-256 hex digest of the stored bytes: images, then labels (uint8)."""
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def read_digits(path):
    """images (1797, 1, 8, 8) uint8 and labels (1797,) from ``path``, after checking their
    SHA-256."""
    arrays, _ = load_arrays(path)
    try:
        images, labels, expected = arrays["images"], arrays["labels"], str(arrays["sha256"])
    except KeyError as e:
        raise ValueError(f"{path}: not a digits file, it has no {e} array") from None
    if images.dtype != np.uint8 or images.shape != (1797, 1, 8, 8) or labels.shape != (1797,):
        raise ValueError(
            f"{path}: expected images (1797, 1, 8, 8) uint8 and labels (1797,), "
            f"got {images.dtype} {images.shape} and {labels.shape}"
        )
    actual = checksum(images, labels)
    if actual != expected:
        raise ValueError(
            f"{path} is corrupt: SHA-256 of its images and labels is {actual}, "
            f"expected {expected}; "
            "reinstall minires"
        )
    return images, labels.astype(np.int64)
