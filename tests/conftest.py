"""Shared test fixtures.

Device: tests that take the ``device`` fixture run once per backend. By default that is "cpu"
and "gpu"; the GPU run is skipped, with the reason, when CuPy or a GPU is missing. Select one
with ``pytest --device gpu`` (or MINIRES_TEST_DEVICE=gpu) to run every such test on CuPy only:
then a GPU that does not work (``backend.gpu_problem()``: no CuPy, no device, a CUDA library
missing) stops the run at once with that one line, instead of skipping every test. The GPU runs
carry the ``gpu`` mark, so ``pytest --device gpu -m gpu`` runs only the tests that touch the
device. Without a GPU, ``PYTHONPATH=tests/fake_cupy pytest --device gpu -m gpu`` runs them on the
strict CuPy stand-in (``tests/fake_cupy``), as CI does.

Implementation: tests that take the ``impl`` fixture run once on the fast ops (``minires/fast/``,
the default) and once on the reference ops (``minires/functional/``), whatever MINIRES_OPS says.
The op tests that check against an oracle take it, so both paths meet the same specification.

Small trained nets: ``small_net("resnet20")`` is that net trained briefly with the degradation
recipe (``small_nets.py`` says how), trained on first use and shared by every test of the session.
"""
import os

# The tests multiply small matrices, where a second BLAS thread costs more than it saves, and on
# a busy machine OpenBLAS's spinning threads make them many times slower. Must be set before
# NumPy loads its BLAS; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import functools  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minires as mr  # noqa: E402
import small_nets  # noqa: E402
from minires import backend  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on the GPU backend (CuPy, or its stand-in)")
    if config.getoption("--device") == "gpu" and not backend.gpu_available():
        raise pytest.UsageError(f"--device gpu: {backend.gpu_problem()}")
    # pytest's default tmp_path root is shared by every pytest of this user and keeps only the
    # newest three runs: two suites running at once (two checkouts) delete each other's folders.
    # A private root per run avoids that; --basetemp still chooses one explicitly.
    if not config.option.basetemp:
        root = tempfile.mkdtemp(prefix="minires-pytest-")
        config.option.basetemp = config._minires_basetemp = root


def pytest_unconfigure(config):
    if getattr(config, "_minires_basetemp", None):
        shutil.rmtree(config._minires_basetemp, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption("--device", default=os.environ.get("MINIRES_TEST_DEVICE", "all"),
                     choices=["all", "cpu", "gpu"],
                     help="which backend the device-parametrised tests use")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--device")
        devices = ["cpu", "gpu"] if choice == "all" else [choice]
        metafunc.parametrize("device", devices, indirect=True)
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", IMPLS, indirect=True)


def pytest_collection_modifyitems(config, items):
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is not None and spec.params.get("device") == "gpu":
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def device(request):
    if request.param == "gpu" and not backend.gpu_available():
        pytest.skip(f"no working GPU here: {backend.gpu_problem()}")
    return request.param


IMPLS = ("fast", "reference")


@pytest.fixture
def impl(request):
    """ "fast" or "reference": the ops of that path run for the whole test."""
    with mr.reference_ops(request.param == "reference"):
        yield request.param


@pytest.fixture(scope="session")
def small_net():
    """small_net(name) -> ``nets.TrainedNet`` of ``name`` ("plain8", ..., "resnet56"), the
    instance of ``small_nets.py``. The tests that use one must leave the model as they found it."""
    return functools.cache(small_nets.train_net)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def on(device, a):
    """A NumPy array moved to ``device``."""
    return backend.to_device(np.asarray(a), device)
