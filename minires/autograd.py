"""The autograd engine: ``Tensor``, ``Function`` and reverse-mode ``backward``.

Define-by-run: each op on tensors runs its ``Function.forward`` on plain arrays at once and, when
gradients are wanted, records itself as the output's ``grad_fn``. The recorded functions form a
DAG whose edges point from an op to the ops that made its inputs. ``backward`` walks that DAG in
reverse topological order (found iteratively, so a 10,000-op chain needs no recursion) and applies
the chain rule: each function maps dL/d(output) to dL/d(input) for every input, and a tensor used
twice receives the sum of both contributions.

After a backward each function drops its parents and saved arrays, so the graph's memory is
returned at once; ``backward(retain_graph=True)`` keeps it for a second pass.
"""

import contextlib
import weakref

import numpy as np

from . import backend


class _Config:
    grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record nothing: no graph, no saved arrays (inference, updates)."""
    previous = _Config.grad_enabled
    _Config.grad_enabled = False
    try:
        yield
    finally:
        _Config.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Record graphs again inside a ``no_grad`` block."""
    previous = _Config.grad_enabled
    _Config.grad_enabled = True
    try:
        yield
    finally:
        _Config.grad_enabled = previous


def is_grad_enabled():
    return _Config.grad_enabled


def _as_float_array(data, dtype):
    """Validate and convert the data of a new tensor: float32/float64 NumPy or CuPy array."""
    if isinstance(data, Tensor):
        raise TypeError("Tensor(data): data is already a Tensor; use .detach() or .to(dtype)")
    if dtype is not None:
        dtype = backend.check_float_dtype(dtype, "Tensor dtype")
    if backend.is_gpu_array(data) or isinstance(data, np.ndarray):
        if dtype is None:
            if data.dtype.kind != "f":
                raise TypeError(
                    f"Tensor(data) needs floating-point data, got an array of dtype {data.dtype}; "
                    "pass dtype='float32' to convert it"
                )
            dtype = backend.check_float_dtype(data.dtype, "Tensor data dtype")
        return data if data.dtype == dtype else data.astype(dtype)
    # Python scalars and (nested) lists become float32 arrays, as in PyTorch.
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"Tensor(data) needs numbers, got {type(data).__name__} of dtype {array.dtype}"
        )
    return array.astype(dtype or backend.DEFAULT_DTYPE)


class Tensor:
    """An array plus what autograd needs: ``grad``, ``requires_grad`` and the ``grad_fn`` that
    made it.

    ``data`` is a NumPy (device "cpu") or CuPy (device "gpu") array of float32 or float64.
    A tensor made by the user is a *leaf*; its ``grad`` accumulates over ``backward`` calls
    until reset (``grad = None``). Tensors made by ops keep no ``grad`` unless ``retain_grad()``.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "name", "_leaf_hooks", "__weakref__")
    # Make NumPy hand mixed expressions (ndarray * Tensor) to the Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self.data = _as_float_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self.name = name
        self._leaf_hooks = None

    @classmethod
    def _wrap(cls, data):
        """A tensor around an array an op produced (already validated): no conversion, no copy."""
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t.grad_fn, t.name, t._leaf_hooks = (
            data,
            None,
            False,
            None,
            None,
            None,
        )
        return t

    # -- array-like properties ------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.grad_fn is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        extra = (
            f", grad_fn={type(self.grad_fn).__name__}"
            if self.grad_fn is not None
            else (", requires_grad=True" if self.requires_grad else "")
        )
        body = np.array2string(
            backend.as_numpy(self.data), precision=4, threshold=20, prefix="Tensor("
        )
        dev = ", device='gpu'" if self.device == "gpu" else ""
        return f"Tensor({body}, dtype={self.dtype}{dev}{extra})"

    # -- conversion -----------------------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (a copy from the GPU; the array itself on the CPU)."""
        return backend.as_numpy(self.data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.data.reshape(()))

    def detach(self):
        """The same array with no history: gradients will not flow back through it."""
        return Tensor._wrap(self.data)

    def to(self, device=None, dtype=None):
        """Move to ``"cpu"``/``"gpu"`` and/or cast to float32/float64; differentiable.

        ``x.to("gpu")``, ``x.to(dtype="float64")`` or ``x.to(np.float64)``.
        """
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = _basic.cast(out, dtype)
        if device is not None and backend.check_device(device) != self.device:
            out = _basic.to_device(out, device)
        return out

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # -- autograd -------------------------------------------------------------------------------
    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is known, during backward.

        The hook may return a new gradient (which replaces the old one) or None.
        Returns a handle with ``remove()``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "register_hook on a tensor that does not require grad: no gradient will reach it"
            )
        hooks = self.grad_fn.hooks if self.grad_fn is not None else self._leaf_hooks
        if hooks is None:
            hooks = self._leaf_hooks = []
        hooks.append(hook)
        return HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep ``grad`` on a non-leaf tensor after backward (leaves always keep theirs)."""
        if self.grad_fn is None:
            return
        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                t.grad = grad if t.grad is None else t.grad + grad

        self.register_hook(store)

    def backward(self, grad=None, retain_graph=False):
        """Accumulate dself/dleaf into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is the upstream gradient dL/dself; it may be omitted only for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad and has no grad_fn"
            )
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    "backward() without a grad argument needs a one-element tensor, "
                    f"got shape {self.shape}; "
                    "pass grad=dL/dself of the same shape"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if backend.device_of(grad) != self.device:
                raise ValueError(
                    f"backward(grad): grad is on {backend.device_of(grad)}, "
                    f"the tensor on {self.device}"
                )
            grad = xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward(grad): grad has shape {grad.shape}, expected {self.shape}"
                )
        _run_backward(self, grad, retain_graph)

    # -- operators ------------------------------------------------------------------------------
    def __add__(self, other):
        return _basic.add(self, other)

    def __radd__(self, other):
        return _basic.add(other, self)

    def __sub__(self, other):
        return _basic.sub(self, other)

    def __rsub__(self, other):
        return _basic.sub(other, self)

    def __mul__(self, other):
        return _basic.mul(self, other)

    def __rmul__(self, other):
        return _basic.mul(other, self)

    def __truediv__(self, other):
        return _basic.div(self, other)

    def __rtruediv__(self, other):
        return _basic.div(other, self)

    def __neg__(self):
        return _basic.neg(self)

    def __pow__(self, exponent):
        return _basic.pow(self, exponent)

    def __matmul__(self, other):
        return _basic.matmul(self, other)

    def __rmatmul__(self, other):
        return _basic.matmul(other, self)

    def __getitem__(self, index):
        # An integer index out of bounds is an IndexError on either device. NumPy raises one, but
        # CuPy wraps integer *arrays* around (x[[1, 3]] of 3 rows is x[[1, 0]]), so every integer
        # index is checked here, before it reaches either; a device index array costs one
        # read-back (its min and max).
        parts = index if isinstance(index, tuple) else (index,)
        width = [0 if p is None or p is Ellipsis else
                 p.ndim if getattr(p, "dtype", None) == np.bool_ else 1 for p in parts]
        axis = 0
        for p, n in zip(parts, width):
            if p is Ellipsis:
                axis += self.ndim - sum(width)
                continue
            ints = np.asarray(p) if isinstance(p, list) else p
            lo = hi = 0  # a slice, None, a mask, an empty array: nothing to check
            if isinstance(ints, (int, np.integer)) and not isinstance(ints, (bool, np.bool_)):
                lo = hi = int(ints)
            elif getattr(getattr(ints, "dtype", None), "kind", "") in ("i", "u") and ints.size:
                xp = backend.get_array_module(ints)
                lo, hi = (int(v) for v in backend.as_numpy(xp.stack([ints.min(), ints.max()])))
            size = self.shape[axis] if axis < self.ndim else None  # too many: getitem says so
            if size is not None and (lo < -size or hi >= size):
                raise IndexError(
                    f"index {index!r} is invalid for a tensor of shape {self.shape}: index "
                    f"{lo if lo < -size else hi} is out of bounds for axis {axis} with size {size}"
                )
            axis += n
        return _basic.getitem(self, index)

    def sum(self, axis=None, keepdims=False):
        return _basic.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _basic.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _basic.max(self, axis, keepdims)

    def exp(self):
        return _basic.exp(self)

    def log(self):
        return _basic.log(self)

    def maximum(self, other):
        return _basic.maximum(self, other)

    def broadcast_to(self, shape):
        return _basic.broadcast_to(self, shape)

    def reshape(self, *shape):
        return _basic.reshape(
            self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        )

    def transpose(self, *axes):
        return _basic.transpose(
            self,
            axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None),
        )

    @property
    def T(self):
        return _basic.transpose(self, None)


class HookHandle:
    """What ``Tensor.register_hook`` returns: ``handle.remove()`` unregisters the hook
    (again: no-op)."""

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Function:
    """One recorded op. Subclasses define ``forward(*arrays) -> array`` and
    ``backward(gy) -> grads``.

    ``backward`` receives dL/dy (an array shaped like the output) and returns one gradient per
    input, shaped like that input, or None where ``self.needs_input_grad[i]`` is False.
    Backward must never modify ``gy`` in place: the same array may be handed to several inputs.
    Non-differentiable arguments (an axis, a stride, integer labels) go to ``__init__``.

    A recorded function keeps only what its backward saved plus its *parents*: for each input the
    function that made it, or the input itself when it is a leaf. It does not keep its input
    tensors, so an activation lives only as long as some backward needs it.
    """

    parents = ()
    needs_input_grad = ()
    hooks = None

    def __call__(self, *inputs):
        for i, x in enumerate(inputs):
            if not isinstance(x, Tensor):
                raise not_a_tensor(type(self).__name__, i, x)
        _check_same_device_and_dtype(type(self).__name__, inputs)
        y = self.forward(*[x.data for x in inputs])
        # NumPy reductions to a scalar return np.float32, not an array
        if isinstance(y, np.generic):
            y = np.asarray(y)
        out = Tensor._wrap(y)
        if _Config.grad_enabled and any(x.requires_grad for x in inputs):
            self.parents = tuple(x if x.grad_fn is None else x.grad_fn for x in inputs)
            self.input_shapes = tuple(x.shape for x in inputs)
            self.needs_input_grad = tuple(x.requires_grad for x in inputs)
            self.hooks = []
            out.requires_grad = True
            out.grad_fn = self
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def release(self):
        """Drop parents and saved arrays: the graph below this node can now be freed."""
        self.__dict__.clear()
        self.parents = None


def not_a_tensor(name, i, x):
    """The TypeError for an op handed something other than a Tensor as input ``i``: says what
    to pass."""
    kind = (
        type(x).__module__.split(".")[0] + "." + type(x).__name__
        if hasattr(x, "__array__")
        else type(x).__name__
    )
    hint = "mr.Tensor(array)" if hasattr(x, "__array__") else "mr.Tensor(value)"
    return TypeError(f"{name}: input {i} is a {kind}, not a Tensor; wrap it: {hint}")


def _check_same_device_and_dtype(name, inputs):
    first = inputs[0].data
    on_gpu = backend.is_gpu_array(first)
    for i, x in enumerate(inputs[1:], 1):
        if backend.is_gpu_array(x.data) != on_gpu:
            raise RuntimeError(
                f"{name}: input 0 is on {backend.device_of(first)} but input {i} is on "
                f"{backend.device_of(x.data)}; move them to one device with .to(device)"
            )
        if x.data.dtype != first.dtype:
            raise TypeError(
                f"{name}: input 0 is {first.dtype} but input {i} is {x.data.dtype}; "
                "minires does not promote dtypes silently, convert one with .to(dtype)"
            )


def topological_order(root):
    """Functions reachable from ``root``, each after every function that consumes its output.

    Iterative depth-first search (no recursion: ResNet-1202's graph is thousands of nodes deep).
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if fn in visited:
            continue
        visited.add(fn)
        stack.append((fn, True))
        for p in fn.parents or ():  # None: freed by an earlier backward (reported by _run_backward)
            if isinstance(p, Function) and p not in visited:
                stack.append((p, False))
    order.reverse()  # post-order lists producers first; we need consumers first
    return order


def _accumulate(grads, owned, key, g):
    """grads[key] += g, without writing into an array that a backward may have shared."""
    if key not in grads:
        grads[key] = g
    elif key in owned:
        grads[key] += g
    else:
        grads[key] = grads[key] + g
        owned.add(key)


def _run_backward(root, grad, retain_graph):
    if root.grad_fn is None:  # a leaf: its gradient is the upstream gradient itself
        _deliver_to_leaves({id(root): root}, {id(root): grad})
        return
    if root.grad_fn.parents is None:
        raise RuntimeError(
            "backward through a graph that a previous backward already freed; "
            "call backward(retain_graph=True) the first time to go through it twice"
        )
    order = topological_order(root.grad_fn)
    grads, owned = {root.grad_fn: grad}, set()
    leaf_grads, leaves = {}, {}
    for fn in order:
        if fn.parents is None:
            raise RuntimeError(
                f"backward reached a {type(fn).__name__} whose graph "
                "a previous backward already freed; "
                "use retain_graph=True on the first backward"
            )
        gy = grads.pop(fn)
        for hook in fn.hooks:
            new = hook(gy)
            if new is not None:
                gy = new
        gxs = fn.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        for p, shape, needed, gx in zip(fn.parents, fn.input_shapes, fn.needs_input_grad, gxs):
            if not needed or gx is None:
                continue
            if gx.shape != shape:  # a wrong backward should fail here, not deep in a later op
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {gx.shape} "
                    f"for an input of shape {shape}"
                )
            if isinstance(p, Function):
                _accumulate(grads, owned, p, gx)
            else:
                leaves[id(p)] = p
                _accumulate(leaf_grads, owned, id(p), gx)
        if not retain_graph:
            fn.release()
    _deliver_to_leaves(leaves, leaf_grads)


def _deliver_to_leaves(leaves, leaf_grads):
    for key, x in leaves.items():
        g = leaf_grads[key]
        for hook in x._leaf_hooks or ():
            new = hook(g)
            if new is not None:
                g = new
        if x.grad is None:
            # A leaf's grad is the user's (and the optimizer's) to modify: give it an array of
            # its own.
            xp = backend.get_array_module(g)
            x.grad = xp.array(g, dtype=x.dtype, copy=True)
        else:
            x.grad = x.grad + g


from .functional import basic as _basic  # noqa: E402  (ops need Tensor and Function defined first)
