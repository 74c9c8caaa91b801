"""``Conv2d``: a convolution layer owning its weight (and optional bias)."""

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """y = conv2d(x, weight, bias, stride, padding); weight (out_channels, in_channels, k, k).

    Weights start from He normal (fan_out), the paper's initialisation; a bias, when asked for,
    starts at zero. ResNet's convolutions have no bias: the batch norm after them supplies it.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        bias=True,
        dtype=np.float32,
    ):
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
        ):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = Parameter(
            np.empty((out_channels, in_channels, kernel_size, kernel_size), dtype=dtype)
        )
        init.kaiming_normal_(self.weight, mode="fan_out")
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        s = (
            f"{self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}"
        )
        s += f", padding={self.padding}" if self.padding else ""
        return s + ("" if self.bias is not None else ", bias=False")
