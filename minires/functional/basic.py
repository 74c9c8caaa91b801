"""Basic differentiable ops: arithmetic with broadcasting, matmul, reductions, shapes, indexing.

Each op is a ``Function`` whose forward and backward sit together. Conventions:

- Broadcasting follows NumPy. The gradient of a broadcast operand is the upstream gradient
  summed over the broadcast axes (:func:`unbroadcast`).
- A Python number next to a tensor becomes a constant of the tensor's dtype (no float64 creep).
- Ties: ``max`` shares the gradient equally among the maxima; ``maximum(a, b)`` gives it to
  ``a`` where ``a == b``.
"""

import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor


# -- helpers ---------------------------------------------------------------------------------------


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of broadcasting an array of ``shape`` to
    ``g.shape``."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and g.shape[i + extra] != 1
    )
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def as_tensor(x, like):
    """``x`` as a Tensor next to ``like``: numbers take like's dtype and device; arrays must
    match."""
    if isinstance(x, Tensor):
        return x
    xp = backend.get_array_module(like.data)
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return Tensor(xp.asarray(x, dtype=like.dtype))
    if isinstance(x, np.ndarray) or backend.is_gpu_array(x):
        if x.dtype != like.dtype:
            raise TypeError(
                f"operand array has dtype {x.dtype}, expected {like.dtype} like the tensor; "
                "convert it with .astype() first"
            )
        return Tensor(x)
    raise TypeError(
        f"unsupported operand of type {type(x).__name__}: expected a Tensor, an array or a number"
    )


def _pair(a, b):
    a_t = isinstance(a, Tensor)
    # at least one operand says which dtype and device to use
    if not a_t and not isinstance(b, Tensor):
        raise TypeError(
            f"neither operand is a Tensor ({type(a).__name__} and {type(b).__name__}); "
            "wrap one: mr.Tensor(value)"
        )
    like = a if a_t else b
    return (a if a_t else as_tensor(a, like)), as_tensor(b, like)


def _broadcast_shape(name, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {' and '.join(map(str, shapes))} do not broadcast together"
        ) from None


def _normalize_axes(axis, ndim, name):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(out))


def _expand(g, in_shape, axes, keepdims):
    """Undo a reduction over ``axes``: reshape ``g`` to keepdims form and broadcast to
    ``in_shape``."""
    xp = backend.get_array_module(g)
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(in_shape)])
    return xp.broadcast_to(g, in_shape)


# -- arithmetic ------------------------------------------------------------------------------------


class Add(Function):
    """y = a + b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        sa, sb = self.shapes
        return unbroadcast(gy, sa), unbroadcast(gy, sb)


class Sub(Function):
    """y = a - b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        sa, sb = self.shapes
        gb = -unbroadcast(gy, sb) if self.needs_input_grad[1] else None
        return unbroadcast(gy, sa), gb


class Mul(Function):
    """y = a * b;  da = gy * b,  db = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = unbroadcast(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  da = gy / b,  db = -gy * a / b**2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = unbroadcast(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** p for a constant p;  da = gy * p * a ** (p - 1)."""

    def __init__(self, p):
        self.p = p

    def forward(self, a):
        self.a = a
        return a**self.p

    def backward(self, gy):
        p = self.p
        if p == 0:
            return backend.get_array_module(gy).zeros_like(gy)
        return gy * (p * self.a ** (p - 1))


class Exp(Function):
    def forward(self, a):
        self.y = backend.get_array_module(a).exp(a)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, a):
        xp = backend.get_array_module(a)
        if bool((a <= 0).any()):
            raise ValueError("log: input has values <= 0, where the logarithm is undefined")
        self.a = a
        return xp.log(a)

    def backward(self, gy):
        return gy / self.a


class Maximum(Function):
    """y = max(a, b) elementwise; where a == b the gradient goes to a."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a_wins = a >= b
        self.shapes = a.shape, b.shape
        return xp.maximum(a, b)

    def backward(self, gy):
        sa, sb = self.shapes
        ga = unbroadcast(gy * self.a_wins, sa) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * ~self.a_wins, sb) if self.needs_input_grad[1] else None
        return ga, gb


def add(a, b):
    a, b = _pair(a, b)
    _broadcast_shape("add", a.shape, b.shape)
    return Add()(a, b)


def sub(a, b):
    a, b = _pair(a, b)
    _broadcast_shape("sub", a.shape, b.shape)
    return Sub()(a, b)


def mul(a, b):
    a, b = _pair(a, b)
    _broadcast_shape("mul", a.shape, b.shape)
    return Mul()(a, b)


def div(a, b):
    a, b = _pair(a, b)
    _broadcast_shape("div", a.shape, b.shape)
    return Div()(a, b)


def neg(a):
    return Neg()(a)


def pow(a, p):
    """a ** p with a constant (Python number) exponent."""
    if isinstance(p, Tensor) or not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"pow: the exponent must be a Python number, got {type(p).__name__}")
    return Pow(p)(a)


def exp(a):
    return Exp()(a)


def log(a):
    return Log()(a)


def maximum(a, b):
    a, b = _pair(a, b)
    _broadcast_shape("maximum", a.shape, b.shape)
    return Maximum()(a, b)


# -- matrix product --------------------------------------------------------------------------------


class MatMul(Function):
    """y = a @ b for a: (..., n, k), b: (..., k, m); batch dimensions broadcast.

    da = gy @ b^T,  db = a^T @ gy  (each summed over broadcast batch dimensions).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        a, b = self.a, self.b
        ga = (
            unbroadcast(xp.matmul(gy, xp.swapaxes(b, -1, -2)), a.shape)
            if self.needs_input_grad[0]
            else None
        )
        gb = (
            unbroadcast(xp.matmul(xp.swapaxes(a, -1, -2), gy), b.shape)
            if self.needs_input_grad[1]
            else None
        )
        return ga, gb


def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands are promoted to a row / a column."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}"
        )
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = reshape(a, (1, a.shape[0]))
    if squeeze_b:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    _broadcast_shape("matmul (batch dimensions)", a.shape[:-2], b.shape[:-2])
    y = MatMul()(a, b)
    if squeeze_a or squeeze_b:
        shape = y.shape[:-2] + y.shape[-2:-1] * (not squeeze_a) + y.shape[-1:] * (not squeeze_b)
        y = reshape(y, shape)
    return y


# -- reductions ------------------------------------------------------------------------------------


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, a):
        self.in_shape = a.shape
        return a.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand(gy, self.in_shape, self.axes, self.keepdims)


class Mean(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, a):
        self.in_shape = a.shape
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        return a.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand(gy / self.count, self.in_shape, self.axes, self.keepdims)


class Max(Function):
    """Maximum over axes; the gradient is shared equally among tied maxima."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, a):
        y = a.max(axis=self.axes, keepdims=True)
        self.winners = a == y
        return (
            y
            if self.keepdims
            else y.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])
        )

    def backward(self, gy):
        w = self.winners
        share = w / w.sum(axis=self.axes, keepdims=True)
        return _expand(gy, w.shape, self.axes, self.keepdims) * share.astype(gy.dtype)


def sum(a, axis=None, keepdims=False):
    return Sum(_normalize_axes(axis, a.ndim, "sum"), keepdims)(a)


def mean(a, axis=None, keepdims=False):
    return Mean(_normalize_axes(axis, a.ndim, "mean"), keepdims)(a)


def max(a, axis=None, keepdims=False):
    axes = _normalize_axes(axis, a.ndim, "max")
    if any(a.shape[i] == 0 for i in axes):
        raise ValueError(f"max: cannot reduce over an empty axis of shape {a.shape}")
    return Max(axes, keepdims)(a)


# -- shapes ----------------------------------------------------------------------------------------


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        self.in_shape = a.shape
        return a.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, a):
        return a.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(np.argsort(self.axes))


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        self.in_shape = a.shape
        return backend.get_array_module(a).broadcast_to(a, self.shape)

    def backward(self, gy):
        return unbroadcast(gy, self.in_shape)


class GetItem(Function):
    """y = a[index]; the gradient is scattered back, summing where an index repeats."""

    def __init__(self, index):
        self.index = index

    def forward(self, a):
        self.in_shape = a.shape
        return a[self.index]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _has_array_index(self.index):
            backend.scatter_add(g, self.index, gy)
        else:
            g[self.index] = gy
        return g


def _has_array_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") and p.ndim > 0 for p in parts)


def reshape(a, shape):
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: at most one -1 allowed, got {shape}")
    known = int(np.prod([s for s in shape if s != -1]))
    if (-1 in shape and (known == 0 or a.size % known)) or (-1 not in shape and known != a.size):
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) into {shape}"
        )
    return Reshape(shape)(a)


def transpose(a, axes=None):
    """Permute axes; ``axes=None`` reverses them (``a.T``)."""
    axes = (
        tuple(range(a.ndim))[::-1]
        if axes is None
        else tuple(int(i) % a.ndim if a.ndim else i for i in axes)
    )
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes")
    return Transpose(axes)(a)


def broadcast_to(a, shape):
    shape = tuple(shape)
    if _broadcast_shape("broadcast_to", a.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}")
    return BroadcastTo(shape)(a)


def getitem(a, index):
    """Basic (ints, slices, None, ...) and integer-array indexing; lists become integer arrays."""
    xp = backend.get_array_module(a.data)
    parts = index if isinstance(index, tuple) else (index,)
    fixed = []
    for p in parts:
        if isinstance(p, Tensor):
            raise TypeError("indexing with a Tensor: index with an integer array instead")
        if isinstance(p, list):
            p = np.asarray(p)
        if hasattr(p, "dtype"):
            if p.dtype.kind not in "iub":
                raise TypeError(f"index arrays must be integer or boolean, got dtype {p.dtype}")
            p = xp.asarray(p)
        fixed.append(p)
    index = tuple(fixed) if isinstance(index, tuple) else fixed[0]
    try:
        return GetItem(index)(a)
    except IndexError as e:
        raise IndexError(
            f"index {index!r} is invalid for a tensor of shape {a.shape}: {e}"
        ) from None


# -- dtype and device ------------------------------------------------------------------------------


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, a):
        self.in_dtype = a.dtype
        return a.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, a):
        self.in_device = backend.device_of(a)
        return backend.to_device(a, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.in_device)


def cast(a, dtype):
    return Cast(backend.check_float_dtype(dtype))(a)


def to_device(a, device):
    return ToDevice(backend.check_device(device))(a)
