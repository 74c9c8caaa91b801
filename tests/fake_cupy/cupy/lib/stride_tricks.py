"""cupy.lib.stride_tricks: ``as_strided(x, shape=None, strides=None)``, CuPy's signature (no
``subok``, no ``writeable``: a view of device memory is always writeable)."""
import numpy as _np

from .. import _core, _module, _names

_NAMES = _names.module_names("cupy.lib.stride_tricks")
_check = _names.checker("as_strided", _NAMES["as_strided"])


def as_strided(x, shape=None, strides=None):
    _check(x, shape, strides)
    _core.count("as_strided", kernel=False)
    a = _core.device_arrays(x, _core.unsupported)
    return _core.wrap(_np.lib.stride_tricks.as_strided(a, shape, strides))


__getattr__ = _module.restricted("cupy.lib.stride_tricks", {})
