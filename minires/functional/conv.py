"""Convolution as a matrix product (im2col / col2im), and max / average pooling.

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
"""
import math
import threading

import numpy as np

from .. import backend
from ..autograd import Function
from .layout import channels_first_2d, empty_channel_major, from_channels_first_2d


def _as_strided(xp, a, shape, strides):
    """A read-only view of ``a``'s memory with the given shape and byte strides."""
    if xp is np and a.flags.c_contiguous:
        # The ndarray constructor checks the view stays inside ``a`` and costs a tenth of as_strided.
        view = np.ndarray(shape, a.dtype, a, 0, strides)
        view.flags.writeable = False
        return view
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def _square(v, name):
    """An int, or a pair of equal ints (only square strides/paddings/pool windows are supported)."""
    a, b = (v if isinstance(v, (tuple, list)) and len(v) == 2 else (v, v))
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in (a, b)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if a != b:
        raise ValueError(f"{name} must be the same in both directions, got {v!r}")
    return int(a)


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _check_geometry(where, shape, kh, kw, stride, padding):
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
        raise ValueError(f"{where}: kernel {kh}x{kw} is larger than the padded input "
                         f"{H + 2 * padding}x{W + 2 * padding} (input {H}x{W}, padding {padding})")
    return _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)


# -- workspace -------------------------------------------------------------------------------------
# im2col columns are the largest arrays in a CNN step (kh*kw times an activation) and live only
# for the duration of one op. Allocating them fresh every time costs page faults on every touch;
# a few grow-only buffers per thread, device and dtype, reused by every convolution, removes that cost.
# On the CPU a convolution works on chunks of a few images (see Conv2d), so each buffer stays small.
_workspaces = {}


def _workspace(shape, dtype, like, name="cols"):
    xp = backend.get_array_module(like)
    key = (threading.get_ident(), name, xp.__name__, np.dtype(dtype))
    n = math.prod(shape)
    buf = _workspaces.get(key)
    if buf is None or buf.size < n:
        _workspaces[key] = buf = None  # free the old buffer before allocating the new one
        _workspaces[key] = buf = xp.empty(n, dtype=dtype)
    return buf[:n].reshape(shape)


def release_workspace():
    """Free every thread's im2col buffers (they are re-created on the next convolution)."""
    _workspaces.clear()


# -- im2col / col2im -------------------------------------------------------------------------------

def _pad_channel_major(a, padding):
    """(N, C, H, W) -> zero-padded (C, N, H+2p, W+2p) array (a view when padding is 0)."""
    xp = backend.get_array_module(a)
    cm = a.swapaxes(0, 1)
    if padding == 0:
        return cm
    C, N, H, W = cm.shape
    out = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=a.dtype)
    out[:, :, padding:padding + H, padding:padding + W] = cm
    return out


def im2col(a, kh, kw, stride=1, padding=0, out=None):
    """Columns of every receptive field: (N, C, H, W) -> (C*kh*kw, N*OH*OW).

    cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, stride*p + i, stride*q + j].
    Works on raw NumPy/CuPy arrays. ``out`` may be a preallocated (C*kh*kw, N*OH*OW) array.
    """
    OH, OW = _check_geometry("im2col", a.shape, kh, kw, stride, padding)
    xp = backend.get_array_module(a)
    N, C = a.shape[:2]
    padded = _pad_channel_major(a, padding)
    sc, sn, sh, sw = padded.strides
    # A read-only view whose [c, i, j, n, p, q] element is padded[c, n, stride*p + i, stride*q + j]:
    # the whole gather is then one copy, with no Python loop over kernel offsets.
    windows = _as_strided(xp, padded, (C, kh, kw, N, OH, OW), (sc, sh, sw, sn, stride * sh, stride * sw))
    if out is None:
        out = xp.empty((C * kh * kw, N * OH * OW), dtype=a.dtype)
    elif out.shape != (C * kh * kw, N * OH * OW):
        raise ValueError(f"im2col: out has shape {out.shape}, expected {(C * kh * kw, N * OH * OW)}")
    out.reshape(C, kh, kw, N, OH, OW)[...] = windows
    return out


def col2im(cols, input_shape, kh, kw, stride=1, padding=0):
    """The adjoint of :func:`im2col`: add every column entry back where it was read from.

    (C*kh*kw, N*OH*OW) -> (N, C, H, W) (channel-major memory). Overlapping windows sum, which is
    exactly what the gradient of a convolution w.r.t. its input needs. Deterministic: a loop
    over the kh*kw kernel offsets, each a strided add of a whole (C, N, OH, OW) block.
    """
    N, C, H, W = input_shape
    OH, OW = _check_geometry("col2im", input_shape, kh, kw, stride, padding)
    if cols.shape != (C * kh * kw, N * OH * OW):
        raise ValueError(f"col2im: cols has shape {cols.shape}, expected {(C * kh * kw, N * OH * OW)} "
                         f"for input shape {tuple(input_shape)} and a {kh}x{kw} kernel")
    xp = backend.get_array_module(cols)
    out = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    blocks = cols.reshape(C, kh, kw, N, OH, OW)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += blocks[:, i, j]
    return out[:, :, padding:padding + H, padding:padding + W].swapaxes(0, 1)


# -- convolution -----------------------------------------------------------------------------------

# -- stride 1: columns on the padded width ---------------------------------------------------------
# im2col copies each (c, i, j) row of the columns as N*OH runs of only OW numbers, and such a copy
# is bound by the count of runs, not by bytes. For stride 1 there is a layout with long runs.
# Lay the padded image out in rows of Wp numbers: p zeros, the W pixels, zeros up to Wp. The p
# zeros at the start of row r+1 double as the right padding of row r, so Wp = W + p is enough
# (W + max(p, 2p - kw + 1) in general). Now compute the output on a grid of that width Wp:
# output t = r*Wp + q of image n reads, for kernel offset (i, j), element i*Wp + j + t of the
# flattened padded image, so row (c, i, j) of the columns is ONE run of OH*Wp numbers per image
# (3-5x faster to copy). The Wp - OW extra outputs per row (kw - 1 - p of them; one for a 3x3
# "same" convolution) wrap around into the next row: garbage, which the GEMM computes (it grows
# by Wp/OW) and ``_drop_wrapped`` leaves out of the result.

def _wide_width(W, kw, padding):
    """Row length Wp of the padded-width layout for width W, kernel width kw, padding p."""
    return W + max(padding, 2 * padding - kw + 1)


def im2col_wide(a, kh, kw, padding=0, out=None):
    """Stride-1 columns on the padded width: (N, C, H, W) -> (C*kh*kw, N*OH*Wp), Wp = _wide_width(W, kw, p).

    cols[(c*kh + i)*kw + j, (n*OH + r)*Wp + q] = flat(xpad[n, c])[(r + i)*Wp + q + j]; for q < OW
    that is im2col's column (n, r, q), for q >= OW a wrapped-around value to be ignored.
    """
    OH, OW = _check_geometry("im2col_wide", a.shape, kh, kw, 1, padding)
    xp = backend.get_array_module(a)
    N, C, H, W = a.shape
    Hp, Wp = H + 2 * padding, _wide_width(W, kw, padding)
    # kw - 1 zeros of slack: the last image's garbage outputs read that far past its end.
    flat = xp.zeros((C, N * Hp * Wp + kw - 1), dtype=a.dtype)
    flat[:, :N * Hp * Wp].reshape(C, N, Hp, Wp)[:, :, padding:padding + H, padding:padding + W] = a.swapaxes(0, 1)
    e = flat.itemsize
    windows = _as_strided(xp, flat, (C, kh, kw, N, OH * Wp), (flat.strides[0], Wp * e, e, Hp * Wp * e, e))
    if out is None:
        out = xp.empty((C * kh * kw, N * OH * Wp), dtype=a.dtype)
    out.reshape(C, kh, kw, N, OH * Wp)[...] = windows
    return out


def _drop_wrapped(wide, out, OW):
    """Copy the valid part of a (C, n*OH*Wp) padded-width result into ``out`` (C, n*OH*OW)."""
    C, n_OH_OW = out.shape
    rows = n_OH_OW // OW
    out.reshape(C, rows, OW)[...] = wide.reshape(C, rows, -1)[:, :, :OW]


# On the CPU a convolution runs over chunks of images whose columns take at most this many bytes:
# small enough that a chunk's columns are still in the cache when its GEMM reads them back, big
# enough that each GEMM is worth a call. (2-4 MiB measured best on a 2-core EPYC, 32 MiB L3.)
_CHUNK_BYTES = 4 << 20


class Conv2d(Function):
    """y = conv(x, w) + b.  x: (N, C, H, W), w: (C_out, C, kh, kw), b: (C_out,), y: (N, C_out, OH, OW).

    For each chunk of images n in [lo, hi) (on the GPU, the whole batch at once):

        forward    y[n]  = W @ im2col(x[n]) + b
        backward   dW   += dy[n] @ im2col(x[n])^T          dx[n] = col2im(W^T @ dy[n])

    The chunks share nothing but the dW sum, which adds their parts in chunk order, so the result
    is the same however many threads ran them (``backend.map_chunks``).

    Backward recomputes the columns instead of keeping them from the forward pass: they are
    kh*kw times the size of x, and keeping one set per layer would multiply a ResNet's activation
    memory several times over, while the recompute is one copy into a cached workspace.

    Shortcuts, all exact: a 1x1 stride-1 convolution needs no im2col (its columns are x itself,
    viewed as (C, N*H*W)); other stride-1 convolutions build their columns on the padded width
    (``im2col_wide``); and for stride 1 the input gradient is computed as a convolution of dy with
    the flipped kernel (a gather: im2col + GEMM) instead of GEMM + col2im (a scatter-add), which
    moves less memory. ``im2col`` and ``col2im`` serve every other stride.
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    @staticmethod
    def _chunk(x, per_image):
        """Images per chunk, given the column entries one image needs."""
        if backend.is_gpu_array(x):
            return x.shape[0]
        return _CHUNK_BYTES // max(1, per_image * x.dtype.itemsize)

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        s, p = self.stride, self.padding
        C_out, C, kh, kw = w.shape
        N, _, H, W = x.shape
        OH, OW = _out_size(H, kh, s, p), _out_size(W, kw, s, p)
        pointwise, wide = kh == kw == 1 and s == 1 and p == 0, s == 1
        S, w2 = OH * OW, w.reshape(C_out, -1)
        y = xp.empty((C_out, N * S), dtype=x.dtype)  # channel-major: the next layer's layout

        def run(lo, hi):
            x_n, y_n, n = x[lo:hi], y[:, lo * S:hi * S], hi - lo
            if pointwise:
                xp.matmul(w2, channels_first_2d(x_n), out=y_n)
            elif wide:
                cols = im2col_wide(x_n, kh, kw, p, out=_workspace((C * kh * kw, n * OH * _wide_width(W, kw, p)), x.dtype, x))
                _drop_wrapped(xp.matmul(w2, cols, out=_workspace((C_out, cols.shape[1]), x.dtype, x, "out")), y_n, OW)
            else:
                xp.matmul(w2, im2col(x_n, kh, kw, s, p, out=_workspace((C * kh * kw, n * S), x.dtype, x)), out=y_n)
            if b is not None:
                y_n += b[:, None]

        per_image = C * kh * kw * (OH * _wide_width(W, kw, p) if wide else S)
        backend.map_chunks(N, self._chunk(x, per_image), run)
        self.x, self.w, self.has_bias = x, w, b is not None
        return from_channels_first_2d(y, (N, C_out, OH, OW))

    def backward(self, gy):
        x, w, s, p = self.x, self.w, self.stride, self.padding
        xp = backend.get_array_module(gy)
        C_out, C, kh, kw = w.shape
        N, _, H, W = x.shape
        OH, OW = gy.shape[2], gy.shape[3]
        S, HW, w2 = OH * OW, H * W, w.reshape(C_out, -1)
        need_x, need_w = self.needs_input_grad[:2]
        pointwise = kh == kw == 1 and s == 1 and p == 0
        flipped = s == 1 and kh == kw and p < kh and not pointwise
        if flipped:  # dx = conv(dy, w flipped in space with in/out channels swapped, padding q = kh-1-p)
            w_flip, q = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1), kh - 1 - p
        gx2 = xp.empty((C, N * HW), dtype=gy.dtype) if need_x else None

        def ws(rows, cols, name="cols"):
            return _workspace((rows, cols), gy.dtype, gy, name)

        def run(lo, hi):
            x_n, gy_n, n = x[lo:hi], gy[lo:hi], hi - lo
            g2 = channels_first_2d(gy_n)  # (C_out, n*OH*OW)
            gw = None
            if need_w:  # (the padded-width columns would need dy on the padded width too: no gain)
                cols = channels_first_2d(x_n) if pointwise else im2col(x_n, kh, kw, s, p, out=ws(C * kh * kw, n * S))
                gw = g2 @ cols.T
            if need_x:
                gx_n = gx2[:, lo * HW:hi * HW]
                if pointwise:
                    xp.matmul(w2.T, g2, out=gx_n)
                elif flipped:
                    cols = im2col_wide(gy_n, kh, kw, q, out=ws(C_out * kh * kw, n * H * _wide_width(OW, kw, q)))
                    _drop_wrapped(xp.matmul(w_flip, cols, out=ws(C, cols.shape[1], "out")), gx_n, W)
                else:
                    dcols = xp.matmul(w2.T, g2, out=ws(C * kh * kw, n * S))
                    gx_n.reshape(C, n, H, W)[...] = col2im(dcols, x_n.shape, kh, kw, s, p).swapaxes(0, 1)
            return gw

        per_image = max(C * kh * kw * S, C_out * kh * kw * H * _wide_width(OW, kw, q) if flipped else 0)
        parts = backend.map_chunks(N, self._chunk(x, per_image), run)
        gw = gb = None
        if need_w:
            gw = xp.zeros(w2.shape, dtype=gy.dtype)
            for part in parts:  # in chunk order: the same sum on any number of threads
                gw += part
            gw = gw.reshape(w.shape)
        if self.has_bias and self.needs_input_grad[2]:
            gb = channels_first_2d(gy).sum(axis=1)
        gx = from_channels_first_2d(gx2, x.shape) if need_x else None
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in every framework) of NCHW ``x`` with ``w``.

    x: (N, C_in, H, W), w: (C_out, C_in, kh, kw), b: (C_out,) or None -> (N, C_out, OH, OW).
    """
    stride, padding = _square(stride, "conv2d stride"), _square(padding, "conv2d padding")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be 4-D (C_out, C_in, kh, kw), got shape {w.shape}")
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} "
                         f"(x shape {x.shape}, w shape {w.shape})")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: b must have shape ({w.shape[0]},), got {b.shape}")
    _check_geometry("conv2d", x.shape, w.shape[2], w.shape[3], stride, padding)
    return Conv2d(stride, padding)(x, w) if b is None else Conv2d(stride, padding)(x, w, b)


# -- pooling ---------------------------------------------------------------------------------------

def _pool_geometry(where, x, kernel_size, stride, padding):
    k = _square(kernel_size, f"{where} kernel_size")
    s = k if stride is None else _square(stride, f"{where} stride")
    p = _square(padding, f"{where} padding")
    if 2 * p > k:
        raise ValueError(f"{where}: padding {p} must be at most half the kernel size {k}")
    OH, OW = _check_geometry(where, x.shape, k, k, s, p)
    return k, k, s, p, OH, OW


def _windows(padded, i, j, s, OH, OW):
    """The (N, C, OH, OW) view of the padded input seen by kernel offset (i, j)."""
    return padded[:, :, i:i + s * OH:s, j:j + s * OW:s]


class MaxPool2d(Function):
    """y[n, c, p, q] = max over the window of xpad (padding counts as -inf).

    Ties: the gradient goes to the first maximum in the window in row-major (i, j) order, once.
    """

    def __init__(self, kh, kw, s, p, OH, OW):
        self.geom = kh, kw, s, p, OH, OW

    def forward(self, x):
        xp = backend.get_array_module(x)
        kh, kw, s, p, OH, OW = self.geom
        N, C, H, W = x.shape
        padded = xp.full((N, C, H + 2 * p, W + 2 * p), -xp.inf, dtype=x.dtype) if p else x
        if p:
            padded[:, :, p:p + H, p:p + W] = x
        y = _windows(padded, 0, 0, s, OH, OW).copy()
        arg = xp.zeros(y.shape, dtype=np.int8 if kh * kw < 128 else np.int32)
        for k in range(1, kh * kw):
            cand = _windows(padded, k // kw, k % kw, s, OH, OW)
            better = cand > y  # strict: an equal later value does not take the gradient
            xp.copyto(y, cand, where=better)
            arg[better] = k
        self.arg, self.in_shape = arg, x.shape
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        kh, kw, s, p, OH, OW = self.geom
        N, C, H, W = self.in_shape
        g = xp.zeros((N, C, H + 2 * p, W + 2 * p), dtype=gy.dtype)
        for k in range(kh * kw):
            _windows(g, k // kw, k % kw, s, OH, OW)[...] += xp.where(self.arg == k, gy, 0)
        return g[:, :, p:p + H, p:p + W]


class AvgPool2d(Function):
    """y = mean of the window of xpad, padding counted as zeros (PyTorch's count_include_pad)."""

    def __init__(self, kh, kw, s, p, OH, OW):
        self.geom = kh, kw, s, p, OH, OW

    def forward(self, x):
        xp = backend.get_array_module(x)
        kh, kw, s, p, OH, OW = self.geom
        N, C, H, W = x.shape
        padded = x
        if p:
            padded = xp.zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
            padded[:, :, p:p + H, p:p + W] = x
        y = xp.zeros((N, C, OH, OW), dtype=x.dtype)
        for k in range(kh * kw):
            y += _windows(padded, k // kw, k % kw, s, OH, OW)
        self.in_shape = x.shape
        return y / (kh * kw)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        kh, kw, s, p, OH, OW = self.geom
        N, C, H, W = self.in_shape
        g = xp.zeros((N, C, H + 2 * p, W + 2 * p), dtype=gy.dtype)
        share = gy / (kh * kw)
        for k in range(kh * kw):
            _windows(g, k // kw, k % kw, s, OH, OW)[...] += share
        return g[:, :, p:p + H, p:p + W]


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
    """Max over kernel_size windows (stride defaults to kernel_size); (N, C, H, W) -> (N, C, OH, OW)."""
    return MaxPool2d(*_pool_geometry("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows, zero padding included in the count."""
    return AvgPool2d(*_pool_geometry("avg_pool2d", x, kernel_size, stride, padding))(x)


def global_avg_pool2d(x):
    """Mean over all spatial positions: (N, C, H, W) -> (N, C)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
    return GlobalAvgPool2d()(x)
