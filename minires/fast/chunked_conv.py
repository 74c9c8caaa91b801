"""The convolution over chunks of images: ``ChunkedConv2d``, the fast twin of
``functional.conv.Conv2d``.

It is a dispatcher. Each way of computing a convolution is a module with three functions,

    applies(x, w, stride, padding) -> bool
    forward(x, w, b, stride, padding) -> y as a channel-major (C_out, N*OH*OW) matrix
    backward(x, w, gy, stride, padding, need_x, need_w) -> (dx as (C, N*H*W) or None, dW or None)

and the first module in ``BRANCHES`` whose ``applies`` says yes computes the forward; its own
``backward`` then computes the gradients. Every branch computes the same function, in its own
rounding (``tests/fast/test_fast_equals_reference.py`` runs each one against the reference op),
with NaN and inf in the same entries (``nonfinite.py``).
"""
from .. import backend
from ..functional.conv import Conv2d, out_size
from ..functional.layout import channels_first_2d, from_channels_first_2d
from . import columns, empty, flipped_dx, pointwise, shifted_gemm, winograd

BRANCHES = (
    empty,          # N, C_in or C_out is 0: y = b, dx = 0, dW = 0, no GEMM
    winograd,       # stride-1 3x3 from ``winograd_min_channels`` on: off by default
    shifted_gemm,   # stride-1 "same", up to 128 channels, CPU: kh*kw GEMMs, no columns
    pointwise,      # 1x1 stride 1: the activation is already the column matrix
    flipped_dx,     # other stride 1, square, p < k: padded-width columns, dx by the flipped kernel
    columns,        # the rest: im2col columns (padded width for stride 1), dx by col2im
)


def branch_for(x, w, stride, padding):
    """The module of ``BRANCHES`` that computes this convolution."""
    return next(b for b in BRANCHES if b.applies(x, w, stride, padding))


def bias_grad(gy):
    """db = the sum of dy over (n, p, q), per output channel (zeros when dy has no entries)."""
    if gy.size == 0:
        return backend.get_array_module(gy).zeros(gy.shape[1], dtype=gy.dtype)
    return channels_first_2d(gy).sum(axis=1)


class ChunkedConv2d(Conv2d):
    """The reference ``Conv2d``, computed by the first of ``BRANCHES`` that applies."""

    def forward(self, x, w, b=None):
        s, p = self.stride, self.padding
        N, C_out = x.shape[0], w.shape[0]
        OH, OW = out_size(x.shape[2], w.shape[2], s, p), out_size(x.shape[3], w.shape[3], s, p)
        self.x, self.w, self.has_bias = x, w, b is not None
        self.branch = branch_for(x, w, s, p)
        return from_channels_first_2d(self.branch.forward(x, w, b, s, p), (N, C_out, OH, OW))

    def backward(self, gy):
        need_x, need_w = self.needs_input_grad[:2]
        x, s, p = self.x, self.stride, self.padding
        gx2, gw = self.branch.backward(x, self.w, gy, s, p, need_x, need_w)
        need_b = self.has_bias and self.needs_input_grad[2]
        gb = bias_grad(gy) if need_b else None
        gx = from_channels_first_2d(gx2, x.shape) if need_x else None
        return (gx, gw, gb) if self.has_bias else (gx, gw)
