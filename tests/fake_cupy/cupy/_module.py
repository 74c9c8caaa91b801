"""A submodule of the stand-in restricted to the names real CuPy's module has (the listing)."""
import numpy as _np

from . import _core, _names


def restricted(module, emulated, fallback=None):
    """A module ``__getattr__``: ``emulated`` names, else ``fallback(name, entries)``, for the
    names the listing of ``module`` has; AttributeError (CuPy's) for the others."""
    names = _names.module_names(module)

    def __getattr__(name):
        if name in emulated:
            return emulated[name]
        entries = names.get(name)
        if entries is None:
            raise _names.no_attribute(module, name)
        obj = fallback(name, entries) if fallback else None
        if obj is None:
            raise NotImplementedError(f"the CuPy stand-in does not emulate {module}.{name} "
                                      f"({_names.REAL} have it)")
        emulated[name] = obj
        return obj

    return __getattr__


def numpy_function(module, name, entries, np_fn, host_ok=False):
    """``np_fn`` with ``module.name``'s signature check, device arrays in, device arrays out."""
    check = _names.checker(name, entries)

    def function(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        _core.count(f"{module}.{name}")
        if not host_ok:
            args = _core.device_arrays(args, _core.unsupported)
            kwargs = {k: _core.device_arrays(v, _core.unsupported) for k, v in kwargs.items()}
        with _np.errstate(all="ignore"):
            return _core.wrap(np_fn(*args, **kwargs))

    function.__name__ = name
    return function
