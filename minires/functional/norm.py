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
from ..switch import implementation
from .layout import channels_first_2d, from_channels_first_2d


class BatchNorm(Function):
    """Inputs x (N, C, ...), gamma (C,), beta (C,); the formulas above on the (C, M) matrix of x.

    (The fast twin, ``minires/fast/blocked_norm.py``, computes the same function over blocks of
    channels on several threads.)
    """

    def __init__(self, training, running_mean, running_var, momentum, eps):
        self.training, self.momentum, self.eps = training, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        m = channels_first_2d(x)  # (C, M): one row per channel
        M = m.shape[1]
        if self.training:
            mu, var = m.mean(axis=1), m.var(axis=1)
            if self.running_mean is not None:
                self.running_mean[...] = (
                    1 - self.momentum
                ) * self.running_mean + self.momentum * mu
                self.running_var[...] = (
                    1 - self.momentum
                ) * self.running_var + self.momentum * var * M / (M - 1)
        else:
            mu, var = self.running_mean, self.running_var
        self.invstd = 1 / xp.sqrt(var + self.eps)
        self.xhat = (m - mu[:, None]) * self.invstd[:, None]
        self.gamma = gamma
        y = gamma[:, None] * self.xhat + beta[:, None]
        return from_channels_first_2d(y, x.shape)

    def backward(self, gy):
        g = channels_first_2d(gy)  # (C, M)
        M = g.shape[1]
        dbeta = g.sum(axis=1)
        dgamma = (g * self.xhat).sum(axis=1)
        scale = (self.gamma * self.invstd)[:, None]
        if self.training:
            dx = scale * (g - dbeta[:, None] / M - self.xhat * dgamma[:, None] / M)
        else:  # the running statistics are constants: y is affine in x
            dx = scale * g
        return from_channels_first_2d(dx, gy.shape), dgamma, dbeta


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Per-channel batch norm of x (N, C, H, W) or (N, C).

    weight (gamma) and bias (beta) are (C,) tensors or None (then 1 and 0). running_mean and
    running_var are (C,) arrays updated in place when ``training``; in eval mode they normalise x.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: x must be (N, C) or (N, C, H, W), got shape {x.shape}")
    C = x.shape[1]
    xp = backend.get_array_module(x.data)
    weight = weight if weight is not None else Tensor(xp.ones(C, dtype=x.dtype))
    bias = bias if bias is not None else Tensor(xp.zeros(C, dtype=x.dtype))
    for name, t in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(
                f"batch_norm: {name} must have shape ({C},) for {C} channels, got {tuple(t.shape)}"
            )
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and (t.dtype != x.dtype or backend.device_of(t) != x.device):
            raise TypeError(
                f"batch_norm: {name} is {t.dtype} on {backend.device_of(t)}, "
                f"expected {x.dtype} on {x.device} like x"
            )
    if training:
        M = x.size // C
        if M < 2:
            raise ValueError(
                "batch_norm: training needs more than one value per channel, "
                f"got x of shape {x.shape}"
            )
    elif running_mean is None or running_var is None:
        raise ValueError(
            "batch_norm: eval mode (training=False) needs running_mean and running_var"
        )
    if not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum}")
    op = implementation(BatchNorm)  # the fast twin unless in reference mode (minires/switch.py)
    return op(training, running_mean, running_var, momentum, eps)(x, weight, bias)
