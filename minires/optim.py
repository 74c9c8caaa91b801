"""Stochastic gradient descent with momentum and weight decay, and the paper's step schedule.

SGD (PyTorch's formulation, dampening 0), for each parameter p with gradient g:

    g <- g + weight_decay * p                 (L2 regularisation, 1e-4 in the paper)
    v <- momentum * v + g                     (v starts as g; momentum 0.9 in the paper)
    p <- p - lr * v                           (nesterov: p <- p - lr * (g + momentum * v))

MultiStepLR multiplies the learning rate by gamma at each milestone epoch: the paper divides it
by 10 at 32k and 48k iterations (CIFAR). ReduceLROnPlateau divides it by 10 "when the error
plateaus" (ImageNet, sec. 3.4): when the monitored error has not improved for a few epochs.
"""

import numpy as np

from . import backend
from .autograd import no_grad


class SGD:
    def __init__(self, params, lr, momentum=0.9, weight_decay=1e-4, nesterov=False):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"SGD: lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.lr, self.momentum, self.weight_decay, self.nesterov = (
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
        self.velocity = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = p.grad
                if self.weight_decay:
                    g = g + self.weight_decay * p.data
                if self.momentum:
                    v = self.velocity[i]
                    if v is None:
                        v = self.velocity[i] = g.copy()
                    else:
                        v *= self.momentum
                        v += g
                    g = g + self.momentum * v if self.nesterov else v
                p.data -= self.lr * g

    def state_dict(self):
        """{"lr": ..., "velocity.{i}": array} — enough to resume exactly."""
        state = {"lr": np.float64(self.lr)}
        for i, v in enumerate(self.velocity):
            if v is not None:
                state[f"velocity.{i}"] = backend.as_numpy(v).copy()
        return state

    def load_state_dict(self, state):
        """Restore ``state_dict()``'s values; each velocity, a NumPy or CuPy array, is copied
        onto its parameter's device in the parameter's dtype. Nothing changes if one is wrong."""
        velocity = []
        for i, p in enumerate(self.params):
            v = state.get(f"velocity.{i}")
            if v is not None:
                if not (isinstance(v, np.ndarray) or backend.is_gpu_array(v)):
                    v = np.asarray(v)
                if tuple(v.shape) != p.shape:
                    raise ValueError(
                        f"SGD.load_state_dict: velocity.{i} has shape {tuple(v.shape)}, "
                        f"the parameter has {p.shape}"
                    )
                v = backend.to_device(v, p.device).astype(p.dtype)
            velocity.append(v)
        self.lr = float(state["lr"])
        self.velocity = velocity


class MultiStepLR:
    """lr = base_lr * gamma ** (number of milestones <= epoch); call ``step()`` once per epoch."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = list(milestones)
        if milestones != sorted(milestones):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {milestones}")
        self.optimizer, self.milestones, self.gamma = optimizer, milestones, gamma
        self.base_lr = optimizer.lr
        self.epoch = 0

    def get_lr(self):
        return self.base_lr * self.gamma ** sum(m <= self.epoch for m in self.milestones)

    def step(self):
        self.epoch += 1
        self.optimizer.lr = self.get_lr()

    def state_dict(self):
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])
        self.optimizer.lr = self.get_lr()


class ReduceLROnPlateau:
    """lr <- lr * factor when the monitored error has not improved for more than ``patience``
    epochs.

    Call ``step(error)`` once per epoch with the error to watch (the validation error). An epoch
    improves on the best error so far when error < best * (1 - threshold) (a relative threshold,
    so that noise-level gains do not count). After an improvement the count of bad epochs restarts
    at 0; when it exceeds ``patience`` the lr is multiplied by ``factor`` (0.1: "divided by 10",
    sec. 3.4) and the count restarts, so the next reduction needs another ``patience + 1`` bad
    epochs. The lr never goes below ``min_lr``. As PyTorch's ReduceLROnPlateau in "min" mode.
    """

    def __init__(self, optimizer, factor=0.1, patience=5, threshold=1e-4, min_lr=0.0):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        if (
            not isinstance(patience, (int, np.integer))
            or isinstance(patience, bool)
            or patience < 0
        ):
            raise ValueError(f"ReduceLROnPlateau: patience must be an int >= 0, got {patience!r}")
        if not 0 <= threshold < 1:
            raise ValueError(f"ReduceLROnPlateau: threshold must be in [0, 1), got {threshold}")
        if not min_lr >= 0:
            raise ValueError(f"ReduceLROnPlateau: min_lr must be >= 0, got {min_lr}")
        self.optimizer, self.factor, self.patience = optimizer, factor, int(patience)
        self.threshold, self.min_lr = threshold, min_lr
        self.best, self.bad_epochs, self.epoch = float("inf"), 0, 0

    def step(self, error):
        error = float(error)
        if error != error:
            raise ValueError("ReduceLROnPlateau.step: the monitored error is NaN")
        self.epoch += 1
        if error < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = error, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad_epochs = 0

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.best, self.bad_epochs, self.epoch = (
            float(state["best"]),
            int(state["bad_epochs"]),
            int(state["epoch"]),
        )
