"""The input gradient of a stride-1 convolution without col2im: a convolution of dy with the
flipped kernel.

For y = conv(x, W) with stride 1 and padding p < k (a square k x k kernel), each dy value reaches
the inputs its window covered, so

    dx = conv(dy, W'),   W'[c, o, i, j] = W[o, c, k-1-i, k-1-j],   padding k - 1 - p

(W flipped in space, its input and output channels swapped): another contiguous gather and GEMM,
on the padded-width columns of dy (``columns.im2col_wide``), instead of col2im's scatter-add,
which moves less memory. The forward and dW are the columns' (``columns.py``). (It multiplies
every weight by dY's zero padding too: for non-finite weights, col2im instead; ``nonfinite.py``.)
"""
from .. import backend
from . import columns
from .memory import workspace
from .nonfinite import all_finite


def flipped_kernel(w):
    """W' of the input gradient: (C_out, C, k, k) -> (C, C_out, k, k), flipped in space (a view)."""
    return w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def applies(x, w, stride, padding):
    """Stride 1, a square kernel larger than 1x1, padding p < k (so that k - 1 - p >= 0), and
    images of at least one row and column (else dy, padded by k - 1 - p, is smaller than k)."""
    C_out, C, kh, kw = w.shape
    return stride == 1 and kh == kw > 1 and padding < kh and min(x.shape[2], x.shape[3]) >= 1


forward = columns.forward


def backward(x, w, gy, stride, padding, need_x, need_w):
    """dW from the columns; dx = conv(dy, flipped kernel, padding k - 1 - p), on padded width."""
    if need_x and not all_finite(w):  # each weight times dY's zero padding: see nonfinite.py
        return columns.backward(x, w, gy, stride, padding, need_x, need_w)
    xp = backend.get_array_module(gy)
    C_out, C, k, _ = w.shape
    H, W = x.shape[2], x.shape[3]
    OW, S, q = gy.shape[3], gy.shape[2] * gy.shape[3], k - 1 - padding
    w_flip = flipped_kernel(w).reshape(C, -1)
    wide = columns.wide_width(OW, k, q)

    def input_grad(x_n, gy_n, g2, gx_n):
        cols = workspace((C_out * k * k, x_n.shape[0] * H * wide), gy.dtype, gy)
        columns.im2col_wide(gy_n, k, k, q, out=cols)
        out = workspace((C, cols.shape[1]), gy.dtype, gy, "out")
        columns.drop_wrapped(xp.matmul(w_flip, cols, out=out), gx_n, W)

    per_image = max(C * k * k * S, C_out * k * k * H * wide)
    return columns.backward_in_chunks(x, w, gy, need_x, need_w, per_image,
                                      lambda x_n, g2: columns.weight_grad(x_n, g2, w, 1, padding),
                                      input_grad)
