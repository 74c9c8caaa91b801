"""``ImageFolder``: a folder of JPEG and PNG images, one subfolder per class, decoded lazily.

    root/
      cat/  0001.jpg  0002.png ...          class names, sorted, become labels 0, 1, 2, ...
      dog/  a.jpeg ...                      ("cat" -> 0, "dog" -> 1)

This is the layout of ImageNet, Imagenette and most image-classification sets. Unlike
``ImageDataset``, which holds every image in one uint8 array, an ``ImageFolder`` keeps only the
file names: ``folder[i]`` opens and decodes file i (with Pillow) when a batch needs it, so a
folder far larger than memory can be trained on. Images come in their own sizes; the
``DataLoader``'s per-image ``transform`` (for instance ``RandomResizeShorter`` then
``RandomCrop(size=...)``) brings them to one size before they are stacked into a batch.

Every image is returned as uint8 RGB (3, H, W) in 0..255: grayscale, palette and RGBA images
are converted to RGB (gray g -> (g, g, g); transparency is dropped), and 16-bit grayscale PNGs
scaled to 8 bits (v -> round(v * 255 / 65535)). An image of more than ``MAX_PIXELS`` pixels is
refused before it is decoded: its header alone may claim 100,000 x 100,000 pixels (a
"decompression bomb", a few kB that would decode to 30 GB).
"""

import contextlib
import os
import warnings

import numpy as np

EXTENSIONS = (".jpg", ".jpeg", ".png")
FORMATS = ("JPEG", "PNG")
# Pillow's own default limit (Image.MAX_IMAGE_PIXELS): about 0.27 GB decoded as RGB.
MAX_PIXELS = 89_478_485
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # Pillow's modes of 16-bit gray PNGs


class ImageReadError(ValueError):
    """A file of the folder is not an image, or cannot be decoded; the message names it."""


class ImageFolder:
    """The images under ``root/<class>/``; ``folder[i]`` -> (uint8 (3, H, W), label).

    classes: the class names to use, in label order (pass the training folder's ``classes`` when
    opening the validation folder, so that labels agree; a folder of another class is an error).
    By default, the sorted names of ``root``'s subfolders. verify: open every file's header now
    (Pillow reads only the first bytes), so that a file that is not an image is reported before
    training starts rather than in the middle of an epoch; ``sizes`` then holds each image's
    (height, width) as its header gives it (None without verify). Files whose names start with
    "." are ignored; any other file must be a JPEG or PNG image.
    """

    max_value = 255
    channels = 3

    def __init__(self, root, classes=None, verify=True, name=None):
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise NotADirectoryError(f"ImageFolder: {root} is not a folder")
        found = sorted(
            e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")
        )
        if not found:
            raise ValueError(
                f"ImageFolder: {root} has no class folders; expected {root}/<class>/<image>.jpg"
            )
        if classes is None:
            classes = found
        else:
            classes = list(classes)
            unknown = [c for c in found if c not in classes]
            if unknown:
                raise ValueError(
                    f"ImageFolder: {root} has folders {unknown} that are not among the classes "
                    f"{classes}"
                )
        files, labels = [], []
        for label, cls in enumerate(classes):
            folder = os.path.join(root, cls)
            if not os.path.isdir(folder):
                continue  # a validation folder may lack a class
            names = sorted(
                e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")
            )
            stray = [n for n in names if not n.lower().endswith(EXTENSIONS)]
            if stray:
                raise ValueError(
                    f"ImageFolder: {os.path.join(folder, stray[0])} is not a JPEG or PNG image "
                    f"(expected names ending in {', '.join(EXTENSIONS)}); move it out of {root}"
                )
            if not names:
                raise ValueError(f"ImageFolder: the class folder {folder} has no images")
            files += [os.path.join(folder, n) for n in names]
            labels += [label] * len(names)
        self.root, self.classes, self.name = (
            root,
            classes,
            name or os.path.basename(os.path.normpath(root)),
        )
        self.files, self.labels = files, np.array(labels, dtype=np.int64)
        self.num_classes = len(classes)
        self.sizes = None
        if verify:
            self.sizes = np.array([check_header(path) for path in files], dtype=np.int64)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return read_image(self.files[i]), self.labels[i]

    def __repr__(self):
        return f"ImageFolder({self.root}: {len(self)} images, {self.num_classes} classes)"


def _pil():
    # Pillow is imported only when a folder is read: minires itself does not need it otherwise.
    from PIL import Image

    return Image


@contextlib.contextmanager
def _open(path, failure):
    """Pillow's image of ``path``, its header read and its size checked against ``MAX_PIXELS``;
    Pillow's errors become an ImageReadError "ImageFolder: <failure> (<why>)"."""
    Image = _pil()
    with warnings.catch_warnings():
        # Pillow warns above its limit and refuses above twice it; both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageReadError(
                        f"ImageFolder: {path} claims {width} x {height} pixels, more than the "
                        f"{MAX_PIXELS:,} an image may have (a damaged file or a decompression "
                        "bomb); move it out of the folder"
                    )
                yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReadError(
                f"ImageFolder: {path} claims more than {MAX_PIXELS:,} pixels ({e}); move it "
                "out of the folder"
            ) from None
        except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError is an OSError
            if isinstance(e, ImageReadError):
                raise
            raise ImageReadError(f"ImageFolder: {failure} ({e})") from None


def check_header(path):
    """Raise ImageReadError naming ``path`` unless its first bytes are those of a JPEG or PNG image
    of at most ``MAX_PIXELS`` pixels; returns its (height, width)."""
    with _open(path, f"{path} is not an image Pillow can read") as image:
        fmt, (width, height) = image.format, image.size
    if fmt not in FORMATS:
        raise ImageReadError(f"ImageFolder: {path} is a {fmt} image; only JPEG and PNG are read")
    return height, width


def read_image(path):
    """Decode ``path`` to uint8 RGB (3, H, W); a damaged file raises ImageReadError naming it."""
    with _open(path, f"cannot decode {path}") as image:
        if image.mode in SIXTEEN_BIT:  # 16-bit gray: Pillow's convert would clip it at 255
            return _sixteen_bit_to_rgb(np.asarray(image))
        rgb = image.convert("RGB")  # also decodes; gray, palette, RGBA and CMYK become RGB
    return np.asarray(rgb).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W), a view


def _sixteen_bit_to_rgb(gray):
    """(H, W) gray of 0..65535 -> uint8 (3, H, W): v -> round(v * 255 / 65535), in integers."""
    v = np.clip(gray.astype(np.int64), 0, 65535)
    eight = ((v * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(eight[None], 3, axis=0)


def largest_resized(folder, side):
    """The image of ``folder`` (an ImageFolder read with verify) that is largest once its shorter
    side is resized to ``side``, as (path, (height, width), pixels after the resize)."""
    h, w = folder.sizes[:, 0], folder.sizes[:, 1]
    shorter, longer = np.minimum(h, w), np.maximum(h, w)
    # resize_shorter's rule: the longer side becomes round(longer * side / shorter)
    pixels = side * np.maximum(1, np.round(longer * side / shorter)).astype(np.int64)
    i = int(np.argmax(pixels))
    return folder.files[i], (int(h[i]), int(w[i])), int(pixels[i])


def load_imagefolder(root, verify=True):
    """(train, val) ImageFolders of ``root/train/<class>/`` and ``root/val/<class>/`` (or
    ``root/test/``), the layout of ImageNet and Imagenette; the validation labels follow the
    training classes."""
    root = os.fspath(root)
    train_dir = os.path.join(root, "train")
    val_dir = next(
        (os.path.join(root, d) for d in ("val", "test") if os.path.isdir(os.path.join(root, d))),
        None,
    )
    if not os.path.isdir(train_dir) or val_dir is None:
        raise FileNotFoundError(
            f"{root} must hold train/<class>/<image> and val/<class>/<image> "
            f"(found {'no ' if not os.path.isdir(train_dir) else ''}train/"
            f"{' and no val/ or test/' if val_dir is None else ''})"
        )
    train = ImageFolder(train_dir, verify=verify)
    return train, ImageFolder(val_dir, classes=train.classes, verify=verify)
