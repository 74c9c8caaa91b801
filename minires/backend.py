"""NumPy or CuPy: which array module an array lives in, moving arrays between devices, seeding.

Every op asks ``xp = get_array_module(a)`` and then writes ``xp.matmul``, ``xp.zeros``, ...,
so one code path serves both devices. CuPy is imported only when a GPU array is asked for:
a CPU-only machine never needs it installed.

Devices are named ``"cpu"`` (NumPy) and ``"gpu"`` (CuPy, the current CUDA device). CPU threads
and memory, which make the ops fast, live in ``minires/fast/`` (``threads.py``, ``memory.py``).
"""

import numpy as np

DEVICES = ("cpu", "gpu")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float32)

_cupy = None


def _import_cupy():
    """Import CuPy on first use, with an error that says how to get it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'gpu' needs CuPy and a CUDA GPU: pip install 'minires[gpu]' "
                f"(importing cupy failed: {e})"
            ) from None
        _cupy = cupy
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = _import_cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def is_gpu_array(a):
    # Checked by module name so that CPU code never imports CuPy.
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(a):
    """``cupy`` for a CuPy array, else ``numpy``."""
    return _import_cupy() if is_gpu_array(a) else np


def device_of(a):
    return "gpu" if is_gpu_array(a) else "cpu"


def check_device(device):
    """Return the canonical device name, or raise naming the accepted ones."""
    if device == "cuda":
        device = "gpu"
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def to_device(a, device):
    """The array ``a`` on ``device`` (the same object when it is already there)."""
    device = check_device(device)
    if device_of(a) == device:
        return a
    if device == "gpu":
        return _import_cupy().asarray(a)
    return a.get()


def as_numpy(a):
    """A NumPy array holding the values of ``a`` (copied from the GPU when needed)."""
    return a.get() if is_gpu_array(a) else np.asarray(a)


def scatter_add(a, index, values):
    """``a[index] += values`` with repeated indices accumulated (``np.add.at``), in place."""
    if is_gpu_array(a):
        import cupyx

        cupyx.scatter_add(a, index, values)
    else:
        np.add.at(a, index, values)


def check_float_dtype(dtype, what="dtype"):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{what} must be float32 or float64, got {dtype}")
    return dtype


# One generator for everything random in minires (weight init, shuffling, augmentation) unless a
# caller passes its own. It starts from a fixed seed, so a fresh process gives the same numbers.
_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed minires's global random generator; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_rng():
    """The global generator that :func:`manual_seed` reseeds."""
    return _generator
