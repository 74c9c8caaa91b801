"""cupy.linalg: NumPy's functions of the same names, on device arrays."""
import numpy as _np

from . import _module

__getattr__ = _module.restricted(
    "cupy.linalg", {"LinAlgError": _np.linalg.LinAlgError},
    lambda name, entries: _module.numpy_function("cupy.linalg", name, entries,
                                                 getattr(_np.linalg, name))
    if hasattr(_np.linalg, name) else None)
