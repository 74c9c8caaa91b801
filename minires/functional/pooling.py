"""Max and average pooling over k x k windows, and the global average pool before ResNet's fc.

Windows of kernel_size k with stride s (default k) over the input padded by p on every side:
OH = (H + 2p - k) // s + 1, likewise OW. Both poolings walk the k*k kernel offsets (i, j); at
offset (i, j) the windows see the strided view ``xpad[:, :, i::s, j::s]`` (``_windows``), and the
backward adds each offset's share of dy back through the same view (``_add_back``).

    max:  y = max over the window of xpad, padding counted as -inf; NaN anywhere in the window
          gives NaN (as NumPy's max and PyTorch do)
    avg:  y = mean of the window of xpad, padding counted as zeros (PyTorch's count_include_pad)
"""

import numpy as np

from .. import backend
from ..autograd import Function
from .conv import as_square, check_geometry
from .layout import empty_channel_major


def _pool_geometry(where, x, kernel_size, stride, padding):
    k = as_square(kernel_size, f"{where} kernel_size")
    s = k if stride is None else as_square(stride, f"{where} stride")
    p = as_square(padding, f"{where} padding")
    if 2 * p > k:
        raise ValueError(f"{where}: padding {p} must be at most half the kernel size {k}")
    OH, OW = check_geometry(where, x.shape, k, k, s, p)
    return k, k, s, p, OH, OW


def _pad(x, p, value):
    """x (N, C, H, W) with p rows and columns of ``value`` on every side (x itself when p is 0)."""
    if p == 0:
        return x
    N, C, H, W = x.shape
    padded = backend.get_array_module(x).full((N, C, H + 2 * p, W + 2 * p), value, dtype=x.dtype)
    padded[:, :, p : p + H, p : p + W] = x
    return padded


def _windows(padded, i, j, s, OH, OW):
    """The (N, C, OH, OW) view of the padded input seen by kernel offset (i, j)."""
    return padded[:, :, i : i + s * OH : s, j : j + s * OW : s]


def _add_back(shares, in_shape, geom, like):
    """dx: ``shares[k]`` (N, C, OH, OW) added back at kernel offset k = i*kw + j,
    padding cut off."""
    kh, kw, s, p, OH, OW = geom
    N, C, H, W = in_shape
    g = backend.get_array_module(like).zeros((N, C, H + 2 * p, W + 2 * p), dtype=like.dtype)
    for k, share in enumerate(shares):
        _windows(g, k // kw, k % kw, s, OH, OW)[...] += share
    return g[:, :, p : p + H, p : p + W]


class MaxPool2d(Function):
    """y[n, c, p, q] = max over the window of xpad (padding counts as -inf).

    Ties: the gradient goes to the first maximum in the window in row-major (i, j) order, once.
    A NaN counts as larger than every number, so the first NaN of a window is its maximum.
    """

    def __init__(self, kh, kw, s, p, OH, OW):
        self.geom = kh, kw, s, p, OH, OW

    def forward(self, x):
        xp = backend.get_array_module(x)
        kh, kw, s, p, OH, OW = self.geom
        padded = _pad(x, p, -np.inf)
        y = _windows(padded, 0, 0, s, OH, OW).copy()
        arg = xp.zeros(y.shape, dtype=np.int8 if kh * kw < 128 else np.int32)
        for k in range(1, kh * kw):
            cand = _windows(padded, k // kw, k % kw, s, OH, OW)
            # strict: an equal later value does not take the gradient; a NaN beats any number
            better = (cand > y) | (xp.isnan(cand) & ~xp.isnan(y))
            xp.copyto(y, cand, where=better)
            arg[better] = k
        self.arg, self.in_shape = arg, x.shape
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        kh, kw = self.geom[:2]
        return _add_back(
            (xp.where(self.arg == k, gy, 0) for k in range(kh * kw)), self.in_shape, self.geom, gy
        )


class AvgPool2d(Function):
    """y = mean of the window of xpad, padding counted as zeros (PyTorch's count_include_pad)."""

    def __init__(self, kh, kw, s, p, OH, OW):
        self.geom = kh, kw, s, p, OH, OW

    def forward(self, x):
        xp = backend.get_array_module(x)
        kh, kw, s, p, OH, OW = self.geom
        padded = _pad(x, p, 0)
        y = xp.zeros((x.shape[0], x.shape[1], OH, OW), dtype=x.dtype)
        for k in range(kh * kw):
            y += _windows(padded, k // kw, k % kw, s, OH, OW)
        self.in_shape = x.shape
        return y / (kh * kw)

    def backward(self, gy):
        kh, kw = self.geom[:2]
        share = gy / (kh * kw)
        return _add_back([share] * (kh * kw), self.in_shape, self.geom, gy)


class GlobalAvgPool2d(Function):
    """y[n, c] = mean over h, w of x[n, c, h, w]:  (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, gy):
        N, C, H, W = self.in_shape
        g = empty_channel_major(self.in_shape, gy.dtype, gy)
        g[...] = (gy / (H * W))[:, :, None, None]
        return g


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows (stride defaults to kernel_size);
    (N, C, H, W) -> (N, C, OH, OW)."""
    return MaxPool2d(*_pool_geometry("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows, zero padding included in the count."""
    return AvgPool2d(*_pool_geometry("avg_pool2d", x, kernel_size, stride, padding))(x)


def global_avg_pool2d(x):
    """Mean over all spatial positions: (N, C, H, W) -> (N, C)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
    return GlobalAvgPool2d()(x)
