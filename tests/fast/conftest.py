"""The tests under tests/fast/ are about the fast path: they run it whatever MINIRES_OPS says.

Fixtures: ``using(**knobs)`` turns fast-path knobs for the rest of one test (``fast.using``);
``controllable_blas`` is threadpoolctl's handle on NumPy's BLAS, and a test that takes it is
skipped, with the reason, where threadpoolctl sees no BLAS (Accelerate, netlib).
"""
import contextlib

import pytest

import minires as mr
from minires import fast
from minires.fast import threads


@pytest.fixture(autouse=True)
def fast_ops():
    with mr.reference_ops(False):
        yield


@pytest.fixture
def using():
    with contextlib.ExitStack() as stack:
        yield lambda **knobs: stack.enter_context(fast.using(**knobs))


@pytest.fixture
def controllable_blas():
    """threadpoolctl's handle on the BLAS, or a skip saying why there is none."""
    libs = threads.blas_libraries()
    if libs is None:
        pytest.skip("threadpoolctl sees no BLAS in this process (Accelerate? netlib?): its "
                    "thread count cannot be set")
    return libs
