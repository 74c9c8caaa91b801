"""One switch chooses the ops: the fast twins by default, the reference ops with
MINIRES_OPS=reference (any case, spaces around it allowed) or inside ``minires.reference_ops()``;
the reference mode says once that it is the slow path; any other MINIRES_OPS value is said in one
line naming the variable and its choices, and the fast ops run: importing never fails over it."""

import os
import subprocess
import sys

import numpy as np
import pytest

import minires as mr
from minires import functional as F
from minires.fast import BlockedBatchNorm, BlockedReLU, ChunkedConv2d
from minires.functional.activation import ReLU
from minires.functional.conv import Conv2d
from minires.functional.norm import BatchNorm


def ops_that_ran():
    x = mr.Tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    y = F.conv2d(x, mr.Tensor(np.ones((1, 1, 1, 1))))
    z = F.batch_norm(y, None, None, None, None, training=True)
    return type(y.grad_fn), type(z.grad_fn), type(F.relu(z).grad_fn)


def test_the_fast_ops_run_by_default_and_reference_ops_switches_for_a_block():
    with mr.reference_ops(False):  # the default, whatever MINIRES_OPS says for this test run
        assert ops_that_ran() == (ChunkedConv2d, BlockedBatchNorm, BlockedReLU)
        with mr.reference_ops():
            assert ops_that_ran() == (Conv2d, BatchNorm, ReLU)
            with mr.reference_ops(False):
                assert ops_that_ran() == (ChunkedConv2d, BlockedBatchNorm, BlockedReLU)
            assert ops_that_ran() == (Conv2d, BatchNorm, ReLU)
        assert ops_that_ran() == (ChunkedConv2d, BlockedBatchNorm, BlockedReLU)


def test_reference_ops_switches_back_after_an_error():
    with mr.reference_ops(False):
        with pytest.raises(ZeroDivisionError), mr.reference_ops():
            1 / 0
        assert ops_that_ran()[0] is ChunkedConv2d


RUN = """
import numpy as np, minires as mr
from minires import functional as F
for _ in range(3):
    y = F.relu(F.conv2d(mr.Tensor(np.ones((1, 1, 3, 3))), mr.Tensor(np.ones((1, 1, 3, 3)))))
z = F.relu(mr.Tensor(np.ones(2), requires_grad=True))
print(type(y.grad_fn).__name__ if y.grad_fn else "none", type(z.grad_fn).__name__)
"""


def run(ops):
    env = dict(os.environ, MINIRES_OPS=ops)
    return subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True)


def test_minires_ops_reference_runs_the_reference_ops_and_says_so_once():
    out = run("reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["none", "ReLU"]
    lines = [line for line in out.stderr.splitlines() if "reference ops" in line]
    assert len(lines) == 1 and "slower" in lines[0]


def test_minires_ops_fast_is_the_default_and_silent():
    out = run("fast")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["none", "BlockedReLU"] and out.stderr == ""


@pytest.mark.parametrize("ops", ["REFERENCE", " reference ", "Reference\n"])
def test_minires_ops_ignores_case_and_surrounding_spaces(ops):
    out = run(ops)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["none", "ReLU"]


@pytest.mark.parametrize("ops", ["FAST", " fast", ""])
def test_minires_ops_fast_in_any_case_or_empty_is_the_default_and_silent(ops):
    out = run(ops)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.split() == ["none", "BlockedReLU"]


@pytest.mark.parametrize("ops", ["turbo", "bogus", "ref", "reference ops"])
def test_an_unknown_minires_ops_value_is_said_in_one_line_and_the_fast_ops_run(ops):
    # It was a ValueError traceback at import: a library should not refuse to import over its
    # environment, and "python -c 'import minires'" should not print a traceback.
    out = run(ops)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["none", "BlockedReLU"]
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("minires: MINIRES_OPS must be one of fast, reference (any case), "
                                 f"got {ops!r}: running the fast ops")


def test_importing_minires_with_an_unknown_minires_ops_prints_one_line_and_succeeds():
    env = dict(os.environ, MINIRES_OPS="bogus")
    out = subprocess.run([sys.executable, "-c", "import minires"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "MINIRES_OPS" in out.stderr and "'bogus'" in out.stderr
