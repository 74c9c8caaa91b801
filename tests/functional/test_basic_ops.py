"""Every basic op property-tested over generated shapes, broadcasts and axes.

The checks are the rows of ``minires.testing.builtin_checks()`` that ``python -m minires check``
prints: NumPy's own function as the oracle, every gradient against central differences in
float64, float32 against float64. Then what those rows do not draw: Python scalars as operands,
vectors in matmul, integer-array indexing, casts and the errors for bad axes.
"""
import numpy as np
import pytest

import minires as mr
from minires import functional as F, testing as mt

from opcheck import EXAMPLES

BASIC_OPS = ("add", "sub", "mul", "div", "maximum", "matmul", "neg", "exp", "log", "pow", "sum",
             "mean", "max", "reshape", "transpose", "broadcast_to", "getitem")
CHECKS = dict(mt.builtin_checks())


def leaf(shape, seed, low=-2.0, high=2.0):
    a = np.random.default_rng(seed).uniform(low, high, size=shape)
    return mr.Tensor(a, requires_grad=True, dtype="float64")


@pytest.mark.parametrize("name", BASIC_OPS)
def test_basic_op_check_backward(name):
    report = CHECKS[name](max_examples=EXAMPLES)
    assert report, str(report)


@pytest.mark.parametrize("fn", [lambda x: 2.0 - x, lambda x: 3.0 / x, lambda x: x * 0.5,
                                lambda x: 1.0 + x, lambda x: x ** -1.5],
                         ids=["2 - x", "3 / x", "x * 0.5", "1 + x", "x ** -1.5"])
def test_ops_with_a_python_scalar_keep_the_tensor_dtype(fn):
    mt.check_backward(fn, mt.elementwise_cases(bounds=(0.2, 2.0)), max_examples=EXAMPLES)


def test_matmul_with_vectors_follows_numpy():
    A, v, w = leaf((3, 4), 0), leaf((4,), 1), leaf((3,), 2)
    assert (A @ v).shape == (3,) and (w @ A).shape == (4,) and (v @ v).shape == ()
    for fn in (lambda A, v, w: A @ v, lambda A, v, w: w @ A, lambda A, v, w: v @ v):
        assert mr.gradcheck(fn, A, v, w)


def test_indexing_slices_ints_and_integer_arrays():
    x = leaf((4, 5), 7)
    for fn in (lambda x: x[1], lambda x: x[:, 1:4:2], lambda x: x[::-1, -1],
               lambda x: x[None, 2, :3], lambda x: x[np.array([3, 0, 3])],
               lambda x: x[[0, 1, 1], [4, 4, 2]], lambda x: x[..., 2]):
        assert mr.gradcheck(fn, x)
    with pytest.raises(IndexError, match=r"shape \(4, 5\)"):
        x[9]
    with pytest.raises(TypeError, match="integer"):
        x[np.array([0.5])]


def test_cast_between_float32_and_float64_is_differentiable():
    x = leaf((3,), 3)
    # linear in x, so a large eps is exact up to float32 rounding of x +- eps
    assert mr.gradcheck(lambda x: (x.float() * 2).double(), x, eps=1e-2, atol=1e-4, rtol=1e-3)
    assert x.float().dtype == np.float32


def test_axis_errors_name_the_axis():
    x = leaf((2, 3), 0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        x.mean(axis=(0, 0))
    with pytest.raises(TypeError, match="exponent"):
        x ** x


def test_flatten_merges_trailing_dimensions():
    x = leaf((2, 3, 4, 5), 1)
    assert F.flatten(x).shape == (2, 60)
    assert mr.gradcheck(F.flatten, x)
