"""The strategies draw what they promise: valid geometries, the awkward ones among them, values
with the stated bounds, and examples that print as Python which rebuilds them."""
import numpy as np
import pytest
from hypothesis import find, given, settings, strategies as st

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.conv import check_geometry

from opcheck import SETTINGS

FIND = settings(database=None, derandomize=True, max_examples=2000)


@SETTINGS
@given(mt.conv_geometries())
def test_conv_geometries_are_valid_for_conv2d(g):
    OH, OW = check_geometry("test", (g["N"], g["C_in"], g["H"], g["W"]), g["kh"], g["kw"],
                            g["stride"], g["padding"])
    assert OH >= 1 and OW >= 1


@pytest.mark.parametrize("what, awkward", [
    ("a 1x1 image under a 3x3 kernel", lambda g: g["H"] == g["W"] == 1 and g["kh"] == 3),
    ("a kernel as large as the padded input", lambda g: g["H"] + 2 * g["padding"] == g["kh"] > 1),
    ("stride 2 leaving the last row out", lambda g: g["stride"] == 2 and g["H"] % 2 == 1
     and (g["H"] + 2 * g["padding"] - g["kh"]) % 2 == 1),
    ("a window wholly in the padding", lambda g: g["padding"] >= g["kh"] and g["H"] >= 1),
])
def test_conv_geometries_reach_the_awkward_cases(what, awkward):
    assert awkward(find(mt.conv_geometries(), awkward, settings=FIND)), what


@SETTINGS
@given(mt.pool_cases())
def test_pool_cases_are_valid_and_have_no_ties(case):
    x, = case.arrays()
    F.max_pool2d(mr.Tensor(x), **case.params)  # accepted
    gaps = np.diff(np.sort(x.ravel()))
    assert gaps.size == 0 or gaps.min() > 1e-3


@SETTINGS
@given(mt.batch_norm_cases())
def test_batch_norm_cases_are_valid_for_batch_norm(case):
    x, weight, bias = case.arrays()
    assert x.size // x.shape[1] >= 2 and np.abs(weight).min() >= 0.5
    F.batch_norm(*map(mr.Tensor, (x, weight, bias)), **case.kwargs())
    assert (case.params["running_mean"] is None) == case.params["training"]


@SETTINGS
@given(st.tuples(st.integers(1, 4), st.integers(1, 4)), mt.seeds)
def test_values_are_reproducible_and_respect_their_options(shape, seed):
    plain, margin = mt.Values(shape, seed), mt.Values(shape, seed, margin=0.3)
    distinct = mt.Values(shape, seed, bounds=(5.0, 6.0), distinct=True)
    np.testing.assert_array_equal(plain.numpy(), mt.Values(shape, seed).numpy())
    assert np.all(np.abs(plain.numpy()) <= 2.0) and np.all(np.abs(margin.numpy()) >= 0.3)
    d = distinct.numpy()
    assert np.all((5.0 <= d) & (d <= 6.0)) and len(np.unique(d)) == d.size
    assert plain.numpy(np.float32).dtype == np.float32


@SETTINGS
@given(mt.conv_cases())
def test_a_case_prints_as_python_that_rebuilds_it(case):
    again = eval(repr(case), {"Case": mt.Case, "Values": mt.Values, "np": np})
    assert repr(again) == repr(case)
    for a, b in zip(again.arrays(), case.arrays()):
        np.testing.assert_array_equal(a, b)


def test_a_case_with_arrays_prints_them_exactly():
    labels, x = np.array([0, 2]), np.array([[0.1, 1 / 3]])
    case = mt.Case({"logits": x}, labels=labels)
    again = eval(repr(case), {"Case": mt.Case, "np": np})
    np.testing.assert_array_equal(again.arrays()[0], x)
    np.testing.assert_array_equal(again.params["labels"], labels)
    assert case.describe() == "logits (1, 2), labels=np.array([0, 2])"


@SETTINGS
@given(mt.arrays(mt.nchw(), dtype=mt.dtypes(), bounds=(-1.0, 3.0)))
def test_arrays_give_numpy_arrays_of_the_drawn_dtype(a):
    assert isinstance(a, np.ndarray) and a.ndim == 4 and a.dtype in (np.float32, np.float64)
    assert np.all((-1.0 <= a) & (a <= 3.0))


def test_cases_sorts_inputs_from_parameters():
    case, = mt.sample(mt.cases(x=mt.values(), w=mt.arrays(), slope=st.floats(0, 1), stride=2), 1)
    assert case.names == ("x", "w") and set(case.params) == {"slope", "stride"}


def test_inputs_of_one_case_get_different_numbers():
    for case in mt.sample(mt.elementwise_cases(("a", "b")), 10):
        a, b = case.arrays()
        assert a.shape == b.shape and not np.array_equal(a, b)


def test_sample_gives_the_same_examples_every_call_and_others_for_a_seed():
    first = [c.describe() for c in mt.sample(mt.conv_cases(), 8)]
    assert first == [c.describe() for c in mt.sample(mt.conv_cases(), 8)]
    assert first != [c.describe() for c in mt.sample(mt.conv_cases(), 8, seed=1)]
    assert first[0] == "x (1, 1, 1, 1), w (1, 1, 1, 1), stride=1, padding=0"  # the simplest
