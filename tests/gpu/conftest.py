"""The tests under tests/gpu/ are about the GPU path: a real GPU, or the strict CuPy stand-in.

``gpu`` (fixture): the ``cupy`` module, or a skip saying why there is no working GPU here. On a
machine without one, ``PYTHONPATH=tests/fake_cupy python -m pytest --device gpu -m gpu`` runs
these on the stand-in; CI does so in the dry run of ``benchmarks/gpu_check.sh``
(``tests/engine/test_gpu_dry_run.py``). The tests that need the stand-in itself (what it refuses
beyond CuPy) take ``stand_in`` and are skipped on a real GPU.
"""
import pytest

from minires import backend


@pytest.fixture
def gpu():
    if not backend.gpu_available():
        pytest.skip(f"no working GPU here: {backend.gpu_problem()}")
    return backend._import_cupy()


@pytest.fixture
def stand_in(gpu):
    if not getattr(gpu, "FAKE", False):
        pytest.skip("checks the CuPy stand-in itself (tests/fake_cupy), not real CuPy")
    return gpu
