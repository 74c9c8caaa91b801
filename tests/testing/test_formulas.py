"""The forward formulas ``python -m minires check`` uses (sliding windows, NumPy only) equal the
suite's nested loops (tests/oracles.py): two independent writings of each definition."""
import numpy as np
from hypothesis import given

from minires import testing as mt

import oracles
from opcheck import SETTINGS


@SETTINGS
@given(mt.conv_cases())
def test_conv2d_formula_equals_the_loops(case):
    np.testing.assert_allclose(mt.conv2d_formula(*case.arrays(), **case.params),
                               oracles.conv2d(*case.arrays(), **case.params), rtol=1e-12,
                               atol=1e-12)


@SETTINGS
@given(mt.pool_cases())
def test_pool_formulas_equal_the_loops(case):
    (x,), p = case.arrays(), case.params
    k, s, pad = p["kernel_size"], p["stride"] or p["kernel_size"], p["padding"]
    np.testing.assert_array_equal(mt.max_pool2d_formula(x, **p), oracles.max_pool2d(x, k, s, pad))
    np.testing.assert_allclose(mt.avg_pool2d_formula(x, **p), oracles.avg_pool2d(x, k, s, pad),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(mt.batch_norm_cases())
def test_batch_norm_formula_equals_the_loops(case):
    arrays, params = case.arrays(), case.kwargs()
    np.testing.assert_allclose(mt.batch_norm_formula(*arrays, **params),
                               oracles.batch_norm(*arrays, **params)[0], rtol=1e-12, atol=1e-12)


@SETTINGS
@given(mt.cross_entropy_cases())
def test_cross_entropy_formula_equals_the_loops(case):
    (z,), labels = case.arrays(), case.params["labels"]
    np.testing.assert_allclose(mt.cross_entropy_formula(z, labels),
                               oracles.cross_entropy(z, labels), rtol=1e-12)


@SETTINGS
@given(mt.pad_channels_cases())
def test_pad_channels_formula_equals_the_loops(case):
    (x,), p = case.arrays(), case.params
    np.testing.assert_array_equal(mt.pad_channels_formula(x, **p), oracles.pad_channels(x, **p))
