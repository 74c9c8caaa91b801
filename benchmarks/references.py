"""The NumPy implementations minires is measured against, written here from the math.

Three references, slowest first:

- ``conv2d_naive``: the definition of a convolution, a Python loop over every output element
  (n, o, p, q), each the sum over one (C, kh, kw) window times one filter. Too slow for a full
  batch; the harness times it on a few images and scales the time to the batch (stated there).
- ``classic_conv2d``: the im2col convolution of most from-scratch courses. Columns in the *row*
  layout (N*OH*OW, C*kh*kw), gathered with a loop over the kh*kw kernel offsets into an
  (N, C, kh, kw, OH, OW) array that is then transposed into rows (one more full copy); the
  output comes back as (N*OH*OW, C_out) and is viewed as NCHW. The backward keeps the forward's
  columns and scatters with ``col2im_rows``.
- ``dezero_batch_norm``: per-channel batch norm composed of elementary array ops on rows
  (N*H*W, C), as an autograd framework built from small ``Function`` objects would run it: each
  op allocates its output, and the backward walks the ops in reverse, one node at a time.

Every function takes NumPy or CuPy arrays (``xp`` is chosen per array), except the naive loop,
which is CPU only. The harness checks each one against minires before timing it.
"""
import numpy as np

from minires.backend import get_array_module


def _out_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def _pad(x, padding):
    """Zero-pad the two spatial axes of an (N, C, H, W) array."""
    if padding == 0:
        return x
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


# -- naive: one Python iteration per output element ------------------------------------------------

def conv2d_naive(x, w, stride=1, padding=0):
    """y[n, o, p, q] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, s*p + i, s*q + j], literally."""
    N, C, H, W = x.shape
    C_out, _, kh, kw = w.shape
    OH, OW = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    xpad = _pad(x, padding)
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            for p in range(OH):
                for q in range(OW):
                    window = xpad[n, :, p * stride:p * stride + kh, q * stride:q * stride + kw]
                    y[n, o, p, q] = np.sum(window * w[o])
    return y


def conv2d_naive_backward(x, w, gy, stride=1, padding=0):
    """(dx, dw) by the chain rule on the same loop: each y[n, o, p, q] = <window, w[o]> sends
    gy[n, o, p, q] * w[o] back to its window and gy[n, o, p, q] * window to w[o]."""
    N, C, H, W = x.shape
    C_out, _, kh, kw = w.shape
    OH, OW = gy.shape[2:]
    xpad = _pad(x, padding)
    gxpad = np.zeros_like(xpad)
    gw = np.zeros_like(w)
    for n in range(N):
        for o in range(C_out):
            for p in range(OH):
                for q in range(OW):
                    rows = slice(p * stride, p * stride + kh)
                    cols = slice(q * stride, q * stride + kw)
                    g = gy[n, o, p, q]
                    gw[o] += g * xpad[n, :, rows, cols]
                    gxpad[n, :, rows, cols] += g * w[o]
    return gxpad[:, :, padding:padding + H, padding:padding + W], gw


# -- classic im2col: rows (N*OH*OW, C*kh*kw), a loop over kernel offsets ------------------------

def im2col_rows(x, kh, kw, stride=1, padding=0):
    """(N, C, H, W) -> (N*OH*OW, C*kh*kw): row (n, p, q) holds the window of output pixel
    (n, p, q)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    xpad = _pad(x, padding)
    col = xp.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # Kernel offset (i, j) sees the input shifted by (i, j) and sampled every stride.
            col[:, :, i, j] = xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    # (n, c, i, j, p, q) -> (n, p, q, c, i, j): a transposed copy of the whole column array.
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * kh * kw)


def col2im_rows(col, x_shape, kh, kw, stride=1, padding=0):
    """Adjoint of :func:`im2col_rows`: add each row entry back to the pixel it was read from."""
    xp = get_array_module(col)
    N, C, H, W = x_shape
    OH, OW = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    col = col.reshape(N, OH, OW, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xpad = xp.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += col[:, :, i, j]
    return xpad[:, :, padding:padding + H, padding:padding + W]


def classic_conv2d(x, w, stride=1, padding=0):
    """Forward: y = rows @ W^T, viewed as (N, C_out, OH, OW). Returns (y, cache for backward)."""
    N, C, H, W = x.shape
    C_out, _, kh, kw = w.shape
    OH, OW = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    col = im2col_rows(x, kh, kw, stride, padding)
    w2 = w.reshape(C_out, -1)
    y = col @ w2.T  # (N*OH*OW, C_out)
    return y.reshape(N, OH, OW, C_out).transpose(0, 3, 1, 2), (x.shape, w, col, stride, padding)


def classic_conv2d_backward(gy, cache):
    """(dx, dw) from the upstream gradient gy (N, C_out, OH, OW) and the forward's cache."""
    x_shape, w, col, stride, padding = cache
    C_out, _, kh, kw = w.shape
    g = gy.transpose(0, 2, 3, 1).reshape(-1, C_out)  # (N*OH*OW, C_out): a copy
    gw = (g.T @ col).reshape(w.shape)
    gcol = g @ w.reshape(C_out, -1)
    return col2im_rows(gcol, x_shape, kh, kw, stride, padding), gw


# -- DeZero-style batch norm: elementary ops on rows (N*H*W, C) ---------------------------------

def dezero_batch_norm(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    """Training-mode per-channel batch norm; returns (y, cache). Updates the running statistics.

    One line per elementary op, each allocating its own (M, C) or (C,) result, as a graph of
    small functions would.
    """
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)  # (M, C), M = N*H*W: a copy
    M = rows.shape[0]
    xp = get_array_module(x)
    mu = rows.mean(axis=0)
    xc = rows - mu
    sq = xc ** 2
    var = sq.mean(axis=0)
    std = xp.sqrt(var + eps)
    xn = xc / std
    scaled = xn * gamma
    out = scaled + beta
    running_mean *= 1 - momentum
    running_mean += momentum * mu
    running_var *= 1 - momentum
    running_var += momentum * var * (M / (M - 1))  # unbiased, as PyTorch keeps it
    y = out.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return y, (x.shape, gamma, xc, std, xn)


def dezero_batch_norm_backward(gy, cache):
    """(dx, dgamma, dbeta): the forward's ops visited in reverse, each applying its local rule."""
    (N, C, H, W), gamma, xc, std, xn = cache
    xp = get_array_module(gy)
    g = gy.transpose(0, 2, 3, 1).reshape(-1, C)  # (M, C)
    M = g.shape[0]
    # out = scaled + beta (beta broadcast over rows: its gradient sums them)
    gbeta = g.sum(axis=0)
    # scaled = xn * gamma
    ggamma = (g * xn).sum(axis=0)
    gxn = g * gamma
    # xn = xc / std: a gradient to each of the two inputs
    gxc = gxn / std
    gstd = -((gxn * xc) / (std * std)).sum(axis=0)
    # std = sqrt(var + eps)
    gvar = gstd / (2 * std)
    # var = mean(sq) over rows: every row gets gvar / M
    gsq = xp.broadcast_to(gvar / M, xc.shape)
    # sq = xc ** 2: a second path into xc
    gxc = gxc + 2 * xc * gsq
    # xc = rows - mu, mu = mean(rows): rows get gxc directly and -sum(gxc) / M through mu
    gmu = -gxc.sum(axis=0)
    grows = gxc + gmu / M
    gx = grows.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return gx, ggamma, gbeta
