"""The tests under tests/fast/ are about the fast path: they run it whatever MINIRES_OPS says."""
import pytest

import minires as mr


@pytest.fixture(autouse=True)
def fast_ops():
    with mr.reference_ops(False):
        yield
