"""cupyx for the strict CuPy stand-in: ``scatter_add``, ``scatter_max``, ``scatter_min``
(cupy/_core/_routines_indexing.pyx _scatter_op: an integer-array index takes a host value, which
CuPy copies to the device; a basic index does not)."""
import numpy as _np

import cupy
from cupy import _core, _module


def _scatter(name, ufunc):
    def scatter(a, slices, value):
        _core.count("cupyx." + name)
        idx, advanced = _core._index(a._a, slices)
        if type(value) is _core.ndarray:
            v = value._a
        elif type(value) in _core.SCALARS or (advanced and type(value) is _np.ndarray):
            v = value
        else:
            raise _core.unsupported(value)
        ufunc.at(a._a, idx, v)
    scatter.__name__ = name
    return scatter


scatter_add = _scatter("scatter_add", _np.add)
scatter_max = _scatter("scatter_max", _np.maximum)
scatter_min = _scatter("scatter_min", _np.minimum)


def rsqrt(x, out=None):
    return cupy.reciprocal(cupy.sqrt(x), out=out)


__getattr__ = _module.restricted("cupyx", {})
