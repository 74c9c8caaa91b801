"""minires: ResNet from scratch in NumPy/CuPy, written to be read next to the paper.

    import minires as mr
    from minires import functional as F, nn, models, optim, data
"""
from . import backend
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from .backend import manual_seed
from .gradcheck import GradcheckError, gradcheck
from . import functional, io, models, nn, optim

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "manual_seed", "functional", "nn", "models", "optim", "io", "backend"]
