"""``Flatten``: (N, C, H, W) -> (N, C*H*W), between the pooled features and the classifier."""

from .. import functional as F
from .module import Module


class Flatten(Module):
    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)
