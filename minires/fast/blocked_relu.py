"""ReLU over blocks of rows: ``BlockedReLU``, the fast twin of ``functional.activation.ReLU``.

The same two lines of math, y = max(x, 0) and dx = dy * [y > 0], written into preallocated
arrays block by block (``row_blocks.map_rows``) on the threads, so each block is read and written
while it is in cache and no temporary the size of the activation is made.
"""
from .. import backend
from ..functional.activation import ReLU
from .row_blocks import map_rows


class BlockedReLU(ReLU):
    """The reference ``ReLU`` (bit for bit the same numbers), in blocks of rows on the threads."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        # Keep the output, not the input: y > 0 exactly where x > 0, and y is usually kept alive
        # anyway by the next layer (a convolution saves its input), so this costs no memory.
        self.y = xp.empty_like(x)  # same memory layout as x
        map_rows(lambda x, y: xp.maximum(x, 0, out=y), x, self.y)
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.empty_like(gy)
        map_rows(lambda gy, y, gx: xp.multiply(gy, y > 0, out=gx), gy, self.y, gx)
        return gx
