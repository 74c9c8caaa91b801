"""A strict, NumPy-backed stand-in for CuPy: the GPU code path, run and checked on a CPU.

Put its folder first on the path (``PYTHONPATH=tests/fake_cupy``) and ``import cupy`` gives this
package. minires takes every GPU branch (``backend.is_gpu_array`` sees a ``cupy.ndarray``), and
the stand-in refuses what real CuPy refuses, with CuPy's own exception types and messages, so a
failure here reads like the failure a GPU user would get:

- only the names real CuPy 13 *and* 14 have, each called with the parameters both accept
  (``namespace-13.json``, ``namespace-14.json``: the listing ``tools/cupy_namespace.py`` takes
  from the real wheels). ``xp.lib.stride_tricks.as_strided(a, s, t, writeable=False)`` raises
  ``TypeError: as_strided() got an unexpected keyword argument 'writeable'``; a name CuPy lacks
  raises ``AttributeError: module 'cupy' has no attribute ...``;
- device arrays wrap NumPy arrays (``_core.ndarray``); they are not NumPy arrays. Implicit
  conversion (``np.asarray(d)``, ``__array__``, anything that calls it: matplotlib, ``np.testing``)
  raises ``TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()`
  to construct a NumPy array explicitly.``; a buffer view (``np.ndarray(shape, dtype, d)``),
  ``d.ctypes`` and ``d.flags.writeable`` do not exist; a device scalar is no Python index
  (``lst[d.argmax()]``: ``TypeError: list indices must be integers or slices, not ndarray``);
- a host array in a ufunc, operator or kernel: ``TypeError: Unsupported type <class
  'numpy.ndarray'>``; a host array assigned into a device slice (``d[...] = h``): ``ValueError:
  non-scalar numpy.ndarray cannot be used for fill``; ``xp.maximum.reduce``: ``NotImplementedError:
  `cupy_maximum.reduce` is not supported yet``;
- CuPy's semantics where they differ from NumPy's: C-ordered elementwise results, wrapped
  integer-array indices, 0-d device arrays from reductions (``_core.py`` lists them).

``ElementwiseKernel`` and ``ReductionKernel`` run: their C source is translated to NumPy
(``_kernels.py``, a small subset of CUDA C: expressions, ternaries, casts, the math functions),
so a fused kernel's arithmetic is tested here, though not its compilation. ``RawKernel`` and
``RawModule`` raise. What no stand-in can show: speed, memory, NVRTC and cuBLAS, float32 rounding
of fused multiply-adds, and asynchrony; ``benchmarks/gpu_check.sh`` is for those.

Names real CuPy has that the stand-in does not emulate raise NotImplementedError saying so.
"""
import numpy as _np

from . import _core, _names
from ._core import ndarray, ufunc

__version__ = "stand-in (NumPy " + _np.__version__ + "; names of " + _names.REAL + ")"
FAKE = True  # lets scripts say "dry run" in their reports

# cupy/_core/_routines_manipulation.pyx concatenate_method
_JOINS = frozenset(("concatenate", "stack", "hstack", "vstack", "dstack", "column_stack"))
# Functions that take host data (everything else refuses a host array in its arguments).
_TAKE_HOST = frozenset(("isscalar", "ndim", "shape", "size", "result_type", "can_cast",
                        "min_scalar_type", "iinfo", "finfo", "dtype", "promote_types",
                        "issubdtype", "obj2sctype", "common_type", "binary_repr", "base_repr"))
# Functions that return a view or metadata: no kernel on a real GPU.
_NO_KERNEL = frozenset(("reshape", "transpose", "swapaxes", "moveaxis", "rollaxis", "squeeze",
                        "expand_dims", "broadcast_to", "broadcast_arrays", "atleast_1d",
                        "atleast_2d", "atleast_3d", "ravel", "empty", "empty_like",
                        "result_type", "can_cast", "shape", "ndim", "size", "isscalar",
                        "get_array_module", "real", "imag", "diagonal", "asnumpy"))


def _refuse_join(host):
    return TypeError("Only cupy arrays can be concatenated")


def _function(name, entries, np_fn):
    check = _names.checker(name, entries)
    refuse = _refuse_join if name in _JOINS else _core.unsupported
    take_host = name in _TAKE_HOST
    kernel = name not in _NO_KERNEL

    def function(*args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        _core.count(name, kernel=kernel)
        if not take_host:
            args = _core.device_arrays(args, refuse)
            kwargs = {k: _core.device_arrays(v, refuse) for k, v in kwargs.items()}
        with _np.errstate(all="ignore"):
            return _core.wrap(np_fn(*args, **kwargs))

    function.__name__ = name
    function.__qualname__ = name
    function.__module__ = "cupy"
    return function


# -- the functions with rules of their own --------------------------------------------------------

def _asarray(a, dtype=None, order=None, *, blocking=False):
    """Host -> device: a C-ordered copy; a device array of that dtype is returned as it is."""
    if type(a) is ndarray:
        if dtype is None or _np.dtype(dtype) == a.dtype:
            _core.count("asarray", kernel=False)
            return a
        return a.astype(dtype, order=order or "K")
    _core.count("asarray from host", kernel=False)
    return _core.host_to_device(_core.device_arrays(a), dtype, order or "K")


def _array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    _core.count("array" if type(obj) is ndarray else "array from host",
                kernel=type(obj) is ndarray and copy)
    with _core.inside():
        if type(obj) is ndarray:
            r = obj.astype(obj.dtype if dtype is None else dtype, order=order, copy=copy)
        else:
            r = _core.host_to_device(_core.device_arrays(obj), dtype, order)
        if ndmin > r.ndim:
            r = r.reshape((1,) * (ndmin - r.ndim) + r.shape)
    return r


def _asanyarray(a, dtype=None, order=None, *, blocking=False):
    return _asarray(a, dtype, order, blocking=blocking)


def _asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if type(a) is ndarray:
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    _core.count("asnumpy", kernel=False)
    a = _np.asarray(a, order=order)
    if out is not None:
        out[...] = a
        return out
    return a


def _get_array_module(*args):
    return _this if any(type(a) is ndarray for a in args) else _np


def _matmul(x1, x2, /, out=None, **kwargs):
    _core.count("matmul")
    if kwargs:
        raise NotImplementedError(f"the CuPy stand-in's matmul takes no {sorted(kwargs)}")
    a, b = _core.kernel_arg(x1), _core.kernel_arg(x2)
    if out is not None:
        _np.matmul(a, b, out=out._a)
        return out
    return _core.wrap(_np.ascontiguousarray(_np.matmul(a, b)))


def _is_available():
    return True


def _get_default_memory_pool():
    from .cuda import memory
    return memory.DEFAULT_POOL


def _get_default_pinned_memory_pool():
    from .cuda import memory
    return memory.DEFAULT_PINNED_POOL


def _show_config(*, _full=False):
    print(f"CuPy stand-in {__version__}")


_SPECIAL = {f.__name__[1:]: f for f in (_asarray, _array, _asanyarray, _asnumpy,
                                        _get_array_module, _matmul, _is_available,
                                        _get_default_memory_pool, _get_default_pinned_memory_pool,
                                        _show_config)}


def _checked(name, entries, fn):
    """``fn`` behind real CuPy's signature check for ``cupy.name``."""
    check = _names.checker(name, entries)
    if check is None:
        return fn

    def function(*args, **kwargs):
        check(*args, **kwargs)
        return fn(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__module__ = "cupy"
    return function


def _kernel_module():
    import importlib
    return importlib.import_module(__name__ + "._kernels")


_NAMES = _names.module_names("cupy")
_cache = {}
_this = None


def __getattr__(name):
    """The listed names only: NumPy's own objects (dtypes, constants) as they are, ufuncs and
    functions as the stand-in's, modules from the subpackages here."""
    if name in _cache:
        return _cache[name]
    entries = _NAMES.get(name)
    if entries is None:
        raise _names.no_attribute("cupy", name)
    e = entries[0]
    kind = e["kind"]
    if name in _SPECIAL:
        obj = _checked(name, entries, _SPECIAL[name])
    elif name in ("ElementwiseKernel", "ReductionKernel", "RawKernel", "RawModule", "fuse"):
        obj = getattr(_kernel_module(), name)
    elif kind == "module":
        import importlib
        try:
            obj = importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            raise NotImplementedError(f"the CuPy stand-in does not emulate cupy.{name} "
                                      f"({_names.REAL} have it)") from None
    elif all(x.get("numpy") for x in entries):
        obj = getattr(_np, name)  # cupy.float32 is numpy.float32; cupy.pi is numpy.pi
    elif kind == "ufunc" and name in _core.UFUNCS:
        obj = _core.UFUNCS[name]
    elif kind == "function" and callable(getattr(_np, name, None)):
        obj = _function(name, entries, getattr(_np, name))
    elif kind == "constant" and e.get("type") == "NoneType":
        obj = None  # cupy.newaxis
    else:
        raise NotImplementedError(f"the CuPy stand-in does not emulate cupy.{name} "
                                  f"({_names.REAL} have it)")
    _cache[name] = obj
    return obj


def __dir__():
    return sorted(set(_NAMES) | {"FAKE", "ndarray", "ufunc"})


import sys as _sys  # noqa: E402

_this = _sys.modules[__name__]
from . import cuda  # noqa: E402,F401  (as real CuPy: cupy.cuda is there after import cupy)
from . import lib  # noqa: E402,F401
