"""``PadChannels``: the option-A shortcut as a layer (no parameters); see functional/shortcut.py."""

from .. import functional as F
from .module import Module


class PadChannels(Module):
    """x -> x[:, :, ::stride, ::stride] followed by zero channels up to out_channels."""

    def __init__(self, out_channels, stride):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        return F.pad_channels(x, self.out_channels, self.stride)

    def extra_repr(self):
        return f"out_channels={self.out_channels}, stride={self.stride}"
