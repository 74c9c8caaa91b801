"""The options several commands share, defined once, and the checks that go with them.

Every check runs before a command writes or trains anything, and a bad value ends the command
with one line that names the option (argparse's usage error, or ``SystemExit("--opt: ...")``).

Every number an option takes has a range. Counts, sizes and rates are at most ``LARGEST`` (a
billion: anything larger is a typo in every option minires has), seeds are NumPy's 32-bit ones,
depths at most the paper's deepest net; a size whose arrays the machine's memory cannot hold is
refused by ``check_memory``, with what it needs and what the machine has. So a bad value is
refused at once, rather than found out midway through the work.

A command holds its run folder while it runs (``lock_out``): a second command with the same
``--out`` is refused in one line that names the first one's process.
"""

import argparse
import contextlib
import math
import os
import pickle

from .. import backend, data, io

LARGEST = 10**9  # the most any count, size or rate may be
MAX_SEED = 2**32 - 1  # the seeds of NumPy's legacy generator, and what most tools accept
MAX_DEPTH = 1202  # ResNet-1202, the paper's deepest (sec. 4.2)
MAX_SEEDS = 10_000  # seeds (runs) per setting: more is a typo, and its list alone fills memory


# -- argparse types: each parses one value and rejects it with the expected range ----------------


def _number(kind, text, largest=LARGEST):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        )
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if value > largest:
        raise argparse.ArgumentTypeError(f"must be at most {largest:,}, got {text}")
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


def seed(text):
    """A seed, 0 .. 2**32 - 1."""
    value = _number(int, text, largest=MAX_SEED)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def at_most(kind, high):
    """An argparse type: ``kind`` (``positive_int``, ...), and at most ``high``."""

    def parse(text):
        try:
            above = float(text) > high  # the tighter bound's message before kind's own
        except (ValueError, OverflowError):
            above = False
        if above:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {text}")
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


seed_count = at_most(positive_int, MAX_SEEDS)  # how many seeds (runs of one setting)


def fraction(text):
    """A number in [0, 1)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def cifar_depth(text):
    """A CIFAR-layout depth 6n + 2 (paper sec. 4.2: n blocks of two 3x3 layers per stage)."""
    value = _number(int, text)
    if value < 8 or (value - 2) % 6 or value > MAX_DEPTH:
        raise argparse.ArgumentTypeError(
            f"each depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...) and at most "
            f"{MAX_DEPTH} (the paper's deepest), got {value}"
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
        type=seed,
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


def add_variants(parser, variants):
    """--variants: any of ``variants``, all of them by default."""
    parser.add_argument("--variants", nargs="+", choices=list(variants), default=list(variants),
                        metavar="VARIANT", help=f"any of {', '.join(variants)} (default: all)")


def add_progress(parser):
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )


# -- checks ----------------------------------------------------------------------------------------


def check_device(device):
    """End the command with one line when the GPU is asked for and there is none."""
    if device == "gpu" and not backend.gpu_available():
        raise SystemExit(f"--device gpu: {backend.gpu_problem()}")
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


# -- memory ----------------------------------------------------------------------------------------


def machine_memory():
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf, or not these names
        return None


def size_text(n_bytes):
    """"12.3 GB", "512 MB": bytes for a message (powers of 1000)."""
    if n_bytes >= 1e15:
        return f"{n_bytes / 1e12:,.0f} TB"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes / 1e3:.3g} kB"


def check_memory(option, needed, what):
    """End the command when ``needed`` bytes (what the command will allocate for ``what``, an
    estimate) exceed this machine's memory: one line naming ``option``, the need and the memory."""
    have = machine_memory()
    if have is not None and needed > have:
        raise SystemExit(f"{option}: needs about {size_text(needed)} of memory for {what}; this "
                         f"machine has {size_text(have)}")
    return needed


def conv_net_bytes(depth, widths, image, batch, channels=3, kept=4):
    """Bytes of a CIFAR-layout net (``depth`` = 6n + 2 layers, stages of ``widths`` planes) that
    trains on ``batch`` images of ``image`` x ``image`` pixels, in float32: the parameters four
    times (weights, gradients, momentum, a copy) and ``kept`` arrays per layer of activations
    (what the backward keeps: conv, batch norm and ReLU outputs, and their gradients)."""
    n = max(1, (depth - 2) // 6)
    params = 9 * channels * widths[0] + 10 * widths[-1]  # the stem's 3x3 conv, the classifier
    activations, inputs, side = widths[0] * image * image, widths[0], image  # the stem's output
    for i, width in enumerate(widths):
        side = side if i == 0 else -(-side // 2)  # each later stage halves the image
        params += 9 * width * (inputs + (2 * n - 1) * width)
        activations += 2 * n * width * side * side
        inputs = width
    return 4 * (4 * params + kept * batch * (activations + channels * image * image))


# -- the run folder --------------------------------------------------------------------------------


@contextlib.contextmanager
def lock_out(out):
    """``with lock_out(out):`` the command holds its run folder ``out`` (made if missing) while it
    runs, so that no other command writes into it meanwhile. A folder held by another live process
    ends the command with one line naming that process; a lock left by a killed one is taken over
    (``io.lock_folder``). On leaving, the folder is as the command left it (an empty folder it made
    only for the lock is removed)."""
    check_out(out)
    lock = io.lock_folder(out)
    try:
        lock.__enter__()
    except io.FolderInUse as e:
        who = f"process {e.pid}" if e.pid is not None else "another process"
        raise SystemExit(f"--out {out}: in use by another run ({who}); wait for it to end or "
                         "choose another --out") from None
    except OSError as e:
        raise SystemExit(f"--out {out}: cannot write {e.filename or out} ({e.strerror or e})") \
            from None
    try:
        yield out
    finally:
        lock.release()
