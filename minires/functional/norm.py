"""Batch normalisation (Ioffe & Szegedy, 2015), per channel, as ResNet uses it after every conv.

For each channel c, over the M = N*H*W values x_m of that channel in the batch:

    mu = mean(x),  var = mean((x - mu)^2)            (biased: this normalises the batch)
    xhat = (x - mu) / sqrt(var + eps),  y = gamma * xhat + beta

Backward, in the compact closed form (g = dL/dy, sums over the M values of the channel):

    dbeta = sum(g),  dgamma = sum(g * xhat)
    dx = gamma / sqrt(var + eps) * (g - dbeta / M - xhat * dgamma / M)

The last two terms are what batch statistics add: every x moves mu and var, so every output
of the channel depends on every input. Drop either and the gradient is wrong, yet sum(y) stays
N*sum(beta) for any x, which is why gradcheck contracts with a random upstream gradient.

Running statistics (used in eval mode) follow PyTorch: r = (1 - momentum) * r + momentum * stat,
with the *unbiased* variance var * M / (M - 1).
"""
from .. import backend
from ..autograd import Function, Tensor
from .layout import _BLOCK_BYTES, channels_first_2d, from_channels_first_2d


# On the CPU the channels are processed in blocks of at most _BLOCK_BYTES per array (the size
# layout.map_rows uses), spread over the threads: each block's rows are still in cache for the
# next of the few passes over them.


class BatchNorm(Function):
    """Inputs x (N, C, ...), gamma (C,), beta (C,). Works on the (C, M) channel-major matrix.

    Channels are independent, so both passes run over blocks of channel rows (``map_chunks``);
    every channel's numbers are the same whatever the blocks.
    """

    def __init__(self, training, running_mean, running_var, momentum, eps):
        self.training, self.momentum, self.eps = training, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var

    @staticmethod
    def _rows_per_block(m):
        if backend.is_gpu_array(m):
            return m.shape[0]
        return _BLOCK_BYTES // max(1, m.shape[1] * m.dtype.itemsize)

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        m = channels_first_2d(x)  # (C, M)
        M = m.shape[1]
        y = xp.empty(m.shape, dtype=m.dtype)

        def run(lo, hi):
            rows, out = m[lo:hi], y[lo:hi]
            if self.training:
                mu = rows.mean(axis=1)
                xp.subtract(rows, mu[:, None], out=out)
                var = xp.einsum("cm,cm->c", out, out) / M
                invstd = 1 / xp.sqrt(var + self.eps)
                # y = gamma * invstd * (x - mu) + beta, computed in the buffer of (x - mu).
                out *= (gamma[lo:hi] * invstd)[:, None]
                out += beta[lo:hi, None]
            else:  # constants per channel: y = scale * x + (beta - scale * mu), two passes
                mu, var = self.running_mean[lo:hi], self.running_var[lo:hi]
                invstd = 1 / xp.sqrt(var + self.eps)
                scale = gamma[lo:hi] * invstd
                xp.multiply(rows, scale[:, None], out=out)
                out += (beta[lo:hi] - scale * mu)[:, None]
            return mu, var, invstd

        mu, var, invstd = (xp.concatenate(s) for s in zip(*backend.map_chunks(len(m), self._rows_per_block(m), run)))
        if self.training and self.running_mean is not None:
            mom = self.momentum
            self.running_mean *= 1 - mom
            self.running_mean += mom * mu
            self.running_var *= 1 - mom
            self.running_var += (mom * M / (M - 1)) * var
        self.x, self.mu, self.invstd, self.gamma = x, mu, invstd, gamma
        return from_channels_first_2d(y, x.shape)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g, m = channels_first_2d(gy), channels_first_2d(self.x)
        M = g.shape[1]
        dx = xp.empty(g.shape, dtype=g.dtype)

        def run(lo, hi):
            g_c, out = g[lo:hi], dx[lo:hi]
            invstd = self.invstd[lo:hi, None]
            xhat = xp.subtract(m[lo:hi], self.mu[lo:hi, None], out=out)
            xhat *= invstd  # recomputed rather than stored: one activation less per layer
            dbeta = g_c.sum(axis=1)
            dgamma = xp.einsum("cm,cm->c", g_c, xhat)
            scale = self.gamma[lo:hi, None] * invstd
            if self.training:  # dx = scale * (g - dbeta/M - xhat * dgamma/M), in the buffer of xhat
                xhat *= (dgamma / M)[:, None]
                xp.subtract(g_c, xhat, out=out)
                out -= (dbeta / M)[:, None]
                out *= scale
            else:  # running statistics are constants: y is affine in x
                xp.multiply(g_c, scale, out=out)
            return dgamma, dbeta

        dgamma, dbeta = (xp.concatenate(s) for s in zip(*backend.map_chunks(len(g), self._rows_per_block(g), run)))
        dx = from_channels_first_2d(dx, gy.shape) if self.needs_input_grad[0] else None
        return dx, dgamma, dbeta


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Per-channel batch norm of x (N, C, H, W) or (N, C).

    weight (gamma) and bias (beta) are (C,) tensors or None (then 1 and 0). running_mean and
    running_var are (C,) arrays updated in place when ``training``; in eval mode they normalise x.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: x must be (N, C) or (N, C, H, W), got shape {x.shape}")
    C = x.shape[1]
    xp = backend.get_array_module(x.data)
    weight = weight if weight is not None else Tensor._wrap(xp.ones(C, dtype=x.dtype))
    bias = bias if bias is not None else Tensor._wrap(xp.zeros(C, dtype=x.dtype))
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for {C} channels, got {tuple(t.shape)}")
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and (t.dtype != x.dtype or backend.device_of(t) != x.device):
            raise TypeError(f"batch_norm: {name} is {t.dtype} on {backend.device_of(t)}, "
                            f"expected {x.dtype} on {x.device} like x")
    if training:
        M = x.size // C
        if M < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got x of shape {x.shape}")
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
    if not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum}")
    return BatchNorm(training, running_mean, running_var, momentum, eps)(x, weight, bias)
