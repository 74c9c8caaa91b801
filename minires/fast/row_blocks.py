"""Blocks of rows: how the fast batch norm and ReLU cut an activation into cache-sized pieces.

A row is the outermost axis of an array's memory: a channel of a channel-major activation (the
layout of ``functional/layout.py``), an image of a C-contiguous one. Elementwise work and
per-channel reductions are done over blocks of whole rows of at most ``block_bytes`` (a knob,
``config.py``; 1 MiB) per array, spread over the threads (``threads.map_chunks``): each block is
still in cache for the next of the few passes over it, and no two blocks share an output, so
the numbers do not depend on the blocks or the threads.
"""
from .. import backend
from ..functional.layout import channels_first_2d
from .config import knobs
from .threads import map_chunks


def rows_per_block(m):
    """Rows of the (rows, columns) matrix ``m`` in one block (on the GPU: all of them)."""
    if backend.is_gpu_array(m):
        return m.shape[0]
    return knobs.block_bytes // max(1, m.shape[1] * m.dtype.itemsize)


def map_rows(fn, *arrays):
    """Call ``fn(*blocks)`` on matching blocks of rows of same-shaped arrays, over the CPU threads.

    ``fn`` must work elementwise and write its result into one of the blocks (``out=``). When the
    arrays do not share one of the two layouts above, or live on the GPU, it is simply
    ``fn(*arrays)``: the same numbers either way.
    """
    a = arrays[0]
    rows = None
    same_shape = all(b.shape == a.shape for b in arrays)
    if a.size and not backend.is_gpu_array(a) and a.ndim >= 2 and same_shape:
        if all(b.flags.c_contiguous for b in arrays):
            rows = [b.reshape(a.shape[0], -1) for b in arrays]
        elif all(b.swapaxes(0, 1).flags.c_contiguous for b in arrays):
            rows = [channels_first_2d(b) for b in arrays]
    if rows is None:
        fn(*arrays)
        return
    per_row = rows[0].shape[1] * max(b.itemsize for b in arrays)
    map_chunks(len(rows[0]), knobs.block_bytes // per_row,
               lambda lo, hi: fn(*(r[lo:hi] for r in rows)))
