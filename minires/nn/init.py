"""Weight initialisation, in place, drawing from minires's seeded generator.

He et al. (2015, "Delving deep into rectifiers"), used by the ResNet paper:
    w ~ N(0, 2 / fan),  fan = fan_out = C_out*kh*kw ("fan_out", as torchvision)
                           or fan_in = C_in*kh*kw.
It keeps the variance of activations (fan_in) or of gradients (fan_out) constant through ReLU
layers. Glorot & Bengio (2010), "Xavier": w ~ N(0, 2 / (fan_in + fan_out)), made for tanh-like
units; with ReLU it halves the signal at every layer, which is what makes deep plain nets'
gradients vanish.
"""

import math

import numpy as np

from .. import backend


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"init needs a weight of at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    xp = backend.get_array_module(tensor.data)
    tensor.data[...] = xp.asarray(values.astype(tensor.dtype, copy=False))
    return tensor


def normal_(tensor, mean=0.0, std=1.0, rng=None):
    # Drawn on the CPU in the tensor's own precision: the same numbers on every device.
    rng = rng or backend.default_rng()
    return _fill(tensor, rng.standard_normal(tensor.shape, dtype=tensor.dtype) * std + mean)


def uniform_(tensor, low=-1.0, high=1.0, rng=None):
    rng = rng or backend.default_rng()
    return _fill(tensor, rng.random(tensor.shape, dtype=tensor.dtype) * (high - low) + low)


def kaiming_normal_(tensor, mode="fan_out", rng=None):
    """He init for a layer followed by ReLU: N(0, 2 / fan) with fan = fan_in or fan_out."""
    fan_in, fan_out = _fans(tensor.shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_normal_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return normal_(tensor, 0.0, math.sqrt(2.0 / fan), rng)


def xavier_normal_(tensor, gain=1.0, rng=None):
    """Glorot init: N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)
