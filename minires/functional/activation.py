"""ReLU, the nonlinearity after every batch norm in ResNet: y = max(x, 0).

Gradient dx = dy * [x > 0]. At the kink x == 0 we take the subgradient 0 (as PyTorch does);
writing ReLU as ``maximum(x, 0)`` in an engine that splits ties would hand half of dy there.
"""
from .. import backend
from ..autograd import Function
from .layout import map_rows


class ReLU(Function):
    def forward(self, x):
        xp = backend.get_array_module(x)
        # Keep the output, not the input: y > 0 exactly where x > 0, and y is usually kept alive
        # anyway by the next layer (a convolution saves its input), so this costs no memory.
        self.y = xp.empty_like(x)  # same memory layout as x
        map_rows(lambda x, y: xp.maximum(x, 0, out=y), x, self.y)
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.empty_like(gy)
        map_rows(lambda gy, y, gx: xp.multiply(gy, y > 0, out=gx), gy, self.y, gx)
        return gx


def relu(x):
    return ReLU()(x)
