"""The knobs of the fast path, in one place, and one way to turn them for a block of code.

    from minires import fast
    with fast.using(shifted_gemm_max_channels=0, winograd_min_channels=64):
        ...                       # the padded-width columns, and Winograd from 64 channels on
    fast.knobs.chunk_bytes        # read a knob (4 MiB); outside the block, the defaults hold again

Every knob is read where its decision is taken, on every call, so a block of ``using`` changes
what the fast ops do inside it and nothing after it (DeZero's ``using_config``, for the fast
path). An unknown name or a bad value is refused, with one line naming the knob and what it
takes, before any knob changes. The knobs are process-wide, not per thread: the worker threads
of ``threads.py`` must see what the caller set. None of them changes the function computed, only
how: ``tests/fast/`` checks every setting against the reference ops.
"""
import contextlib
import numbers


def _count(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _positive(v):
    return _count(v) and v >= 1


KNOBS = {  # name: (default, the values it takes (said when refused), test of a value)
    "num_threads": (None, "a positive int, or None ($MINIRES_NUM_THREADS, else the cores, <= 8)",
                    lambda v: v is None or _positive(v)),
    "chunk_bytes": (4 << 20, "a positive int: bytes of im2col columns per chunk of images",
                    _positive),
    "shifted_gemm_chunk_bytes": (2 << 20, "a positive int: bytes of shifted-GEMM buffers per chunk",
                                 _positive),
    "block_bytes": (1 << 20, "a positive int: bytes per array in a block of rows", _positive),
    "shifted_gemm_max_channels": (128, "an int >= 0 (0: no shifted GEMMs)",
                                  lambda v: _count(v) and v >= 0),
    "shifted_gemm_via": ("blas", "'blas' (ctypes GEMM, beta = 1) or 'matmul' (np.matmul, then +=)",
                         lambda v: v in ("blas", "matmul")),
    "winograd_min_channels": (None, "a positive int, or None (Winograd off)",
                              lambda v: v is None or _positive(v)),
}
"""What each knob does, and why its default, is said where it is read:

    num_threads                threads.py          worker threads for chunks and blocks
    chunk_bytes                columns.py          images per chunk, every branch but the next
    shifted_gemm_chunk_bytes   shifted_gemm.py     images per chunk of the shifted GEMMs
    block_bytes                row_blocks.py       rows per block of batch norm and ReLU
    shifted_gemm_max_channels  shifted_gemm.py     widest convolution done as shifted GEMMs
    shifted_gemm_via           shifted_gemm.py     how the shifted GEMMs add up their products
    winograd_min_channels      winograd.py         narrowest convolution by Winograd (None: off)

The two chunk sizes count different buffers (a chunk's columns; a chunk's input, output and dY
in the shared-padding layout), were each measured best at their value (benchmarks/README.md), and
are not interchangeable: the chunks decide the order of the weight gradient's sum, so 4 MiB for
the shifted GEMMs would change the last bits of every trained net.
"""


class Knobs:
    """The current value of every knob, as attributes (``knobs.chunk_bytes``); read-only here."""

    __slots__ = tuple(KNOBS)

    def __init__(self):
        for name, (default, _, _) in KNOBS.items():
            object.__setattr__(self, name, default)

    def __setattr__(self, name, value):
        raise AttributeError("minires.fast.knobs is read-only: use "
                             f"`with minires.fast.using({name}=...)`")

    def __repr__(self):
        return "Knobs(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in KNOBS) + ")"


knobs = Knobs()


def check(changes, where="minires.fast.using"):
    """Refuse an unknown knob (TypeError) or a value it does not take (ValueError), in one line."""
    for name, value in changes.items():
        if name not in KNOBS:
            raise TypeError(f"{where}: no knob named {name!r}; the knobs are {', '.join(KNOBS)}")
        _, takes, ok = KNOBS[name]
        if not ok(value):
            raise ValueError(f"{where}: {name} must be {takes}; got {value!r}")


def configure(**changes):
    """Set knobs from now on (what ``using`` does for a block); returns their previous values."""
    check(changes, "minires.fast.configure")
    previous = {name: getattr(knobs, name) for name in changes}
    for name, value in changes.items():
        object.__setattr__(knobs, name, value)
    return previous


@contextlib.contextmanager
def using(**changes):
    """Set the named knobs inside this block, then give them back their values."""
    check(changes)
    previous = configure(**changes)
    try:
        yield knobs
    finally:
        for name, value in previous.items():
            object.__setattr__(knobs, name, value)
