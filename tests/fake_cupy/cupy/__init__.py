"""A NumPy-backed stand-in for CuPy, for dry runs of the GPU path on a machine without a GPU.

Put its folder first on the path (``PYTHONPATH=tests/fake_cupy``) and ``import cupy`` gives this
module: arrays are NumPy arrays of a subclass whose type says "cupy", so minires takes every GPU
branch (``backend.is_gpu_array``), moves data with ``cupy.asarray`` / ``.get()``, and asks
``cupy.cuda`` for a device. The numbers are NumPy's, so a dry run must give the CPU's results.

Like real CuPy, an elementwise op or matmul that mixes a device array with a host float array
raises TypeError: that is the implicit host copy a real GPU run would refuse (or pay for).
What this cannot check: kernels (``ElementwiseKernel``/``RawKernel`` raise), speed, memory.
"""

import types

import numpy as _np

__version__ = "0.0.0-fake-numpy"
FAKE = True  # lets scripts say "dry run" in their reports


class ndarray(_np.ndarray):
    """A NumPy array that minires takes for a CuPy one."""

    def get(self):
        return _np.array(self.view(_np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__":
            for a in inputs:
                if type(a) is _np.ndarray and a.ndim > 0 and a.dtype.kind in "fc":
                    raise TypeError(
                        f"fake cupy: {ufunc.__name__} mixes a device array with a host "
                        f"numpy.ndarray {a.shape} {a.dtype} (move it with cupy.asarray first)"
                    )
        plain = tuple(a.view(_np.ndarray) if isinstance(a, ndarray) else a for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(
                o.view(_np.ndarray) if isinstance(o, ndarray) else o for o in kwargs["out"]
            )
        result = getattr(ufunc, method)(*plain, **kwargs)
        return _fake(result)


ndarray.__module__ = "cupy"  # what backend.is_gpu_array looks at


def _fake(x):
    if isinstance(x, _np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    if isinstance(x, _np.generic):  # CuPy's reductions give 0-d device arrays, never host scalars
        return _np.asarray(x).view(ndarray)
    if isinstance(x, tuple):
        return tuple(_fake(v) for v in x)
    if isinstance(x, list):
        return [_fake(v) for v in x]
    return x


def asarray(a, dtype=None):
    """Host -> device: a copy (like cudaMemcpy), unless ``a`` is already on the device."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == dtype):
        return a
    return _np.array(a.get() if isinstance(a, ndarray) else a, dtype=dtype).view(ndarray)


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else _np.asarray(a)


def get_array_module(*arrays):
    return __import__(__name__) if any(isinstance(a, ndarray) for a in arrays) else _np


def _wrap(fn):
    def wrapped(*args, **kwargs):
        return _fake(fn(*args, **kwargs))

    wrapped.__name__ = getattr(fn, "__name__", "function")
    return wrapped


def __getattr__(name):
    """Every other NumPy name: functions return device arrays; dtypes, ufuncs and constants as they
    are."""
    obj = getattr(_np, name)
    if isinstance(obj, (type, _np.ufunc)) or not callable(obj):
        return obj
    return _wrap(obj)


lib = types.SimpleNamespace(
    stride_tricks=types.SimpleNamespace(as_strided=_wrap(_np.lib.stride_tricks.as_strided))
)
# host generator; results are host arrays
random = types.SimpleNamespace(default_rng=_np.random.default_rng)


class _Device:
    def __init__(self, device=0):
        self.id = device

    def synchronize(self):
        pass

    def use(self):
        pass

    @property
    def mem_info(self):
        return 8 << 30, 8 << 30


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(device):
        return {
            "name": b"fake GPU (NumPy on the CPU)",
            "totalGlobalMem": 8 << 30,
            "multiProcessorCount": 1,
        }

    @staticmethod
    def runtimeGetVersion():
        return 0


class _Event:
    def record(self, stream=None):
        import time

        self.t = time.perf_counter()

    def synchronize(self):
        pass


def _elapsed(a, b):
    return (b.t - a.t) * 1e3


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=_Runtime,
    Event=_Event,
    get_elapsed_time=_elapsed,
    Stream=types.SimpleNamespace(null=None),
)


def _no_kernels(*args, **kwargs):
    raise NotImplementedError("fake cupy cannot compile CUDA kernels")


ElementwiseKernel = RawKernel = RawModule = ReductionKernel = _no_kernels
