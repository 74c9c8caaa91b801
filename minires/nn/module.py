"""``Module`` and ``Parameter``: layers that own tensors, nest, and save/load by name, as in
PyTorch.

A module's attributes that are Parameters or Modules are registered in assignment order, so
``named_parameters()`` and ``state_dict()`` list them in a fixed, reproducible order, with dotted
names (``layer1.0.conv1.weight``) that match torchvision's for the same architecture.
Buffers (``register_buffer``) are arrays that are saved and moved with the module but are not
trained: batch norm's running statistics.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import HookHandle, Tensor


class Parameter(Tensor):
    """A tensor that a module trains: ``requires_grad`` is True unless said otherwise."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(
            data.data if isinstance(data, Tensor) else data,
            requires_grad=requires_grad,
            dtype=dtype,
        )

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

# torchvision's BatchNorm2d also stores a batch counter; it plays no part in the arithmetic.
_IGNORED_KEYS = ("num_batches_tracked",)


class Module:
    """Base class of every layer and model. Subclasses set attributes in ``__init__`` and define
    ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        target = (
            self._parameters
            if isinstance(value, Parameter)
            else (self._modules if isinstance(value, Module) else None)
        )
        for table in (self._parameters, self._buffers, self._modules):
            if table is not target:
                table.pop(name, None)
        if target is not None:
            # Replacing a registered name keeps its place (as in PyTorch): popping it first would
            # move it to the end and change a Sequential's order and the state_dict's.
            target[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Keep ``array`` (NumPy/CuPy, or None) as a named, saved, non-trained state of this
        module."""
        if name in self.__dict__:
            object.__delattr__(self, name)
        self._buffers[name] = array

    def set_buffer(self, name, array):
        if name not in self._buffers:
            raise KeyError(f"{type(self).__name__} has no buffer {name!r}")
        self._buffers[name] = array

    # -- calling --------------------------------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            new = hook(self, args, out)
            if new is not None:
                out = new
        return out

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; it may return a replacement
        output."""
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    # -- traversal ------------------------------------------------------------------------------
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first, in registration
        order."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            stack.extend(
                reversed([(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()])
            )

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in modules:
            for k, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix=""):
        for mname, m in self.named_modules(prefix):
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{k}" if mname else k), b

    # -- modes, devices, gradients --------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast them to ``dtype``, in place;
        returns self."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        device = backend.check_device(device) if device is not None else None
        dtype = backend.check_float_dtype(dtype) if dtype is not None else None

        def convert(a):
            if dtype is not None and a.dtype != dtype:
                a = a.astype(dtype)
            return backend.to_device(a, device) if device is not None else a

        for p in self.parameters():
            p.data = convert(p.data)
            p.grad = convert(p.grad) if p.grad is not None else None
        for m in self.modules():
            for k, b in m._buffers.items():
                if b is not None:
                    m._buffers[k] = convert(b)
        return self

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # -- saving and loading ---------------------------------------------------------------------
    def state_dict(self):
        """{dotted name: NumPy array copy} of every parameter and buffer, in registration order."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = backend.as_numpy(p.data).copy()
        for name, b in self.named_buffers():
            out[name] = backend.as_numpy(b).copy()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into parameters and buffers by name; shapes must match exactly.

        With ``strict`` a missing or unexpected key is an error (``num_batches_tracked`` from
        torchvision is accepted and ignored). Values (NumPy or CuPy arrays, Tensors, lists) are
        copied, cast to each parameter's dtype and placed on its device, wherever they were.
        Returns (missing_keys, unexpected_keys).
        """
        targets = OrderedDict()
        for name, p in self.named_parameters():
            targets[name] = ("param", p)
        for mname, m in self.named_modules():
            for k, b in m._buffers.items():
                if b is not None:
                    targets[f"{mname}.{k}" if mname else k] = ("buffer", (m, k))
        keys = [k for k in state_dict if k.rsplit(".", 1)[-1] not in _IGNORED_KEYS]
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in keys if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(
                    f"missing keys: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
                )
            if unexpected:
                parts.append(
                    f"unexpected keys: {', '.join(unexpected[:10])}"
                    f"{' ...' if len(unexpected) > 10 else ''}"
                )
            raise KeyError(f"load_state_dict into {type(self).__name__}: " + "; ".join(parts))
        # Check every shape before changing anything, so a failed load leaves the model as it was.
        staged = []
        for k in keys:
            if k not in targets:
                continue
            value = state_dict[k]
            value = value.data if isinstance(value, Tensor) else value
            if not (isinstance(value, np.ndarray) or backend.is_gpu_array(value)):
                value = np.asarray(value)  # a list or a number; arrays stay where they are
            kind, target = targets[k]
            current = target.data if kind == "param" else target[0]._buffers[target[1]]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"load_state_dict: {k} has shape {tuple(value.shape)} in the state dict "
                    f"but {tuple(current.shape)} in the model"
                )
            if value.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: {k} has non-numeric dtype {value.dtype}")
            staged.append((kind, target, current, value))
        for kind, target, current, value in staged:
            # a copy of its own, on the parameter's device: host and device values alike
            new = backend.to_device(value, backend.device_of(current)).astype(current.dtype)
            if kind == "param":
                target.data = new
            else:
                target[0]._buffers[target[1]] = new
        return IncompatibleKeys(missing, unexpected)

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
