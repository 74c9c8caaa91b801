"""``Linear``: y = x W^T + b, the classifier at the top of a ResNet."""

import math

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter


class Linear(Module):
    """weight (out_features, in_features), bias (out_features,); both start uniform in
    +-1/sqrt(in_features), PyTorch's default for this layer."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = init.uniform_(
            Parameter(np.empty((out_features, in_features), dtype=dtype)), -bound, bound
        )
        self.bias = (
            init.uniform_(Parameter(np.empty(out_features, dtype=dtype)), -bound, bound)
            if bias
            else None
        )

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
