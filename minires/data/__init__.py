"""Data: the bundled digits, CIFAR-10, mini-batches and the paper's augmentation.

    train, test = data.load_digits()               # 1438 / 359 images, 1x8x8, bundled
    train, test = data.load_cifar10("data", download=True)   # 50000 / 10000 images, 3x32x32
    loader = data.DataLoader(train, 128, shuffle=True, seed=0, augment=data.paper_augment(train))
    for x, y in loader: ...                        # x float32 (B, C, H, W) normalised, y int64 (B,)

    folder = data.ImageFolder("imagenette/train")  # root/<class>/<image>.jpg, decoded lazily
    recipe = data.transforms.ImageNetRecipe(folder, image_size=224)   # the paper's sec. 3.4
    loader = data.DataLoader(folder, 256, shuffle=True, transform=recipe.train_transform,
                             augment=recipe.train_augment, normalize=None)

A dataset has ``images`` (uint8, (N, C, H, W)), ``labels`` (int64, (N,)), ``num_classes`` and
per-channel ``mean`` / ``std`` of the training split in [0, 1] pixel units.
"""

from . import transforms
from .cifar10 import load_cifar10
from .dataset import ImageDataset
from .digits import load_digits
from .imagefolder import ImageFolder, load_imagefolder
from .loader import DataLoader
from .transforms import paper_augment

DATASETS = {"digits": load_digits, "cifar10": load_cifar10}

__all__ = [
    "ImageDataset",
    "ImageFolder",
    "load_imagefolder",
    "DataLoader",
    "load_digits",
    "load_cifar10",
    "paper_augment",
    "transforms",
    "DATASETS",
]
