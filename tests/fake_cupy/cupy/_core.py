"""The stand-in's device array and ufuncs: NumPy underneath, CuPy's rules on top.

``ndarray`` *wraps* a NumPy array (``._a``) instead of subclassing one, so nothing treats it as
a host array by accident: ``isinstance(a, numpy.ndarray)`` is False, it has no buffer, no
``.ctypes``, no ``__index__``, and converting it implicitly raises. Every refusal below is the one
real CuPy makes, with its exception type and message; the source of each is named beside it
(``cupy/_core/core.pyx``, ``_kernel.pyx``, ``_routines_indexing.pyx``, ``flags.pyx`` of CuPy 13.6
and 14.2, which agree on all of them).

Where CuPy's numbers or layout differ from NumPy's, the stand-in follows CuPy:
- elementwise results (ufuncs, operators, kernels) are C-ordered, whatever the inputs' order;
- ``get()`` and host-to-device copies are C-ordered (F for an F-ordered array);
- integer-*array* indices wrap around (``a[[1, 3]]`` of three elements is ``a[[1, 0]]``), while
  a scalar index out of bounds raises IndexError;
- reductions and scalar indexing return 0-d device arrays, never host scalars;
- no floating-point warnings (a kernel does not report a division by zero).

Every call into the stand-in from outside it is counted (``CALLS``, and ``KERNELS`` for those
that launch a GPU kernel on a real GPU): ``benchmarks/gpu_calls.py`` reads them.
"""
import collections
import hashlib
import os
import threading

import numpy as _np

from . import _names

# -- counting ---------------------------------------------------------------------------------

CALLS = collections.Counter()  # every call into the stand-in's API from outside it
KERNELS = collections.Counter()  # the calls among them that launch a kernel on a real GPU
_state = threading.local()


def count(name, kernel=True):
    if getattr(_state, "depth", 0) == 0:
        CALLS[name] += 1
        if kernel:
            KERNELS[name] += 1
            if name not in _COMPILED:
                compiled("builtin", name)


_COMPILED = set()


def compiled(kind, key):
    """A kernel's first use: real CuPy compiles it (NVRTC) and caches the binary in
    ``CUPY_CACHE_DIR``; the stand-in writes a file there too (when the variable is set), so a
    dry run can count what a cold start compiles. (CuPy compiles one kernel per dtype; the
    stand-in one per operation.)"""
    if key in _COMPILED:
        return
    _COMPILED.add(key)
    cache = os.environ.get("CUPY_CACHE_DIR")
    if cache:
        os.makedirs(cache, exist_ok=True)
        digest = hashlib.sha1(repr(key).encode()).hexdigest()
        with open(os.path.join(cache, f"stand-in-{kind}-{digest}.cubin"), "w") as f:
            f.write(repr(key))


class inside:
    """``with inside():`` the stand-in's own calls, uncounted."""

    def __enter__(self):
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, *exc):
        _state.depth -= 1


def reset_counts():
    CALLS.clear()
    KERNELS.clear()


# -- what a kernel accepts --------------------------------------------------------------------

# cupy/_core/_scalar.pyx: _python_scalar_type_set, _numpy_scalar_type_set (type(x) in set).
PYTHON_SCALARS = frozenset((int, float, bool, complex))
NUMPY_SCALARS = frozenset(_np.dtype(c).type for c in "?bhilqBHILQefdFD")
SCALARS = PYTHON_SCALARS | NUMPY_SCALARS


def unsupported(x):
    """cupy/_core/_kernel.pyx _preprocess_arg (13) and _scalar.pyx CScalar (14)."""
    return TypeError("Unsupported type %s" % type(x))


def kernel_arg(x):
    """The NumPy value of one input of a kernel: a device array or a scalar, nothing else."""
    if type(x) is ndarray:
        return x._a
    if type(x) in SCALARS:
        return x
    raise unsupported(x)


def device_arrays(x, refuse=None):
    """``x`` with every device array inside (lists, tuples) replaced by its NumPy array; a host
    array raises ``refuse(host)`` (is kept, without ``refuse``)."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t is _np.ndarray:
        if refuse is None:
            return x
        raise refuse(x)
    if t is list or t is tuple:
        return t(device_arrays(v, refuse) for v in x)
    return x


def wrap(r):
    """NumPy results -> device arrays (a NumPy scalar becomes a 0-d device array)."""
    t = type(r)
    if t is _np.ndarray:
        return _from_numpy(r)
    if isinstance(r, _np.generic):
        return _from_numpy(_np.asarray(r))
    if t is tuple or t is list:
        return t(wrap(v) for v in r)
    return r


def _from_numpy(a):
    d = object.__new__(ndarray)
    d._a = a
    return d


def host_to_device(a, dtype=None, order="K"):
    """cupy/_core/core.pyx _array_default: a copy, C-ordered unless the source is F-ordered."""
    if order is None or order[0] in "KAka":
        order = "F" if isinstance(a, _np.ndarray) and a.flags.fnc else "C"
    host = _np.array(a, dtype=dtype, order=order, copy=True)
    if host.dtype.kind not in "biufc":
        raise ValueError("Unsupported dtype %s" % host.dtype)
    return _from_numpy(host)


# -- flags and memory pointers ------------------------------------------------------------------

class Flags:
    """cupy/_core/flags.pyx: C_CONTIGUOUS, F_CONTIGUOUS, OWNDATA, and nothing else.

    There is no ``writeable``: reading it raises CuPy's AttributeError. (Real CuPy builds a fresh
    Flags object on every ``a.flags``, so *setting* ``a.flags.writeable = False`` there is
    silently lost and protects nothing; here it raises the same AttributeError, so code that
    relies on it is found.)
    """

    __slots__ = ("_c_contiguous", "_f_contiguous", "_owndata")

    def __init__(self, c_contiguous, f_contiguous, owndata):
        self._c_contiguous, self._f_contiguous = c_contiguous, f_contiguous
        self._owndata = owndata

    c_contiguous = property(lambda self: self._c_contiguous)
    f_contiguous = property(lambda self: self._f_contiguous)
    owndata = property(lambda self: self._owndata)
    fnc = property(lambda self: self.f_contiguous and not self.c_contiguous)
    forc = property(lambda self: self.f_contiguous or self.c_contiguous)

    def __getitem__(self, name):
        if name == "C_CONTIGUOUS":
            return self.c_contiguous
        if name == "F_CONTIGUOUS":
            return self.f_contiguous
        if name == "OWNDATA":
            return self.owndata
        raise KeyError("%s is not defined for cupy.ndarray.flags" % name)

    def __repr__(self):
        return "\n".join(f"  {n} : {self[n]}" for n in ("C_CONTIGUOUS", "F_CONTIGUOUS", "OWNDATA"))


Flags.__module__ = "cupy._core.flags"


class MemoryPointer:
    """What ``a.data`` gives: an address on the device (here, the host address underneath)."""

    __slots__ = ("ptr", "device_id")

    def __init__(self, ptr):
        self.ptr, self.device_id = ptr, 0

    def __int__(self):
        return self.ptr


MemoryPointer.__module__ = "cupy.cuda.memory"


# -- indexing ---------------------------------------------------------------------------------

def _index(a, key):
    """(NumPy index, advanced?) for CuPy's rules: host arrays and lists in an index are copied to
    the device (allowed), scalar indices are bounds-checked with CuPy's message, and integer
    arrays wrap around (cupy/_core/_routines_indexing.pyx)."""
    parts = list(key) if type(key) is tuple else [key]
    out, advanced = [], False
    for p in parts:
        t = type(p)
        if t is ndarray:
            p = p._a
        elif t is list or t is tuple:
            p = _np.asarray(device_arrays(p))  # a[[1, 2]]
            if p.size == 0:
                p = p.astype(_np.int32)
        elif t is bool or t is _np.bool_:
            p = _np.asarray(p)
        out.append(p)
    # which axis each part indexes
    consumed = sum(0 if (p is None or p is Ellipsis) else
                   (p.ndim if isinstance(p, _np.ndarray) and p.dtype == bool else 1) for p in out)
    axis, fixed = 0, []
    for p in out:
        if p is Ellipsis:
            axis += a.ndim - consumed
            fixed.append(p)
            continue
        if p is None:
            fixed.append(p)
            continue
        if isinstance(p, _np.ndarray):
            advanced = True
            if p.dtype == bool:
                axis += max(p.ndim, 1)
                fixed.append(p)
                continue
            if p.dtype.kind not in "iu":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            if axis < a.ndim and a.shape[axis] > 0:
                p = p % a.shape[axis]  # CuPy wraps out-of-bounds integer arrays around
            fixed.append(p)
            axis += 1
            continue
        if isinstance(p, slice):
            fixed.append(p)
            axis += 1
            continue
        if isinstance(p, (int, _np.integer)):
            if axis < a.ndim:
                n = a.shape[axis]
                i = int(p) + n if p < 0 else int(p)
                if not 0 <= i < n:
                    raise IndexError("Index %s is out of bounds for axis %s with size %s"
                                     % (p, axis, n))
            fixed.append(p)
            axis += 1
            continue
        # anything else: NumPy says what is wrong with it, as CuPy does
        fixed.append(p)
        axis += 1
    return tuple(fixed), advanced


# -- the device array ---------------------------------------------------------------------------

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")


def _should_use_rop(x, y):
    """cupy/_core/core.pyx _should_use_rop: hand the operator to ``y`` (e.g. a minires Tensor,
    whose ``__array_ufunc__`` is None)."""
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _binary(ufname):
    def op(x, y):
        if type(y) is ndarray or not _should_use_rop(x, y):
            return UFUNCS[ufname](x, y)
        return NotImplemented

    def rop(y, x):
        return UFUNCS[ufname](x, y)

    def iop(x, y):
        return UFUNCS[ufname](x, y, out=x)

    return op, rop, iop


def _compare(ufname):
    def op(x, y):
        if type(y) is ndarray:
            return UFUNCS[ufname](x, y)
        if _should_use_rop(x, y):
            return NotImplemented
        if type(y) is _np.ndarray and y.ndim == 0:
            y = y.item()  # core.pyx __richcmp__: "Workaround for numpy<1.13"
        return UFUNCS[ufname](x, y)
    return op


class ndarray:
    """A device array of the stand-in (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not emulate memptr= or strides=")
        count("ndarray", kernel=False)
        self._a = _np.empty(shape, dtype=dtype, order=order)

    # -- properties --
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: _from_numpy(self._a.T))
    real = property(lambda self: wrap(self._a.real))
    imag = property(lambda self: wrap(self._a.imag))
    data = property(lambda self: MemoryPointer(self._a.__array_interface__["data"][0]))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def flags(self):
        f = self._a.flags
        return Flags(f.c_contiguous, f.f_contiguous, f.owndata)

    @property
    def base(self):
        b = self._a.base
        return None if b is None else (_from_numpy(b) if type(b) is _np.ndarray else None)

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    # -- conversion: explicit only --
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)  # core.pyx __array__

    def get(self, stream=None, order="C", out=None, blocking=True):
        count("get", kernel=False)
        if order in ("A", "a"):
            order = "F" if self._a.flags.fnc else "C"
        if out is not None:
            if type(out) is not _np.ndarray:
                raise TypeError("Only numpy.ndarray can be used as out")
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        count("set", kernel=False)
        if type(arr) is not _np.ndarray:
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError("Shape mismatch. Old shape: {}, new shape: {}".format(
                self.shape, arr.shape))
        self._a[...] = arr

    def item(self):
        count("item", kernel=False)
        return self._a.item()

    def tolist(self):
        count("tolist", kernel=False)
        return self._a.tolist()

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        return bool(self.get())

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __reduce__(self):
        from . import array
        return array, (self.get(),)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # -- container --
    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return self._a.shape[0]

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __getitem__(self, key):
        idx, advanced = _index(self._a, key)
        count("getitem", kernel=advanced)
        r = self._a[idx]
        if isinstance(r, _np.generic):  # an element: CuPy gives a 0-d view of it, not a copy
            r = self._a[idx + (Ellipsis,)]
        return _from_numpy(r)

    def __setitem__(self, key, value):
        idx, advanced = _index(self._a, key)
        count("setitem")
        t = type(value)
        if t is ndarray:
            v = value._a
        elif t is _np.ndarray:
            if not advanced and value.shape != ():  # core.pyx fill(), via _scatter_op
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            v = value  # an advanced index copies a host value to the device (core.array)
        elif t is list or t is tuple:
            if not advanced:
                raise unsupported(value)
            v = _np.asarray(value)
        elif t in SCALARS:
            v = value
        else:
            raise unsupported(value)
        self._a[idx] = v

    # -- methods with special rules; the rest come from the listing (``__getattr__``) --
    def fill(self, value):
        count("fill")
        if type(value) is ndarray:
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        elif type(value) is _np.ndarray:
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif type(value) not in SCALARS:
            raise unsupported(value)
        self._a.fill(value)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        same = _np.dtype(dtype) == self._a.dtype
        count("astype", kernel=copy or not same)
        if not copy and same:
            return self
        return _from_numpy(self._a.astype(dtype, order=order, casting=casting or "unsafe"))

    def __getattr__(self, name):
        method = METHODS.get(name)
        if method is None:
            raise AttributeError(f"'ndarray' object has no attribute '{name}'")
        return method.__get__(self)

    # -- NumPy protocols, as cupy/_core/core.pyx answers them --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        func = UFUNCS.get(ufunc.__name__)
        if func is None:
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method)
        for x in inout:
            if not (type(x) is ndarray or type(x) in SCALARS or isinstance(x, _np.ndarray)):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal",
                              "not_equal"):
            inputs = tuple(x.item() if isinstance(x, _np.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import cupy
        target = cupy
        try:
            for part in func.__module__.split(".")[1:]:
                target = getattr(target, part)
            cupy_func = getattr(target, func.__name__)
        except (AttributeError, NotImplementedError):
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, _np.ndarray)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    def __neg__(self):
        return UFUNCS["negative"](self)

    def __pos__(self):
        return UFUNCS["positive"](self)

    def __abs__(self):
        return UFUNCS["absolute"](self)

    def __invert__(self):
        return UFUNCS["invert"](self)

    def __matmul__(self, other):
        if type(other) is not ndarray and _should_use_rop(self, other):
            return NotImplemented
        from . import matmul
        return matmul(self, other)

    def __rmatmul__(self, other):
        from . import matmul
        return matmul(other, self)

    def __divmod__(self, other):
        return UFUNCS["divmod"](self, other)

    def __pow__(self, other, mod=None):
        if type(other) is not ndarray and _should_use_rop(self, other):
            return NotImplemented
        return UFUNCS["power"](self, other)

    def __rpow__(self, other):
        return UFUNCS["power"](other, self)

    def __ipow__(self, other):
        return UFUNCS["power"](self, other, out=self)

    __lt__ = _compare("less")
    __le__ = _compare("less_equal")
    __eq__ = _compare("equal")
    __ne__ = _compare("not_equal")
    __gt__ = _compare("greater")
    __ge__ = _compare("greater_equal")


for _op, _uf in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                 ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                 ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                 ("lshift", "left_shift"), ("rshift", "right_shift")):
    _f, _r, _i = _binary(_uf)
    setattr(ndarray, f"__{_op}__", _f)
    setattr(ndarray, f"__r{_op}__", _r)
    setattr(ndarray, f"__i{_op}__", _i)

ndarray.__module__ = "cupy"  # what minires.backend.is_gpu_array looks at
ndarray.__qualname__ = "ndarray"


# -- the methods of the listing -----------------------------------------------------------------

# Methods that return a view of the same memory: no kernel on a real GPU.
VIEWS = frozenset(("reshape", "transpose", "swapaxes", "view", "squeeze", "diagonal", "ravel",
                   "real", "imag", "conj", "conjugate"))
# Methods whose result lives on the host.
HOST = frozenset(("tobytes", "tofile", "dump", "dumps", "tolist", "item"))


def _method(name, entries):
    check = _names.checker(name, entries)

    def method(self, *args, **kwargs):
        if check is not None:
            check(*args, **kwargs)
        args = device_arrays(args, unsupported)
        kwargs = {k: device_arrays(v, unsupported) for k, v in kwargs.items()}
        if name == "reshape":
            kwargs.pop("copy", None)
        try:
            fn = getattr(self._a, name)
        except AttributeError:
            raise NotImplementedError(f"the CuPy stand-in does not emulate ndarray.{name} "
                                      f"({_names.REAL} have it)") from None
        r = fn(*args, **kwargs)
        if name in VIEWS or name in HOST:
            count(name, kernel=name in VIEWS and type(r) is _np.ndarray
                  and not _np.may_share_memory(r, self._a))
        else:
            count(name)
        if name in HOST:
            return r
        if type(r) is _np.ndarray and r is self._a:  # in-place methods (sort) return None
            return self
        return wrap(r)

    method.__name__ = name
    return method


METHODS = {}
for _name, _entries in _names.ndarray_names().items():
    if _name.startswith("__") or _entries[0]["kind"] != "method" or _name in ndarray.__dict__:
        continue
    METHODS[_name] = _method(_name, _entries)


# -- ufuncs -----------------------------------------------------------------------------------

class ufunc:
    """A CuPy ufunc over NumPy's: CuPy's keywords (out, dtype, casting), CuPy's refusals, and
    C-ordered results (cupy/_core/_kernel.pyx ufunc.__call__)."""

    def __init__(self, short, entries):
        e = entries[0]
        self.name, self.nin, self.nout = e["name"], e["nin"], e["nout"]
        self.nargs = self.nin + self.nout
        self.__name__ = short
        self._np = getattr(_np, short)
        self._info = e

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, **kwargs):
        count(self.__name__)
        out = kwargs.pop("out", None)
        where = kwargs.pop("_where", None)
        dtype = kwargs.pop("dtype", None)
        casting = kwargs.pop("casting", "same_kind")
        if kwargs:
            raise TypeError("Wrong arguments %s" % kwargs)
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError("Wrong number of arguments for {!r}. It must be either {} or {} "
                            "(with outputs), but given {}.".format(self.name, self.nin,
                                                                   self.nargs, len(args)))
        ins, outs = args[:self.nin], args[self.nin:]
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            if isinstance(out, tuple):
                if len(out) != self.nout:
                    raise ValueError("The 'out' tuple must have exactly one entry per ufunc "
                                     "output")
                outs = out
            elif self.nout != 1:
                raise ValueError("'out' must be a tuple of arrays")
            else:
                outs = (out,)
        ins = [kernel_arg(a) for a in ins]
        outs = [o for o in outs if o is not None]
        for o in outs:
            if type(o) is not ndarray:
                raise TypeError("Output arguments must be cupy.ndarray")
        kw = {"casting": casting}
        if dtype is not None:
            kw["dtype"] = dtype
        if where is not None:
            kw["where"] = kernel_arg(where)
        if outs:
            kw["out"] = tuple(o._a for o in outs)
        else:
            kw["order"] = "C"  # CuPy allocates every elementwise output C-ordered
        with _np.errstate(all="ignore"):
            r = self._np(*ins, **kw)
        if outs:
            return outs[0] if self.nout == 1 else tuple(outs)
        return wrap(r)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        if self.name == "cupy_add":
            return array.sum(axis, dtype, out, keepdims)
        if self.name == "cupy_multiply":
            return array.prod(axis, dtype, out, keepdims)
        raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")

    def accumulate(self, array, axis=0, dtype=None, out=None):
        if self.name == "cupy_add":
            return array.cumsum(axis, dtype, out)
        if self.name == "cupy_multiply":
            return array.cumprod(axis, dtype, out)
        raise NotImplementedError(f"`{self.name}.accumulate` is not supported yet")

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        if self.name == "cupy_add":
            raise NotImplementedError("the CuPy stand-in does not emulate add.reduceat")
        raise NotImplementedError(f"`{self.name}.reduceat` is not supported yet")

    def at(self, a, indices, b=None):
        if not self._info.get("at"):
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        count(self.__name__ + ".at")
        idx, _ = _index(a._a, indices)
        value = b._a if type(b) is ndarray else b
        self._np.at(a._a, idx, value)

    def outer(self, A, B, **kwargs):
        from . import array
        A, B = array(A), array(B)
        return self(A.reshape(A.shape + (1,) * B.ndim), B.reshape((1,) * A.ndim + B.shape),
                    **kwargs)


ufunc.__module__ = "cupy"

UFUNCS = {}
for _name, _entries in _names.module_names("cupy").items():
    if _entries[0]["kind"] == "ufunc" and hasattr(_np, _name):
        UFUNCS[_name] = ufunc(_name, _entries)

