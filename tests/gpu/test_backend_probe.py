"""``backend.gpu_available()`` is True only when a kernel compiles and a matmul runs; otherwise
``gpu_problem()`` says in one line which CUDA library is missing and what to install.

No GPU needed: a stand-in ``cupy`` that fails the way a driver-only machine does (``import cupy``
and the device count work, the first kernel cannot load libnvrtc, the first matmul libcublas).
"""
import types

import pytest

from minires import backend


class Broken:
    """A cupy module whose kernels or matmuls fail as on a machine without the CUDA libraries."""

    def __init__(self, devices=1, kernel=None, matmul=None):
        self.float32 = "float32"
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
            getDeviceCount=lambda: devices))
        self.kernel_error, self.matmul_error = kernel, matmul

    def arange(self, n, dtype=None):
        return Value(list(range(n)))

    def ones(self, shape, dtype=None):
        if self.matmul_error:
            return Failing(self.matmul_error)
        return Value([1.0] * (shape[0] * shape[1]), 2.0 * shape[0] * shape[1])

    def ElementwiseKernel(self, *args, **kwargs):
        def run(x):
            if self.kernel_error:
                raise self.kernel_error
            return Value([v + 1 for v in x.values])
        return run


class Value:
    def __init__(self, values, matmul_sum=None):
        self.values, self.matmul_sum = values, matmul_sum

    def sum(self):
        return sum(self.values)

    def __matmul__(self, other):
        return types.SimpleNamespace(sum=lambda: self.matmul_sum)


class Failing:
    def __init__(self, error):
        self.error = error

    def __matmul__(self, other):
        raise self.error


@pytest.fixture
def probe(monkeypatch):
    def run(cupy, packages=("cupy-cuda12x 14.2.0",)):
        monkeypatch.setattr(backend, "_cupy", cupy)
        monkeypatch.setattr(backend, "_gpu_problem", ...)
        monkeypatch.setattr(backend, "cupy_packages", lambda: list(packages))
        return backend.gpu_problem()
    return run


def test_a_working_gpu_has_no_problem(probe):
    assert probe(Broken()) is None
    assert backend.gpu_available()


def test_no_device(probe):
    assert probe(Broken(devices=0)) == "CuPy sees no CUDA device"


def test_a_missing_nvrtc_is_named_with_what_to_install(probe):
    error = RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot "
                         "open shared object file: No such file or directory")
    problem = probe(Broken(kernel=error))
    assert problem.startswith("CuPy cannot compile a CUDA kernel: libnvrtc does not load")
    assert "pip install 'minires[gpu]'" in problem and "\n" not in problem
    assert not backend.gpu_available()


def test_a_missing_cublas_is_named_with_what_to_install(probe):
    problem = probe(Broken(matmul=ImportError("libcublas.so.12: cannot open shared object file")))
    assert problem.startswith("CuPy cannot run a matmul: libcublas does not load")
    assert "pip install 'minires[gpu]'" in problem


def test_two_cupy_packages_are_named(probe):
    problem = probe(Broken(devices=0), packages=["cupy-cuda12x 13.6.0", "cupy-cuda12x-ctk 1"])
    assert "2 CuPy packages are installed (cupy-cuda12x 13.6.0, cupy-cuda12x-ctk 1)" in problem


def test_without_cupy_the_problem_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "_gpu_problem", ...)

    def no_cupy():
        raise RuntimeError("device 'gpu' needs CuPy and a CUDA GPU: pip install 'minires[gpu]' "
                           "(importing cupy failed: No module named 'cupy')")
    monkeypatch.setattr(backend, "_import_cupy", no_cupy)
    assert "pip install 'minires[gpu]'" in backend.gpu_problem()
