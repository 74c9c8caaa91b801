"""minires: ResNet from scratch in NumPy/CuPy, written to be read next to the paper.

    import minires as mr
    from minires import functional as F, nn, models, optim, data

``minires/functional/`` holds the reference ops; ``minires/fast/`` their fast twins, which run by
default (``MINIRES_OPS=reference`` or ``with mr.reference_ops():`` runs the reference ones).
"""
from . import backend
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from .backend import manual_seed
from .gradcheck import GradcheckError, gradcheck
from .switch import reference_ops
from . import functional, io, models, nn, optim
from . import fast  # noqa: E402  (fills in the fast twins of the reference ops)

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "manual_seed", "reference_ops", "functional", "nn", "models", "optim", "io", "backend", "fast"]
