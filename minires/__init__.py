"""minires: ResNet from scratch in NumPy/CuPy, written to be read next to the paper.

    import minires as mr
    from minires import functional as F, nn, models, optim, data

``minires/functional/`` holds the reference ops; ``minires/fast/`` their fast twins, which run by
default (``MINIRES_OPS=reference`` or ``with mr.reference_ops():`` runs the reference ones).

The package, one entry at a time:

    autograd.py     the autograd engine: Tensor, Function, backward
    gradcheck.py    numerical gradient check
    testing/        property tests for ops
    functional/     the reference ops
    fast/           their fast twins
    switch.py       fast or reference ops
    nn/             layers as modules
    models/         the paper's networks
    optim.py        SGD and schedules
    data/           data sets and augmentation
    train/          the training loop
    experiments/    why residual nets train
    io.py           pickle-free atomic files
    backend.py      NumPy or CuPy
    machine.py      which machine ran it
    cli/            the command line
"""
from . import backend
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from .backend import manual_seed
from .gradcheck import GradcheckError, gradcheck
from .switch import reference_ops
from . import functional, io, models, nn, optim
from . import fast  # noqa: E402  (fills in the fast twins of the reference ops)

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
           "GradcheckError", "manual_seed", "reference_ops", "functional", "nn", "models", "optim",
           "io", "backend", "fast"]
