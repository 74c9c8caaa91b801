"""``python -m minires check``: a table for the built-in ops, a learner's op from a file, the rerun
of one case, exit status 1 on a failure, and one-line errors for what is not an op."""
import sys

import pytest

from minires.cli import main

LEAKY = '''
import numpy as np
import minires as mr


class LeakyReLU(mr.Function):
    def __init__(self, slope=0.1):
        self.slope = slope

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.slope * x)

    def backward(self, gy):
        return gy * np.where(self.x > 0, 1, self.slope).astype(gy.dtype)


class LeakyReLUFloat64(LeakyReLU):
    def backward(self, gy):
        return gy * np.where(self.x > 0, 1.0, self.slope)


class NeedsSlope(LeakyReLU):
    def __init__(self, slope):
        self.slope = slope


def double(x):
    return x * 2


leaky_02 = LeakyReLU(0.2)


SLOPE = 0.1


class NotAnOp:
    pass
'''


@pytest.fixture
def ops_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the file's folder
    path = tmp_path / "my_ops.py"
    path.write_text(LEAKY)
    return str(path)


def check(*argv):
    return main(["check", *argv])


def test_built_in_ops_print_a_table_and_pass(capsys):
    assert check("relu", "pad_channels", "--examples", "3") == 0
    out = capsys.readouterr().out
    header, *rows, last = out.strip().splitlines()
    assert header.split()[:4] == ["op", "examples", "result", "slowest"]
    assert [r.split()[0] for r in rows] == ["relu", "relu.reference", "relu.idempotence",
                                            "pad_channels"]
    assert all(r.split()[2] == "ok" for r in rows) and last.endswith("all passed")


def test_a_learner_op_from_a_file(ops_file, capsys):
    assert check(f"{ops_file}:LeakyReLU", f"{ops_file}:double", "--examples", "5") == 0
    assert "all passed" in capsys.readouterr().out


def test_a_failure_exits_1_with_the_report_and_the_line_that_reruns_it(ops_file, capsys):
    assert check(f"{ops_file}:LeakyReLUFloat64", "--examples", "5") == 1
    out = capsys.readouterr().out
    assert "FAILED: a dtype is wrong" in out and "is float64 for a float32 input" in out
    line = [x for x in out.splitlines() if "python -m minires check" in x][0].strip()
    case = line.split("--case ", 1)[1].strip('"')
    assert case == "Case({'x': Values((1,), seed=0)})"
    assert check(f"{ops_file}:LeakyReLUFloat64", "--case", case) == 1
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1:3] == ["1", "FAILED:"]  # that one case, nothing searched


@pytest.mark.parametrize("target, words", [
    ("nosuch.py:Op", "check: no such file: nosuch.py"),
    ("{f}:Leaky", "has no 'Leaky'; it defines LeakyReLU, LeakyReLUFloat64, NeedsSlope, double"),
    ("{f}:SLOPE", "SLOPE is a float, not an op"),
    ("{f}:NotAnOp", "is a class (NotAnOp is not a Function subclass), not an op"),
    ("{f}:leaky_02", "is a LeakyReLU instance (give the class: a Function is used once)"),
    ("{f}:NeedsSlope", "NeedsSlope.__init__ needs slope: give it a default"),
    ("conv3d", "'conv3d' is not a built-in op (add, avg_pool2d,"),
    ("no_such_module_here:Op", "check: cannot import no_such_module_here"),
])
def test_what_is_not_an_op_is_a_one_line_error(ops_file, target, words):
    with pytest.raises(SystemExit) as info:
        check(target.format(f=ops_file))
    message = str(info.value.code)
    assert words in message and "\n" not in message


def test_a_file_that_fails_to_import_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    bad = tmp_path / "bad_ops.py"
    bad.write_text("import numpy as np\nx = np.nope\n")
    with pytest.raises(SystemExit, match=r"importing .*bad_ops.py failed: AttributeError"):
        check(f"{bad}:Op")


def test_case_needs_one_check_and_a_case(ops_file):
    with pytest.raises(SystemExit, match="--case needs exactly one check, got 3"):
        check("relu", "--case", "Case({'x': Values((1,))})")
    with pytest.raises(SystemExit, match="--case is not a Case"):
        check(f"{ops_file}:LeakyReLU", "--case", "Case(")


def test_list_names_every_built_in_check(capsys):
    assert check("--list") == 0
    names = capsys.readouterr().out.split()
    assert {"conv2d", "conv2d.reference", "batch_norm", "max_pool2d", "getitem",
            "conv2d.adjoint", "batch_norm.invariance"} <= set(names)
