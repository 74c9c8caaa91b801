"""Batch norm over blocks of channels: ``BlockedBatchNorm``, the fast twin of
``functional.norm.BatchNorm``.

Channels are independent, so both passes run over blocks of channel rows of the (C, M)
channel-major matrix (``row_blocks.rows_per_block``, spread over the threads with ``map_chunks``):
each block's rows are still in cache for the next of the few passes over them, and the
temporaries are computed in the output's buffer. Every channel's numbers are the same whatever
the blocks. Eval mode is one multiply and one add per value (scale and shift per channel).
In training, read-only running statistics are refused by name before any work.

The per-channel sums of products (the variance, dgamma) are summed pairwise, as NumPy's ``sum``
over a contiguous axis does and as the reference's ``var`` and ``sum`` do. A running sum
(``einsum``) is a little cheaper, but in float32 its rounding error grows with M (131,072 values
per channel for a CIFAR batch of 128 at 32x32) where a pairwise sum's grows with log M;
``python -m benchmarks bn`` shows both the price and the error.
"""
from .. import backend
from ..functional.layout import channels_first_2d, from_channels_first_2d
from ..functional.norm import BatchNorm
from .row_blocks import rows_per_block
from .threads import map_chunks


def row_dots(a, b):
    """sum_m a[c, m] * b[c, m] for each row c, summed pairwise (ndarray.sum along a row)."""
    return (a * b).sum(axis=1)


def check_writeable(running_mean, running_var):
    """Training updates the running statistics in place: refuse read-only ones before any work,
    by name (the reference fails on NumPy's "assignment destination is read-only")."""
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if not getattr(getattr(a, "flags", None), "writeable", True):  # CuPy's: always writeable
            raise ValueError(f"batch_norm: {name} is read-only, and training updates it in "
                             "place: pass a writeable copy")


class BlockedBatchNorm(BatchNorm):
    """The reference ``BatchNorm`` over blocks of channel rows: same arguments, same function."""

    row_dots = staticmethod(row_dots)

    def forward(self, x, gamma, beta):
        if self.training:
            check_writeable(self.running_mean, self.running_var)
        xp = backend.get_array_module(x)
        m = channels_first_2d(x)  # (C, M)
        M = m.shape[1]
        y = xp.empty(m.shape, dtype=m.dtype)

        def run(lo, hi):
            rows, out = m[lo:hi], y[lo:hi]
            if self.training:
                mu = rows.mean(axis=1)
                xp.subtract(rows, mu[:, None], out=out)
                var = self.row_dots(out, out) / M
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

        blocks = map_chunks(len(m), rows_per_block(m), run, like=m)
        mu, var, invstd = (xp.concatenate(s) for s in zip(*blocks))
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
            dgamma = self.row_dots(g_c, xhat)
            scale = self.gamma[lo:hi, None] * invstd
            if self.training:  # dx = scale * (g - dbeta/M - xhat * dgamma/M), in the buffer of xhat
                xhat *= (dgamma / M)[:, None]
                xp.subtract(g_c, xhat, out=out)
                out -= (dbeta / M)[:, None]
                out *= scale
            else:  # running statistics are constants: y is affine in x
                xp.multiply(g_c, scale, out=out)
            return dgamma, dbeta

        blocks = map_chunks(len(g), rows_per_block(g), run, like=g)
        dgamma, dbeta = (xp.concatenate(s) for s in zip(*blocks))
        dx = from_channels_first_2d(dx, gy.shape) if self.needs_input_grad[0] else None
        return dx, dgamma, dbeta

