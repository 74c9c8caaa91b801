"""ReLU, the nonlinearity after every batch norm in ResNet: y = max(x, 0).

Gradient dx = dy * [x > 0]. At the kink x == 0 we take the subgradient 0 (as PyTorch does);
writing ReLU as ``maximum(x, 0)`` in an engine that splits ties would hand half of dy there.
We keep the output, not the input: y > 0 exactly where x > 0, and y is usually kept alive anyway
by the next layer. (The fast twin, ``minires/fast/blocked_relu.py``, does the same in blocks of
rows on several threads.)
"""

from .. import backend
from ..autograd import Function
from ..switch import implementation


class ReLU(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).maximum(x, 0)
        return self.y

    def backward(self, gy):
        return gy * (self.y > 0)


def relu(x):
    return implementation(ReLU)()(x)  # the fast twin unless in reference mode (minires/switch.py)
