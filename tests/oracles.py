"""Naive reference implementations that the op tests compare minires against.

Each function is the textbook definition written as plainly as possible: explicit loops over
output positions, float64 throughout, NumPy arrays in and out. Nothing here imports minires, so a
mistake in minires cannot hide inside its own reference. They are slow; use them on small shapes.

Conventions (the ones minires documents): NCHW arrays; output size floor((H + 2p - k) / s) + 1;
convolution is cross-correlation; max pooling pads with -inf and, on ties, credits the first
maximum of a window in row-major order; average pooling counts zero padding; batch norm
normalises with the biased variance and keeps the unbiased one in its running estimate.
"""
import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def out_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def pad_hw(x, padding, value=0.0):
    """Pad the two spatial axes of an (N, C, H, W) array on both sides."""
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    return np.pad(x, pad, constant_values=value)


def channel_major(a):
    """The same NCHW values, laid out in memory as a contiguous (C, N, H, W) array (a view)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# -- im2col ----------------------------------------------------------------------------------------

def im2col(x, kh, kw, stride, padding):
    """cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, stride*p + i, stride*q + j]."""
    x = _f64(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    xpad = pad_hw(x, padding)
    cols = np.zeros((C * kh * kw, N * OH * OW))
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                for n in range(N):
                    for p in range(OH):
                        for q in range(OW):
                            row, col = (c * kh + i) * kw + j, (n * OH + p) * OW + q
                            cols[row, col] = xpad[n, c, stride * p + i, stride * q + j]
    return cols


# -- convolution -----------------------------------------------------------------------------------

def conv2d(x, w, b=None, stride=1, padding=0):
    """y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, stride*p + i, stride*q + j]."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    xpad = pad_hw(x, padding)
    y = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for p in range(OH):
                for q in range(OW):
                    patch = xpad[n, :, stride * p:stride * p + kh, stride * q:stride * q + kw]
                    y[n, o, p, q] = np.sum(patch * w[o]) + (b[o] if b is not None else 0.0)
    return y


def conv2d_backward(x, w, gy, stride=1, padding=0):
    """(dx, dw, db) of L = sum(gy * conv2d(x, w, b)), by walking the same loops as the forward."""
    x, w, gy = _f64(x), _f64(w), _f64(gy)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xpad = pad_hw(x, padding)
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    for n in range(N):
        for o in range(O):
            for p in range(gy.shape[2]):
                for q in range(gy.shape[3]):
                    rows = slice(stride * p, stride * p + kh)
                    cols = slice(stride * q, stride * q + kw)
                    dw[o] += gy[n, o, p, q] * xpad[n, :, rows, cols]
                    dxpad[n, :, rows, cols] += gy[n, o, p, q] * w[o]
    dx = dxpad[:, :, padding:padding + H, padding:padding + W]
    return dx, dw, gy.sum(axis=(0, 2, 3))


# -- pooling ---------------------------------------------------------------------------------------

def max_pool2d(x, k, stride, padding):
    x = _f64(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    xpad = pad_hw(x, padding, -np.inf)
    y = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for p in range(OH):
                for q in range(OW):
                    window = xpad[n, c, stride * p:stride * p + k, stride * q:stride * q + k]
                    y[n, c, p, q] = window.max()
    return y


def max_pool2d_backward(x, gy, k, stride, padding):
    """dx: each window's upstream gradient goes to the first maximum of the window, row-major."""
    x, gy = _f64(x), _f64(gy)
    N, C, H, W = x.shape
    xpad = pad_hw(x, padding, -np.inf)
    dxpad = np.zeros_like(xpad)
    for n in range(N):
        for c in range(C):
            for p in range(gy.shape[2]):
                for q in range(gy.shape[3]):
                    window = xpad[n, c, stride * p:stride * p + k, stride * q:stride * q + k]
                    i, j = divmod(int(np.argmax(window)), k)  # argmax returns the first maximum
                    dxpad[n, c, stride * p + i, stride * q + j] += gy[n, c, p, q]
    return dxpad[:, :, padding:padding + H, padding:padding + W]


def avg_pool2d(x, k, stride, padding):
    """Mean of each k x k window of the zero-padded input (padding counts in the divisor)."""
    x = _f64(x)
    N, C, H, W = x.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    xpad = pad_hw(x, padding)
    y = np.zeros((N, C, OH, OW))
    for p in range(OH):
        for q in range(OW):
            window = xpad[:, :, stride * p:stride * p + k, stride * q:stride * q + k]
            y[:, :, p, q] = window.sum(axis=(2, 3)) / (k * k)
    return y


def avg_pool2d_backward(x, gy, k, stride, padding):
    x, gy = _f64(x), _f64(gy)
    N, C, H, W = x.shape
    dxpad = np.zeros_like(pad_hw(x, padding))
    for p in range(gy.shape[2]):
        for q in range(gy.shape[3]):
            window = dxpad[:, :, stride * p:stride * p + k, stride * q:stride * q + k]
            window += gy[:, :, p, q, None, None] / (k * k)
    return dxpad[:, :, padding:padding + H, padding:padding + W]


# -- batch norm ------------------------------------------------------------------------------------

def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Per-channel batch norm of (N, C) or (N, C, H, W) x, channel by channel.

    Returns (y, new_running_mean, new_running_var); the running statistics are returned, not
    updated in place, and are None when none were given.
    """
    x, gamma, beta = _f64(x), _f64(gamma), _f64(beta)
    rm, rv = _f64(running_mean), _f64(running_var)
    rm, rv = (None if rm is None else rm.copy()), (None if rv is None else rv.copy())
    C = x.shape[1]
    y = np.empty_like(x)
    for c in range(C):
        values = x[:, c].ravel()
        M = values.size
        if training:
            mean = values.sum() / M
            var = ((values - mean) ** 2).sum() / M
            if rm is not None:
                rm[c] = (1 - momentum) * rm[c] + momentum * mean
                rv[c] = (1 - momentum) * rv[c] + momentum * var * M / (M - 1)
        else:
            mean, var = rm[c], rv[c]
        y[:, c] = gamma[c] * (x[:, c] - mean) / np.sqrt(var + eps) + beta[c]
    return y, rm, rv


# -- linear, loss ----------------------------------------------------------------------------------

def linear(x, w, b=None):
    y = _f64(x) @ _f64(w).T
    return y if b is None else y + _f64(b)


def log_softmax(z):
    """z - log sum_k exp(z_k), the log-sum-exp by NumPy's pairwise logaddexp (no overflow)."""
    z = _f64(z)
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def softmax(z):
    return np.exp(log_softmax(z))


def cross_entropy(z, labels):
    """Mean over the batch of -log softmax(z_n)[labels_n]."""
    logp = log_softmax(z)
    return -np.mean([logp[n, t] for n, t in enumerate(np.asarray(labels))])


def one_hot(labels, num_classes):
    out = np.zeros((len(labels), num_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


# -- shortcut --------------------------------------------------------------------------------------

def pad_channels(x, out_channels, stride):
    """Option-A shortcut: y[:, :C] = x[:, :, ::stride, ::stride], y[:, C:] = 0, element by
    element."""
    x = _f64(x)
    N, C, H, W = x.shape
    OH, OW = -(-H // stride), -(-W // stride)
    y = np.zeros((N, out_channels, OH, OW))
    for c in range(C):
        for p in range(OH):
            for q in range(OW):
                y[:, c, p, q] = x[:, c, stride * p, stride * q]
    return y


# -- numerical derivative of an oracle -------------------------------------------------------------

def numeric_grad(f, arrays, v, eps=1e-6):
    """Central differences of L = sum(v * f(*arrays)) w.r.t. each array, in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            plus = np.sum(v * f(*arrays))
            a[idx] = orig - eps
            minus = np.sum(v * f(*arrays))
            a[idx] = orig
            g[idx] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads
