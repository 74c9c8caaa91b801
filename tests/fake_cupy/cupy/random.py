"""cupy.random: CuPy's legacy random functions on a NumPy RandomState; results on the device.

The numbers are NumPy's, not cuRAND's: a GPU run draws other numbers from the same seed
(minires draws everything on the host with one NumPy generator, ``backend.default_rng``).
"""
import numpy as _np

from . import _core, _module

_state = _np.random.RandomState(0)


def seed(seed=None):
    _state.seed(seed)


def _dtype(fn):
    def draw(*args, dtype=float, **kwargs):
        _core.count("random." + fn.__name__)
        return _core.wrap(_np.asarray(fn(*args, **kwargs)).astype(dtype, copy=False))
    draw.__name__ = fn.__name__
    return draw


def _draw(name):
    fn = getattr(_state, name)

    def draw(*args, **kwargs):
        _core.count("random." + name)
        args = _core.device_arrays(args, _core.unsupported)
        return _core.wrap(fn(*args, **kwargs))
    draw.__name__ = name
    return draw


def shuffle(a):
    _core.count("random.shuffle")
    _state.shuffle(a._a)


_EMULATED = {"seed": seed, "shuffle": shuffle}
for _n in ("rand", "randn", "random_sample", "random", "uniform", "normal", "standard_normal"):
    _EMULATED[_n] = _dtype(getattr(_state, "random_sample" if _n == "random" else _n))
for _n in ("randint", "permutation", "choice"):
    _EMULATED[_n] = _draw(_n)

__getattr__ = _module.restricted("cupy.random", _EMULATED)
