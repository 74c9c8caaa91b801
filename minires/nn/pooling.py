"""Pooling layers: ``MaxPool2d`` (ImageNet stem), ``AvgPool2d``, and the global average pool before
``fc``."""

from .. import functional as F
from .module import Module


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class AdaptiveAvgPool2d(Module):
    """PyTorch's name for the global pool ResNet uses; only output_size (1, 1) is supported.

    (N, C, H, W) -> (N, C, 1, 1), as in torchvision, followed by a flatten.
    """

    def __init__(self, output_size=(1, 1)):
        super().__init__()
        if output_size not in (1, (1, 1), [1, 1]):
            raise ValueError(
                f"AdaptiveAvgPool2d: only output_size (1, 1) is supported, got {output_size!r}"
            )
        self.output_size = (1, 1)

    def forward(self, x):
        y = F.global_avg_pool2d(x)
        return F.reshape(y, y.shape + (1, 1))

    def extra_repr(self):
        return f"output_size={self.output_size}"
