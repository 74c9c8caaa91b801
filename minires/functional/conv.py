"""Convolution as a matrix product (im2col / col2im): the reference ``Conv2d``.

A convolution y[n, o, p, q] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, s*p + i, s*q + j] (+ b[o])
becomes one GEMM once every receptive field is copied into a column:

    cols = im2col(x):   (C*kh*kw, N*OH*OW)     row (c, i, j), column (n, p, q)
    y    = W @ cols:    (C_out, C*kh*kw) @ (C*kh*kw, N*OH*OW) -> (C_out, N*OH*OW)

and its backward is two more GEMMs plus the adjoint of im2col:

    dW    = dy @ cols^T          dcols = W^T @ dy          dx = col2im(dcols)

Layout. Columns are (C*kh*kw, N*OH*OW), built from a channel-major (C, N, H, W) copy of the
padded input, so the big copy reads and writes long runs of memory and the GEMM output is
channel-major, which is the layout the next layer wants (see ``layout.py``). The classic layout
(N*OH*OW, C*kh*kw) instead needs a transposed copy of the whole output into NCHW on every layer,
and DeZero's (N, C, kh, kw, OH, OW) with ``tensordot`` makes NumPy copy the columns once more.

OH = (H + 2*padding - kh) // stride + 1 (floor, as in PyTorch: rows that do not fit a whole
kernel are dropped), likewise OW.

``F.conv2d`` runs this ``Conv2d`` in reference mode (``minires.reference_ops()``), and otherwise its
fast twin ``minires.fast.ChunkedConv2d``: the same formulas over chunks of images on several
threads, with shortcuts for 1x1 and stride-1 convolutions (see ``minires/fast/``).
"""

import numpy as np

from .. import backend
from ..autograd import Function
from ..switch import implementation
from .layout import channels_first_2d, from_channels_first_2d


def strided_view(xp, a, shape, strides):
    """A read-only view of ``a``'s memory with the given shape and byte strides."""
    if xp is np and a.flags.c_contiguous:
        # The ndarray constructor checks the view stays inside ``a`` and costs a tenth of
        # as_strided.
        view = np.ndarray(shape, a.dtype, a, 0, strides)
        view.flags.writeable = False
        return view
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def as_square(v, name):
    """An int, or a pair of equal ints (only square strides/paddings/pool windows are supported)."""
    a, b = v if isinstance(v, (tuple, list)) and len(v) == 2 else (v, v)
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in (a, b)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if a != b:
        raise ValueError(f"{name} must be the same in both directions, got {v!r}")
    return int(a)


def out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def check_geometry(where, shape, kh, kw, stride, padding):
    """Validate an (N, C, H, W) input against a kernel; return (OH, OW)."""
    if len(shape) != 4:
        raise ValueError(f"{where}: input must be 4-D (N, C, H, W), got shape {shape}")
    if kh < 1 or kw < 1:
        raise ValueError(f"{where}: kernel size must be >= 1, got {(kh, kw)}")
    if stride < 1:
        raise ValueError(f"{where}: stride must be >= 1, got {stride}")
    if padding < 0:
        raise ValueError(f"{where}: padding must be >= 0, got {padding}")
    H, W = shape[2], shape[3]
    if H + 2 * padding < kh or W + 2 * padding < kw:
        raise ValueError(
            f"{where}: kernel {kh}x{kw} is larger than the padded input "
            f"{H + 2 * padding}x{W + 2 * padding} (input {H}x{W}, padding {padding})"
        )
    return out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)


# -- im2col / col2im -------------------------------------------------------------------------------


def _pad_channel_major(a, padding):
    """(N, C, H, W) -> zero-padded (C, N, H+2p, W+2p) array (a view when padding is 0)."""
    xp = backend.get_array_module(a)
    cm = a.swapaxes(0, 1)
    if padding == 0:
        return cm
    C, N, H, W = cm.shape
    out = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=a.dtype)
    out[:, :, padding : padding + H, padding : padding + W] = cm
    return out


def im2col(a, kh, kw, stride=1, padding=0, out=None):
    """Columns of every receptive field: (N, C, H, W) -> (C*kh*kw, N*OH*OW).

    cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, stride*p + i, stride*q + j].
    Works on raw NumPy/CuPy arrays. ``out`` may be a preallocated (C*kh*kw, N*OH*OW) array.
    """
    OH, OW = check_geometry("im2col", a.shape, kh, kw, stride, padding)
    xp = backend.get_array_module(a)
    N, C = a.shape[:2]
    padded = _pad_channel_major(a, padding)
    sc, sn, sh, sw = padded.strides
    # A read-only view whose [c, i, j, n, p, q] element is padded[c, n, stride*p + i, stride*q + j]:
    # the whole gather is then one copy, with no Python loop over kernel offsets.
    windows = strided_view(
        xp, padded, (C, kh, kw, N, OH, OW), (sc, sh, sw, sn, stride * sh, stride * sw)
    )
    if out is None:
        out = xp.empty((C * kh * kw, N * OH * OW), dtype=a.dtype)
    elif out.shape != (C * kh * kw, N * OH * OW):
        raise ValueError(
            f"im2col: out has shape {out.shape}, expected {(C * kh * kw, N * OH * OW)}"
        )
    out.reshape(C, kh, kw, N, OH, OW)[...] = windows
    return out


def col2im(cols, input_shape, kh, kw, stride=1, padding=0):
    """The adjoint of :func:`im2col`: add every column entry back where it was read from.

    (C*kh*kw, N*OH*OW) -> (N, C, H, W) (channel-major memory). Overlapping windows sum, which is
    exactly what the gradient of a convolution w.r.t. its input needs. Deterministic: a loop
    over the kh*kw kernel offsets, each a strided add of a whole (C, N, OH, OW) block.
    """
    N, C, H, W = input_shape
    OH, OW = check_geometry("col2im", input_shape, kh, kw, stride, padding)
    if cols.shape != (C * kh * kw, N * OH * OW):
        raise ValueError(
            f"col2im: cols has shape {cols.shape}, expected {(C * kh * kw, N * OH * OW)} "
            f"for input shape {tuple(input_shape)} and a {kh}x{kw} kernel"
        )
    xp = backend.get_array_module(cols)
    out = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    blocks = cols.reshape(C, kh, kw, N, OH, OW)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride] += blocks[:, i, j]
    return out[:, :, padding : padding + H, padding : padding + W].swapaxes(0, 1)


# -- convolution -----------------------------------------------------------------------------------


class Conv2d(Function):
    """y = conv(x, w) + b.  x: (N, C, H, W), w: (C_out, C, kh, kw), b: (C_out,),
    y: (N, C_out, OH, OW).

    With cols = im2col(x) (C*kh*kw, N*OH*OW), W = w as a (C_out, C*kh*kw) matrix and dy as a
    (C_out, N*OH*OW) matrix:

        forward    y  = W @ cols + b
        backward   dW = dy @ cols^T      db = sum of dy over (n, p, q)      dx = col2im(W^T @ dy)

    The backward builds the columns again rather than keeping them from the forward: they are
    kh*kw times the size of x, which is kept anyway. (The fast twin,
    ``minires/fast/chunked_conv.py``, computes the same function over chunks of images on several
    threads.)
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        s, p = self.stride, self.padding
        C_out, C_in, kh, kw = w.shape
        cols = im2col(x, kh, kw, s, p)  # (C*kh*kw, N*OH*OW)
        y = w.reshape(C_out, C_in * kh * kw) @ cols  # (C_out, N*OH*OW)
        if b is not None:
            y += b[:, None]
        self.x, self.w, self.has_bias = x, w, b is not None
        OH, OW = out_size(x.shape[2], kh, s, p), out_size(x.shape[3], kw, s, p)
        return from_channels_first_2d(y, (x.shape[0], C_out, OH, OW))

    def backward(self, gy):
        x, w, s, p = self.x, self.w, self.stride, self.padding
        C_out, C_in, kh, kw = w.shape
        g = channels_first_2d(gy)  # dy as (C_out, N*OH*OW)
        gw = (g @ im2col(x, kh, kw, s, p).T).reshape(w.shape)
        gx = col2im(w.reshape(C_out, C_in * kh * kw).T @ g, x.shape, kh, kw, s, p)
        return (gx, gw, g.sum(axis=1)) if self.has_bias else (gx, gw)


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in every framework) of NCHW ``x`` with ``w``.

    x: (N, C_in, H, W), w: (C_out, C_in, kh, kw), b: (C_out,) or None -> (N, C_out, OH, OW).
    """
    stride, padding = as_square(stride, "conv2d stride"), as_square(padding, "conv2d padding")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be 4-D (C_out, C_in, kh, kw), got shape {w.shape}")
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} "
            f"(x shape {x.shape}, w shape {w.shape})"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: b must have shape ({w.shape[0]},), got {b.shape}")
    check_geometry("conv2d", x.shape, w.shape[2], w.shape[3], stride, padding)
    # the fast twin unless in reference mode (minires/switch.py)
    op = implementation(Conv2d)(stride, padding)
    return op(x, w) if b is None else op(x, w, b)
