"""Data augmentation on whole batches: ``transform(images, rng) -> images``.

A transform takes a uint8 batch (B, C, H, W), before normalisation, and a
``numpy.random.Generator`` (the loader's, so a seed fixes every draw) and returns a batch of
the same shape. The paper's CIFAR-10 recipe (sec. 4.2, after Lee et al. 2015):

    "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded
     image or its horizontal flip."

Padding is with zeros (black), as torchvision's ``RandomCrop(32, padding=4)`` does on raw pixels.
"""
import numpy as np


class RandomCrop:
    """Pad H and W by ``padding`` zeros on each side, then cut the original H x W at a random offset.

    out[b, c, i, j] = padded[b, c, i + dy_b, j + dx_b] with dy_b, dx_b uniform in 0..2*padding:
    a shift of the image by up to ``padding`` pixels in each direction.
    """

    def __init__(self, padding=4):
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be an int >= 0, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, images, rng):
        B, C, H, W = images.shape
        p = self.padding
        padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
        dy = rng.integers(0, 2 * p + 1, size=B)
        dx = rng.integers(0, 2 * p + 1, size=B)
        rows = (dy[:, None] + np.arange(H))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + np.arange(W))[:, None, None, :]  # (B, 1, 1, W)
        return padded[np.arange(B)[:, None, None, None], np.arange(C)[None, :, None, None], rows, cols]

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, images, rng):
        flip = rng.random(len(images)) < self.p
        out = images.copy()
        out[flip] = images[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng):
        for t in self.transforms:
            images = t(images, rng)
        return images

    def __repr__(self):
        return f"Compose({self.transforms})"


def paper_augment(dataset):
    """The paper's augmentation for ``dataset``'s image size.

    32x32 images (CIFAR-10): 4-pixel padding + random crop, and horizontal flips.
    Small images (the 8x8 digits): the analogous shift, by up to 1 pixel, and no flips
    (a mirrored 2, 3 or 7 is not a digit).
    """
    size = dataset.images.shape[-1]
    if size >= 32:
        return Compose([RandomCrop(4), RandomHorizontalFlip()])
    return RandomCrop(max(1, size // 8))
