"""Numerical gradient check: compare backward with central differences, in float64.

For y = fn(*inputs), a fixed random upstream gradient v (same shape as y) turns y into the scalar
L = sum(v * y). Backward gives dL/dx for every input x; central differences give

    dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),      error O(eps^2).

Why not L = sum(y)? For batch norm sum(y) = N * sum(beta) whatever x is, so d sum(y)/dx == 0 and
a backward missing a whole term still "passes". A random v sees every term.
"""

import numpy as np

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree; the message says where and by how
    much."""


def _output(fn, inputs):
    y = fn(*inputs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(y).__name__}")
    return y


def _describe(i, x):
    name = f" ({x.name!r})" if getattr(x, "name", None) else ""
    return f"input {i}{name} of shape {x.shape}"


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check backward of ``fn`` against central differences for every input that requires grad.

    ``inputs`` may mix tensors and other arguments; tensors with ``requires_grad`` must be float64.
    Each is perturbed in place (so module parameters passed here are checked too) and restored.
    An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    Returns True, or raises :class:`GradcheckError` naming the input, the worst index and both
    values.
    """
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i, x in checked:
        if x.dtype != np.float64:
            raise TypeError(
                f"gradcheck: {_describe(i, x)} is {x.dtype}; finite differences need float64 "
                "(use .double(), or model.to(dtype='float64'))"
            )
        if not x.is_leaf:
            raise ValueError(
                f"gradcheck: {_describe(i, x)} is not a leaf; pass the tensors fn starts from"
            )

    # Analytic: one backward of L = sum(v * y).
    for _, x in checked:
        x.grad = None
    y = _output(fn, inputs)
    xp = backend.get_array_module(y.data)
    v = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape), dtype=y.dtype)
    if not y.requires_grad:
        analytic = [xp.zeros_like(x.data) for _, x in checked]
    else:
        y.backward(v)
        analytic = [x.grad if x.grad is not None else xp.zeros_like(x.data) for _, x in checked]

    def loss():
        return float((_output(fn, inputs).data * v).sum())

    # Numeric: two forwards per element.
    with no_grad():
        for (i, x), a in zip(checked, analytic):
            data = x.data
            numeric = np.zeros(x.shape)
            for idx in np.ndindex(*x.shape):
                orig = float(data[idx])
                data[idx] = orig + eps
                plus = loss()
                data[idx] = orig - eps
                minus = loss()
                data[idx] = orig
                numeric[idx] = (plus - minus) / (2 * eps)
            a = backend.as_numpy(a).astype(np.float64)
            excess = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
            bad = excess > 0
            if bad.any() or not np.isfinite(a).all():
                worst = np.unravel_index(
                    np.nanargmax(np.where(np.isfinite(a), excess, np.inf)), x.shape
                )
                raise GradcheckError(
                    f"gradcheck failed for {_describe(i, x)}: "
                    f"{int(bad.sum())} of {x.size} elements disagree.\n"
                    f"  worst at index {tuple(int(j) for j in worst)}: "
                    f"numeric {numeric[worst]:.8g}, "
                    f"analytic {a[worst]:.8g}, |difference| {abs(a[worst] - numeric[worst]):.3g} > "
                    f"atol + rtol*|numeric| = {atol + rtol * abs(numeric[worst]):.3g}"
                )
    for _, x in checked:
        x.grad = None
    return True
