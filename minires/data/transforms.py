"""Data augmentation on whole batches: ``transform(images, rng) -> images``.

A transform takes a batch (B, C, H, W) in pixel units (uint8 0..max_value, before
normalisation) and a ``numpy.random.Generator`` (the loader's, so a seed fixes every draw) and
returns a batch. The paper's CIFAR-10 recipe (sec. 4.2, after Lee et al. 2015):

    "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded
     image or its horizontal flip."

Padding is with zeros (black), as torchvision's ``RandomCrop(32, padding=4)`` does on raw pixels.

The paper's ImageNet recipe (sec. 3.4, after Krizhevsky et al. 2012 and Simonyan & Zisserman 2015):

    "The image is resized with its shorter side randomly sampled in [256, 480] for scale
     augmentation. A 224x224 crop is randomly sampled from an image or its horizontal flip,
     with the per-pixel mean subtracted. The standard color augmentation in [21] is used."
    "In testing, for comparison studies we adopt the standard 10-crop testing."

    per image (DataLoader's transform):   RandomResizeShorter(256, 480), RandomCrop(size=224)
    per batch (DataLoader's augment):     RandomHorizontalFlip(), PCALighting(0.1), SubtractMean
    testing:                              ResizeShorter(256), CenterCrop(224) or TenCrop(224)

Images of different sizes cannot share a batch, so the loader runs the size-changing transforms
on each image alone (a batch of one); ``imagenet_recipe`` puts the pieces together, scaled to
any crop size. ``PCALighting`` and ``SubtractMean`` return float32, still in pixel units; the
loader then divides by max_value (``normalize=None``).
"""

import numpy as np


class RandomCrop:
    """Pad H and W by ``padding`` zeros on each side, then cut a ``size`` x ``size`` window at a
    random offset.

    out[b, c, i, j] = padded[b, c, i + dy_b, j + dx_b], with dy_b uniform in 0..H + 2 padding - size
    (dx_b likewise). size None keeps H x W (CIFAR: a shift of the image by up to ``padding``
    pixels, the default padding 4); with a size (ImageNet: ``RandomCrop(size=224)``, "a 224x224
    crop is randomly sampled", sec. 3.4) the default padding is 0.
    """

    def __init__(self, padding=None, size=None):
        if padding is None:
            padding = 4 if size is None else 0
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be an int >= 0, got {padding!r}")
        if size is not None and (not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"RandomCrop: size must be None or an int >= 1, got {size!r}")
        self.padding, self.size = int(padding), None if size is None else int(size)

    def __call__(self, images, rng):
        B, C, H, W = images.shape
        p = self.padding
        h, w = (H, W) if self.size is None else (self.size, self.size)
        if h > H + 2 * p or w > W + 2 * p:
            raise ValueError(
                f"RandomCrop: a {h}x{w} crop does not fit in a {H}x{W} image padded by {p}"
            )
        padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p))) if p else images
        dy = rng.integers(0, H + 2 * p - h + 1, size=B)
        dx = rng.integers(0, W + 2 * p - w + 1, size=B)
        # One slice per image: cheaper than one fancy index over the batch, above all for a batch of
        # one.
        return np.stack([padded[b, :, dy[b] : dy[b] + h, dx[b] : dx[b] + w] for b in range(B)])

    def __repr__(self):
        if self.size is None:
            return f"RandomCrop(padding={self.padding})"
        return f"RandomCrop(padding={self.padding}, size={self.size})"


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
    """Apply transforms in order (rng may be None when none of them draws)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng=None):
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


# -- the ImageNet recipe (sec. 3.4) --------------------------------------------------------------


def resize_shorter(images, size):
    """Resize a batch (B, C, H, W) so that its shorter side is ``size``, keeping the aspect ratio.

    The longer side L becomes round(L * size / shorter side). Each image goes through Pillow's
    bilinear filter (``Image.BILINEAR``); when shrinking, Pillow widens the filter by the scale
    factor, so that every input pixel contributes (an antialiased resize, as torchvision's).
    """
    from PIL import Image  # Pillow, which matplotlib brings; imported only when images are resized

    B, C, H, W = images.shape
    if (H, W) == (size, size) or min(H, W) == size:
        return images
    if H <= W:
        new_h, new_w = size, max(1, round(W * size / H))
    else:
        new_h, new_w = max(1, round(H * size / W)), size
    out = np.empty((B, C, new_h, new_w), dtype=np.uint8)
    for b in range(B):
        if C == 3:  # an RGB image in one call; Pillow filters each channel on its own
            rgb = Image.fromarray(np.ascontiguousarray(images[b].transpose(1, 2, 0)))
            out[b] = np.asarray(rgb.resize((new_w, new_h), Image.BILINEAR)).transpose(2, 0, 1)
            continue
        for c in range(C):  # any other number of channels: one 8-bit plane at a time
            plane = Image.fromarray(np.ascontiguousarray(images[b, c]))
            out[b, c] = np.asarray(plane.resize((new_w, new_h), Image.BILINEAR))
    return out


class RandomResizeShorter:
    """Scale augmentation (sec. 3.4, after Simonyan & Zisserman 2015): "the image is resized with
    its shorter side randomly sampled in [256, 480]".

    Draws S uniformly from the integers min_size..max_size and resizes the batch so that its
    shorter side is S (``resize_shorter``). One S per call: the loader calls it on one image at a
    time (its ``transform``), so every image gets its own scale.
    """

    def __init__(self, min_size=256, max_size=480):
        if not (
            isinstance(min_size, (int, np.integer))
            and isinstance(max_size, (int, np.integer))
            and 1 <= min_size <= max_size
        ):
            raise ValueError(
                f"RandomResizeShorter: need integers 1 <= min_size <= max_size, "
                f"got {min_size!r}, {max_size!r}"
            )
        self.min_size, self.max_size = int(min_size), int(max_size)

    def __call__(self, images, rng):
        return resize_shorter(images, int(rng.integers(self.min_size, self.max_size + 1)))

    def __repr__(self):
        return f"RandomResizeShorter({self.min_size}, {self.max_size})"


class ResizeShorter(RandomResizeShorter):
    """Testing: the shorter side resized to exactly ``size`` (256 for the paper's 224 crops)."""

    def __init__(self, size=256):
        super().__init__(size, size)

    def __call__(self, images, rng=None):
        return resize_shorter(images, self.min_size)

    def __repr__(self):
        return f"ResizeShorter({self.min_size})"


def crop_offsets(H, W, size):
    """The five (top, left) offsets of TenCrop: top-left, top-right, bottom-left, bottom-right,
    centre."""
    if size > H or size > W:
        raise ValueError(f"a {size}x{size} crop does not fit in a {H}x{W} image")
    return [
        (0, 0),
        (0, W - size),
        (H - size, 0),
        (H - size, W - size),
        ((H - size) // 2, (W - size) // 2),
    ]


class CenterCrop:
    """The central ``size`` x ``size`` window (rounded up-left when it cannot be centred
    exactly)."""

    def __init__(self, size=224):
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"CenterCrop: size must be an int >= 1, got {size!r}")
        self.size = int(size)

    def __call__(self, images, rng=None):
        top, left = crop_offsets(*images.shape[-2:], self.size)[4]
        return images[..., top : top + self.size, left : left + self.size]

    def __repr__(self):
        return f"CenterCrop({self.size})"


class TenCrop:
    """The standard 10-crop testing (sec. 3.4, after Krizhevsky et al. 2012, sec. 4.1): the four
    corner ``size`` x ``size`` patches and the centre one, and their horizontal flips.

    (B, C, H, W) -> (B, 10, C, size, size); crops 0..4 are top-left, top-right, bottom-left,
    bottom-right, centre (``crop_offsets``), crops 5..9 the same five mirrored. The network's
    softmax outputs are averaged over the crops (``minires.train.evaluate``).
    """

    def __init__(self, size=224):
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"TenCrop: size must be an int >= 1, got {size!r}")
        self.size = int(size)

    def __call__(self, images, rng=None):
        s = self.size
        crops = [images[:, :, t : t + s, l : l + s] for t, l in crop_offsets(*images.shape[-2:], s)]
        crops += [c[..., ::-1] for c in crops]
        return np.stack(crops, axis=1)

    def __repr__(self):
        return f"TenCrop({self.size})"


def _batches(images):
    """An array (N, C, H, W) as one batch, or any iterable of such batches, as it is."""
    return [images] if isinstance(images, np.ndarray) else images


class SubtractMean:
    """ "The per-pixel mean subtracted" (sec. 3.4): x - mean, float32, in pixel units.

    mean: (C, H, W) per pixel (the mean image of the training crops) or (C, 1, 1) per channel.
    ``SubtractMean.fit(train_images, per="pixel")`` computes it from training images (an array
    (N, C, H, W) or an iterable of batches), so that nothing about the test images leaks in.
    """

    def __init__(self, mean):
        mean = np.asarray(mean, dtype=np.float32)
        if mean.ndim != 3:
            raise ValueError(
                f"SubtractMean: mean must be (C, H, W) or (C, 1, 1), got shape {mean.shape}"
            )
        self.mean = mean

    @classmethod
    def fit(cls, images, per="pixel"):
        if per not in ("pixel", "channel"):
            raise ValueError(f"SubtractMean.fit: per must be 'pixel' or 'channel', got {per!r}")
        total, count = 0.0, 0
        for batch in _batches(images):
            total = total + batch.sum(axis=0, dtype=np.float64)
            count += len(batch)
        if count == 0:
            raise ValueError("SubtractMean.fit: no images")
        mean = total / count
        return cls(mean.mean(axis=(1, 2), keepdims=True) if per == "channel" else mean)

    def per_channel(self):
        """The same mean averaged over positions, for images of any size (multi-scale testing)."""
        return SubtractMean(self.mean.mean(axis=(1, 2), keepdims=True))

    def __call__(self, images, rng=None):
        if self.mean.shape[1:] != (1, 1) and images.shape[-2:] != self.mean.shape[1:]:
            raise ValueError(
                f"SubtractMean: a per-pixel mean of {self.mean.shape[1]}x{self.mean.shape[2]} "
                f"cannot be taken from {images.shape[-2]}x{images.shape[-1]} images"
            )
        return images.astype(np.float32) - self.mean

    def __repr__(self):
        kind = "channel" if self.mean.shape[1:] == (1, 1) else "pixel"
        return f"SubtractMean(per {kind}, {'x'.join(map(str, self.mean.shape))})"


class PCALighting:
    """AlexNet's colour augmentation (Krizhevsky et al. 2012, sec. 4.1; "the standard color
    augmentation in [21]", sec. 3.4). With p_i, lambda_i the eigenvectors and eigenvalues of the
    3x3 covariance of the training set's RGB pixels (in [0, 1] units), every pixel of an image gets

        I_xy += [p_1 p_2 p_3] [a_1 lambda_1, a_2 lambda_2, a_3 lambda_3]^T,   a_i ~ N(0, alphastd)

    with one draw of (a_1, a_2, a_3) per image and ``alphastd`` = 0.1 as in AlexNet. The shift
    is added in [0, 1] units, so it is multiplied by ``max_value`` for pixel units; the result is
    float32 (no rounding, no clipping). ``PCALighting.fit(train_images, 0.1)`` computes the
    eigen-decomposition from uint8 images (an array (N, 3, H, W) or an iterable of batches).
    """

    def __init__(self, alphastd, eigval, eigvec, max_value=255):
        eigval, eigvec = np.asarray(eigval, dtype=np.float64), np.asarray(eigvec, dtype=np.float64)
        if not alphastd >= 0:
            raise ValueError(f"PCALighting: alphastd must be >= 0, got {alphastd}")
        if eigval.shape != (3,) or eigvec.shape != (3, 3):
            raise ValueError(
                f"PCALighting: need 3 eigenvalues and a 3x3 matrix of eigenvectors (columns), "
                f"got {eigval.shape} and {eigvec.shape}"
            )
        self.alphastd, self.eigval, self.eigvec, self.max_value = (
            float(alphastd),
            eigval,
            eigvec,
            max_value,
        )

    @staticmethod
    def pixel_covariance(images, max_value=255):
        """(mean (3,), covariance (3, 3)) of the RGB pixels of ``images``, in [0, 1] units."""
        s1, s2, n = np.zeros(3), np.zeros((3, 3)), 0
        for batch in _batches(images):
            if batch.ndim != 4 or batch.shape[1] != 3:
                raise ValueError(
                    f"PCALighting: need RGB batches (N, 3, H, W), got shape {batch.shape}"
                )
            pixels = batch.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) / max_value
            s1 += pixels.sum(axis=1)
            s2 += pixels @ pixels.T
            n += pixels.shape[1]
        if n < 2:
            raise ValueError("PCALighting: need at least two pixels")
        mean = s1 / n
        return mean, (s2 - n * np.outer(mean, mean)) / (n - 1)

    @classmethod
    def fit(cls, images, alphastd=0.1, max_value=255):
        _, cov = cls.pixel_covariance(images, max_value)
        eigval, eigvec = np.linalg.eigh(cov)  # ascending; columns are the eigenvectors
        order = np.argsort(eigval)[::-1]
        return cls(alphastd, eigval[order], eigvec[:, order], max_value)

    def __call__(self, images, rng):
        alpha = rng.normal(0.0, self.alphastd, size=(len(images), 3))
        # (B, 3): sum_i a_i lambda_i p_i
        shift = (alpha * self.eigval) @ self.eigvec.T * self.max_value
        return images.astype(np.float32) + shift.astype(np.float32)[:, :, None, None]

    def __repr__(self):
        return f"PCALighting({self.alphastd}, eigval={np.round(self.eigval, 5).tolist()})"


def imagenet_sizes(image_size=224):
    """The recipe's sizes, scaled by image_size / 224 (rounded; never below the crop).

    {"crop": 224, "train_sides": (256, 480), "test_side": 256,
     "multiscale_sides": (224, 256, 384, 480, 640)} at image_size 224.
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"imagenet_sizes: image_size must be an int >= 1, got {image_size!r}")

    def scale(n):
        return max(int(image_size), round(n * image_size / 224))

    return {
        "crop": int(image_size),
        "train_sides": (scale(256), scale(480)),
        "test_side": scale(256),
        "multiscale_sides": tuple(scale(n) for n in (224, 256, 384, 480, 640)),
    }


class ImageNetRecipe:
    """The paper's ImageNet data recipe (sec. 3.4), with its statistics taken from ``train_set``.

    train_transform  per image: RandomResizeShorter(train_sides), RandomCrop(size=crop)
    train_augment    per batch: RandomHorizontalFlip(), PCALighting(lighting), SubtractMean
    test_transform   per image: ResizeShorter(test_side), CenterCrop(crop)   (one crop)
    ten_crop         per image: ResizeShorter(test_side), TenCrop(crop)      (10 crops)
    test_augment     per batch: SubtractMean (the training mean)

    Pass the transforms and augments to ``DataLoader(..., transform=, augment=, normalize=None)``.
    mean: "pixel" (the paper's per-pixel mean) or "channel". The mean and the lighting's
    eigen-decomposition come from the training images as testing sees them (shorter side
    test_side, centre crop): all of them, or a fixed random sample of ``max_images`` (seeded)
    when there are more. lighting 0 or None leaves the colours alone.
    """

    def __init__(
        self,
        train_set,
        image_size=224,
        mean="pixel",
        lighting=0.1,
        max_images=10000,
        seed=0,
        batch_size=256,
    ):
        if mean not in ("pixel", "channel"):
            raise ValueError(f"ImageNetRecipe: mean must be 'pixel' or 'channel', got {mean!r}")
        self.sizes = sizes = imagenet_sizes(image_size)
        crop, test_side = sizes["crop"], sizes["test_side"]
        self.train_transform = Compose(
            [RandomResizeShorter(*sizes["train_sides"]), RandomCrop(size=crop)]
        )
        self.test_transform = Compose([ResizeShorter(test_side), CenterCrop(crop)])
        self.ten_crop = Compose([ResizeShorter(test_side), TenCrop(crop)])
        n = len(train_set)
        index = np.arange(n)
        if max_images is not None and n > max_images:
            index = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))

        def batches():  # decoded again for each statistic, so that they never all sit in memory
            for start in range(0, len(index), batch_size):
                yield np.stack(
                    [
                        self.test_transform(train_set[i][0][None])[0]
                        for i in index[start : start + batch_size]
                    ]
                )

        self.mean = SubtractMean.fit(batches(), per=mean)
        steps = [RandomHorizontalFlip()]
        self.lighting = None
        if lighting:
            self.lighting = PCALighting.fit(batches(), lighting, max_value=train_set.max_value)
            steps.append(self.lighting)
        self.train_augment = Compose(steps + [self.mean])
        self.test_augment = self.mean

    def __repr__(self):
        return f"ImageNetRecipe({self.sizes}, mean {self.mean!r}, lighting {self.lighting!r})"
