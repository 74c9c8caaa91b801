"""NumPy or CuPy: which array module an array lives in, moving arrays between devices, seeding.

Every op asks ``xp = get_array_module(a)`` and then writes ``xp.matmul``, ``xp.zeros``, ...,
so one code path serves both devices. CuPy is imported only when a GPU array is asked for:
a CPU-only machine never needs it installed.

Devices are named ``"cpu"`` (NumPy) and ``"gpu"`` (CuPy, the current CUDA device). CPU threads
and memory, which make the ops fast, live in ``minires/fast/`` (``threads.py``, ``memory.py``).
"""

import re

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


INSTALL = ("pip install 'minires[gpu]' (CuPy with its CUDA libraries; for CUDA 13, "
           "'minires[gpu-cuda13]'), or the CUDA Toolkit of CuPy's CUDA version")
_gpu_problem = ...  # not probed yet


def gpu_problem():
    """None when the GPU works, else one line saying what is missing and what to install.

    "Works" means what the first training step needs: CuPy imports, sees a CUDA device, compiles
    and runs an elementwise kernel (NVRTC, ``libnvrtc``) and a float32 matmul (cuBLAS,
    ``libcublas``). On a machine with only the driver, ``import cupy`` and the device count
    succeed and the first kernel fails, so both are tried here, once per process.
    """
    global _gpu_problem
    if _gpu_problem is ...:
        _gpu_problem = _probe_gpu()
    return _gpu_problem


def gpu_available():
    """True when CuPy sees a CUDA device and can compile a kernel and run a matmul on it."""
    return gpu_problem() is None


def cupy_packages():
    """The installed distributions that provide CuPy ("cupy-cuda12x 13.6.0", ...): more than one
    is a conflict, since each installs the same ``cupy`` package over the other."""
    from importlib import metadata

    found = set()
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith("cupy-"):
            found.add(f"{name} {dist.version}")
    return sorted(found)


def _first_line(e):
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0] if text else type(e).__name__


def _probe_gpu():
    try:
        cp = _import_cupy()
    except RuntimeError as e:
        return str(e)
    packages = cupy_packages()
    two = (f"; {len(packages)} CuPy packages are installed ({', '.join(packages)}): "
           "keep one (pip uninstall the others)" if len(packages) > 1 else "")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device" + two
    except Exception as e:
        return f"CuPy finds no usable CUDA driver or device ({_first_line(e)})" + two
    try:
        x = cp.arange(4, dtype=cp.float32)
        y = cp.ElementwiseKernel("T x", "T y", "y = x + (T)1", "minires_probe")(x)
        ok = float(y.sum()) == 10.0
    except Exception as e:
        return _missing("compile a CUDA kernel", "nvrtc", e) + two
    try:
        a = cp.ones((2, 2), dtype=cp.float32)
        ok = ok and float((a @ a).sum()) == 8.0
    except Exception as e:
        return _missing("run a matmul", "cublas", e) + two
    return None if ok else "CuPy computed wrong numbers in its self-test (a broken install?)" + two


def _missing(what, library, e):
    found = re.search(r"lib(\w+?)\.so[.\d]*", str(e))
    if found:
        return (f"CuPy cannot {what}: lib{found.group(1)} does not load ({_first_line(e)}); "
                f"to install it: {INSTALL}")
    return f"CuPy cannot {what} ({_first_line(e)}); if lib{library} is missing: {INSTALL}"


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
