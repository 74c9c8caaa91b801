"""The options several commands share, defined once, and the checks that go with them.

Every check runs before a command writes or trains anything, and a bad value ends the command
with one line that names the option (argparse's usage error, or ``SystemExit("--opt: ...")``).
"""

import argparse
import math
import os
import pickle

from .. import backend, data


# -- argparse types: each parses one value and rejects it with the expected range ----------------


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        )
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_int(text):
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text):
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text):
    value = _number(float, text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def nonnegative_float(text):
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def fraction(text):
    """A number in [0, 1)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def cifar_depth(text):
    """A CIFAR-layout depth 6n + 2 (paper sec. 4.2: n blocks of two 3x3 layers per stage)."""
    value = _number(int, text)
    if value < 8 or (value - 2) % 6:
        raise argparse.ArgumentTypeError(
            f"each depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), got {value}"
        )
    return value


# -- options ---------------------------------------------------------------------------------------


def add_out(parser, default, what="output folder"):
    parser.add_argument(
        "--out",
        default=default,
        metavar="DIR",
        help=f"{what} (default: {default})" if default else what,
    )


def add_seed(parser, default=0, what="seeds the weights, batch order and augmentation"):
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=default,
        help=what + (f" (default: {default})" if default is not None else " (default: 0)"),
    )


def add_device(parser):
    parser.add_argument(
        "--device",
        default="cpu",
        choices=list(backend.DEVICES),
        help="cpu (NumPy) or gpu (CuPy on a CUDA GPU); default: cpu",
    )


def add_data(parser, default="digits", extra=()):
    """``extra``: more --data choices that the command itself loads (train: "imagefolder")."""
    parser.add_argument(
        "--data",
        default=default,
        choices=sorted(data.DATASETS) + list(extra),
        help="digits (bundled, 8x8) or cifar10 (needs --data-dir, or --download)"
        + (
            ", or imagefolder (DIR/train/<class>/<image>, DIR/val/...)"
            if "imagefolder" in extra
            else ""
        )
        + (f" (default: {default})" if default else " (default: digits)"),
    )
    parser.add_argument(
        "--data-dir",
        default="data",
        metavar="DIR",
        help="where CIFAR-10 is or goes"
        + (", or the image folder" if extra else "")
        + " (default: ./data)",
    )
    parser.add_argument(
        "--download", action="store_true", help="fetch CIFAR-10 (163 MB) if it is not in --data-dir"
    )


def add_depths(parser, default):
    parser.add_argument(
        "--depths",
        type=cifar_depth,
        nargs="+",
        default=list(default),
        metavar="DEPTH",
        help=f"CIFAR-layout depths 6n+2 (default: {' '.join(map(str, default))})",
    )


def add_progress(parser):
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )


# -- checks ----------------------------------------------------------------------------------------


def check_device(device):
    """End the command with one line when the GPU is asked for and there is none."""
    if device == "gpu" and not backend.gpu_available():
        raise SystemExit("--device gpu: no CUDA GPU with CuPy found (pip install 'minires[gpu]')")
    return device


def check_out(out):
    """--out must be a folder or not exist yet (never a file); returns it."""
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise SystemExit(f"--out {out}: exists and is not a folder")
    return out


def load_data(name, data_dir=".", download=False):
    """(train, test) of ``--data name``; a missing, corrupt or tampered data set ends the command
    with a one-line message rather than a traceback."""
    if name == "digits":
        return data.load_digits()
    try:
        return data.load_cifar10(data_dir, download=download)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        raise SystemExit(f"--data {name}: {e}") from None
