"""(branch) Convolutions with nothing to multiply: no images (N = 0), no input channels
(C_in = 0) or no output channels (C_out = 0).

Every sum of the convolution is then empty or has no entry to fill,

    y = b (or 0)        dW = 0        dx = 0        (shapes (N, C_out, OH, OW), w's, x's)

whatever the numbers (a NaN weight multiplies nothing), so this branch writes them without a
GEMM, a chunk or a copy, and the other branches never see an empty array. (The reference gets
N = 0 and C_in = 0 right through its GEMMs; C_out = 0 it refuses, in NumPy's words, when it
reshapes w to a (0, -1) matrix.)
"""
from .. import backend
from ..functional.conv import out_size


def applies(x, w, stride, padding):
    """No images, no input channels or no output channels."""
    return 0 in (x.shape[0], x.shape[1], w.shape[0])


def forward(x, w, b, stride, padding):
    """y = b broadcast (or zeros) as a (C_out, N*OH*OW) channel-major matrix."""
    xp = backend.get_array_module(x)
    C_out, _, kh, kw = w.shape
    N, _, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    y = xp.zeros((C_out, N * OH * OW), dtype=x.dtype)
    if b is not None:
        y += b[:, None]
    return y


def backward(x, w, gy, stride, padding, need_x, need_w):
    """dx = 0 as a (C, N*H*W) matrix, dW = 0: sums with no terms."""
    xp = backend.get_array_module(gy)
    N, C, H, W = x.shape
    gx = xp.zeros((C, N * H * W), dtype=gy.dtype) if need_x else None
    gw = xp.zeros(w.shape, dtype=gy.dtype) if need_w else None
    return gx, gw
