"""CIFAR-10 (Krizhevsky, 2009, https://www.cs.toronto.edu/~kriz/cifar.html), read from the official
``cifar-10-python.tar.gz``: 50,000 training and 10,000 test images, 3x32x32, 10 classes.

The archive holds ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and ``batches.meta``,
each a Python 2 pickle of a dict: b"data" a uint8 array (10000, 3072) (1024 red, then green,
then blue values, each row-major 32x32) and b"labels" a list of ints in 0..9.

A pickle can call any function it names, so a tampered batch could run code at load time.
Batches are therefore read with ``SafeUnpickler``: plain containers, bytes, strings and numbers,
plus the three NumPy callables that rebuild a plain ndarray; any other global is refused before
it is imported. Members are read from the archive in memory, never extracted to disk.
"""

import hashlib
import http.client
import io
import os
import pickle
import tarfile
import urllib.request
import zlib

import numpy as np

from ..io import atomic_write
from .dataset import ImageDataset

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"


def load_cifar10(root, download=False, url=URL, md5=MD5, progress=True):
    """(train, test) ImageDatasets of (N, 3, 32, 32) uint8 images in 0..255.

    Reads ``root/cifar-10-batches-py/`` if it was extracted, else ``root/cifar-10-python.tar.gz``
    (whose MD5 must equal ``md5``; None skips the check). With ``download=True`` a missing
    archive is fetched from ``url`` into a temporary file and kept only if its MD5 matches.
    """
    root = os.fspath(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f"load_cifar10: root must be a directory, got the file {root}")
    folder, archive = os.path.join(root, FOLDER), os.path.join(root, ARCHIVE)
    if os.path.isdir(folder):

        def read(name):
            with open(os.path.join(folder, name), "rb") as f:
                return f.read()

        batches = {name: read(name) for name in TRAIN_BATCHES + [TEST_BATCH, META]}
        source = folder
    else:
        if not os.path.exists(archive):
            if not download:
                raise FileNotFoundError(
                    f"load_cifar10: no CIFAR-10 in {root} (looked for {ARCHIVE} and {FOLDER}/); "
                    "pass download=True (or --download) to fetch it (163 MB)"
                )
            download_file(url, archive, md5, progress)
        elif md5 is not None:
            actual = file_md5(archive)
            if actual != md5:
                raise ValueError(
                    f"{archive} is corrupt or not CIFAR-10: MD5 {actual}, expected {md5}; "
                    "delete it and download again"
                )
        batches = read_archive(archive)
        source = archive
    train = [parse_batch(batches[name], f"{source}: {name}") for name in TRAIN_BATCHES]
    images = np.concatenate([t[0] for t in train])
    labels = np.concatenate([t[1] for t in train])
    test_images, test_labels = parse_batch(batches[TEST_BATCH], f"{source}: {TEST_BATCH}")
    classes = parse_meta(batches[META], f"{source}: {META}")
    train_set = ImageDataset(images, labels, 10, classes=classes, name="cifar10")
    test_set = ImageDataset(
        test_images, test_labels, 10, classes=classes, name="cifar10", stats_from=train_set
    )
    return train_set, test_set


# -- download ------------------------------------------------------------------------------------


def download_file(url, path, md5=None, progress=True, chunk_size=1 << 20):
    """Fetch ``url`` to ``path`` through a temporary file, renamed into place only if the MD5
    matches."""
    from tqdm.auto import tqdm

    digest = hashlib.md5()
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except OSError as e:
        raise ConnectionError(f"download of {url} failed: {e}") from None
    with response, atomic_write(path) as f:  # on any error the temporary file is removed
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"downloading {os.path.basename(path)}",
            disable=not progress,
        ) as bar:
            try:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, OSError) as e:  # the connection dropped mid-body
                raise ConnectionError(
                    f"download of {url} was cut short after {received} bytes ({e!r}); "
                    f"nothing was written to {path}; try again"
                ) from None
        # Without an MD5 to check, the length the server announced is what tells a whole file from a
        # cut one.
        if total is not None and received != total:
            raise ConnectionError(
                f"download of {url} was cut short: {received} of {total} bytes; "
                f"nothing was written to {path}; try again"
            )
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"download of {url} is corrupt: MD5 {digest.hexdigest()}, expected {md5}; "
                f"nothing was written to {path}"
            )
    return path


def file_md5(path, chunk_size=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# -- reading -------------------------------------------------------------------------------------


def read_archive(path):
    """{batch name: pickled bytes} for the CIFAR-10 members of the .tar.gz at ``path``."""
    wanted = {f"{FOLDER}/{name}": name for name in TRAIN_BATCHES + [TEST_BATCH, META]}
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(
            f"{path} is not a readable .tar.gz ({e}); delete it and download again"
        ) from None
    missing = [name for name in wanted.values() if name not in found]
    if missing:
        raise ValueError(
            f"{path} is not the CIFAR-10 python archive: it lacks {FOLDER}/{', '.join(missing)}"
        )
    return found


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global that :class:`SafeUnpickler` refuses: the file was tampered with."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, bytes, strings and numbers, and plain NumPy arrays; nothing
    else.

    Python 2 strings load as bytes (``encoding="bytes"``), as the CIFAR-10 batches expect.
    """

    _reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]  # NumPy's own array-rebuilding function
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the name NumPy 1 wrote
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # and NumPy 2's
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file):
        super().__init__(file, encoding="bytes")

    def find_class(self, module, name):
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch holds only plain data "
                "(dicts, lists, bytes, numbers, uint8 arrays), so this file was not made by its "
                "authors or has been tampered with"
            ) from None


def safe_loads(data, where="pickle"):
    """Unpickle ``data`` with :class:`SafeUnpickler`; errors name ``where``."""
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{where}: {e}") from None
    except (
        Exception
    ) as e:  # truncated or garbled bytes raise all sorts (UnpicklingError, EOFError, ...)
        raise ValueError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None


def parse_batch(data, where):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one pickled batch, after checking its
    structure."""
    batch = safe_loads(data, where)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(
            f"{where}: expected a dict with b'data' and b'labels', got {type(batch).__name__} "
            f"with keys {list(batch)[:5] if isinstance(batch, dict) else '-'}"
        )
    images, labels = batch[b"data"], batch[b"labels"]
    if (
        type(images) is not np.ndarray
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3072
    ):
        raise ValueError(
            f"{where}: b'data' must be a uint8 array (N, 3072), got {type(images).__name__} "
            f"{getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        )
    if not isinstance(labels, list) or not all(type(k) is int for k in labels):
        raise ValueError(f"{where}: b'labels' must be a list of ints")
    # Checked as Python ints, before NumPy sees them: a label like 2**70 does not fit an int64.
    if len(labels) != len(images) or not all(0 <= k <= 9 for k in labels):
        wrong = next((k for k in labels if not 0 <= k <= 9), None)
        raise ValueError(
            f"{where}: expected {len(images)} labels in 0..9, got {len(labels)}"
            + (f", among them {wrong}" if wrong is not None else "")
        )
    return images.reshape(-1, 3, 32, 32), np.array(labels, dtype=np.int64)


def parse_meta(data, where):
    """The 10 class names (str) from ``batches.meta``."""
    meta = safe_loads(data, where)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if (
        not isinstance(names, list)
        or len(names) != 10
        or not all(isinstance(n, bytes) for n in names)
    ):
        raise ValueError(f"{where}: expected b'label_names', a list of 10 names")
    return [n.decode("utf-8", "replace") for n in names]
