"""1x1 stride-1 convolutions (the bottleneck's): no im2col at all.

Their columns are the input itself: a channel-major activation viewed as a (C, N*H*W) matrix
(``functional/layout.py``) is exactly im2col's (C*1*1, N*OH*OW). So, chunk by chunk,

    y = W @ x        dW += dy @ x^T        dx = W^T @ dy

with W as its (C_out, C) matrix: three GEMMs and nothing copied.
"""
from .. import backend
from ..functional.layout import channels_first_2d
from . import columns
from .threads import map_chunks


def applies(x, w, stride, padding):
    """A 1x1 kernel, stride 1, no padding."""
    return w.shape[2] == w.shape[3] == 1 and stride == 1 and padding == 0


def forward(x, w, b, stride, padding):
    """y = W @ x + b as a (C_out, N*H*W) channel-major matrix."""
    xp = backend.get_array_module(x)
    C_out, C = w.shape[:2]
    N, _, H, W = x.shape
    S, w2 = H * W, w.reshape(C_out, C)
    y = xp.empty((C_out, N * S), dtype=x.dtype)

    def run(lo, hi):
        y_n = y[:, lo * S:hi * S]
        xp.matmul(w2, channels_first_2d(x[lo:hi]), out=y_n)
        if b is not None:
            y_n += b[:, None]

    map_chunks(N, columns.images_per_chunk(x, C * S), run, like=x)
    return y


def backward(x, w, gy, stride, padding, need_x, need_w):
    """dW = dy @ x^T and dx = W^T @ dy, chunk by chunk."""
    xp = backend.get_array_module(gy)
    C_out, C = w.shape[:2]
    w2 = w.reshape(C_out, C)

    def input_grad(x_n, gy_n, g2, gx_n):
        xp.matmul(w2.T, g2, out=gx_n)

    return columns.backward_in_chunks(x, w, gy, need_x, need_w, C * x.shape[2] * x.shape[3],
                                      lambda x_n, g2: g2 @ channels_first_2d(x_n).T, input_grad)
