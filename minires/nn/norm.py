"""``BatchNorm2d``: per-channel batch normalisation with learned scale/shift and running
statistics."""

import numpy as np

from .. import functional as F
from .module import Module, Parameter


class BatchNorm2d(Module):
    """Normalise each channel over (N, H, W); weight (gamma) starts at 1, bias (beta) at 0.

    train(): batch statistics, and running_mean/running_var move towards them (momentum 0.1).
    eval():  the running statistics, so an example's output does not depend on its batch.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        if (
            not isinstance(num_features, (int, np.integer))
            or isinstance(num_features, bool)
            or num_features < 1
        ):
            raise ValueError(
                "BatchNorm2d: num_features must be a positive int (the channels), "
                f"got {num_features!r}"
            )
        if not eps > 0:
            raise ValueError(f"BatchNorm2d: eps must be > 0, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d({self.num_features}): expected input (N, {self.num_features}, H, W), "
                f"got shape {x.shape}"
            )
        return F.batch_norm(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            self.training,
            self.momentum,
            self.eps,
        )

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
