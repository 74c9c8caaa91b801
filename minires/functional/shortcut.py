"""The paper's option-A shortcut: identity where shapes agree, zero padding where they grow.

When a stage halves the feature map and doubles the channels, x (N, C, H, W) cannot be added
to F(x) (N, C', H/s, W/s). Option A (sec. 3.3) keeps the shortcut parameter-free: take every
s-th pixel, and fill the C' - C new channels with zeros:

    y[:, :C] = x[:, :, ::s, ::s],   y[:, C:] = 0

Its gradient routes dy[:, :C] back to the sampled pixels; the padded channels get nothing.
"""

from .. import backend
from ..autograd import Function
from .layout import zeros_channel_major


class PadChannels(Function):
    def __init__(self, out_channels, stride):
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        s = self.stride
        sub = x[:, :, ::s, ::s]
        self.in_shape = x.shape
        y = zeros_channel_major((x.shape[0], self.out_channels) + sub.shape[2:], x.dtype, x)
        y[:, : x.shape[1]] = sub
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        s, C = self.stride, self.in_shape[1]
        g = xp.zeros(self.in_shape, dtype=gy.dtype)
        g[:, :, ::s, ::s] = gy[:, :C]
        return g


def pad_channels(x, out_channels, stride):
    """Option-A shortcut: (N, C, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride))."""
    if x.ndim != 4:
        raise ValueError(f"pad_channels: x must be 4-D (N, C, H, W), got shape {x.shape}")
    if out_channels < x.shape[1]:
        raise ValueError(
            f"pad_channels: out_channels ({out_channels}) must be >= "
            f"the input's channels ({x.shape[1]})"
        )
    if stride < 1:
        raise ValueError(f"pad_channels: stride must be >= 1, got {stride}")
    return PadChannels(int(out_channels), int(stride))(x)
