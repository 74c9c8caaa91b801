"""Max, average and global average pooling, checked against loops over windows.

Specification: windows of kernel_size with stride (default: kernel_size) and padding; max pooling
pads with -inf and, on ties, gives the gradient to the first maximum of the window in row-major
order, once, and a NaN anywhere in a window makes the window's maximum NaN (as np.max does; the
first NaN takes the gradient); average pooling counts padded zeros in the divisor; global average pooling is the
mean over H and W. Same numbers for NCHW and channel-major arrays; float32 stays float32.
"""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import minires as mr
from minires import functional as F
from minires.functional.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

import oracles
from opcheck import LAYOUTS, SETTINGS, forbid_forward, forward_backward, leaf

seeds = st.integers(0, 2**16)


@st.composite
def pool_geometries(draw):
    """kernel 1..3, stride None (= kernel) or 1..3, padding 0..kernel//2, an input holding a window."""
    k = draw(st.integers(1, 3))
    stride = draw(st.none() | st.integers(1, 3))
    padding = draw(st.integers(0, k // 2))
    smallest = max(1, k - 2 * padding)
    H, W = draw(st.integers(smallest, smallest + 4)), draw(st.integers(smallest, smallest + 4))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), k, stride, padding


RESNET_STEM_POOL = ((2, 2, 7, 6), 3, 2, 1)  # the 3x3/2, pad 1 max pool after ResNet's first conv


def distinct_values(shape, seed):
    """No two elements within 1e-2 of each other: no ties, and eps-perturbations never swap a max."""
    size = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(size) * (4.0 / size) - 2.0).reshape(shape)


def effective_stride(k, stride):
    return k if stride is None else stride


# -- max pooling -----------------------------------------------------------------------------------

@SETTINGS
@given(pool_geometries(), seeds, st.booleans())
@example(RESNET_STEM_POOL, 0, False)
@example(RESNET_STEM_POOL, 0, True)
def test_max_pool2d_matches_loops_including_ties(device, geometry, seed, with_ties):
    # With ties (values drawn from {0, 1, 2}) the oracle credits np.argmax's first maximum.
    shape, k, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=shape).astype(np.float64) if with_ties else rng.standard_normal(shape)
    fn = lambda x: F.max_pool2d(x, k, stride, padding)
    y, (gx,), gy = forward_backward(fn, [leaf(x, device)], seed=seed + 1)
    s = effective_stride(k, stride)
    np.testing.assert_array_equal(y, oracles.max_pool2d(x, k, s, padding))
    np.testing.assert_allclose(gx, oracles.max_pool2d_backward(x, gy, k, s, padding), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_geometries(), seeds)
@example(RESNET_STEM_POOL, 0)
def test_max_pool2d_gradcheck(geometry, seed):
    shape, k, stride, padding = geometry
    x = mr.Tensor(distinct_values(shape, seed), requires_grad=True)
    assert mr.gradcheck(lambda x: F.max_pool2d(x, k, stride, padding), x)


@pytest.mark.parametrize("H, k, stride, expected", [
    # one 2x2 window over a constant image: only its top-left element gets the gradient
    (2, 2, 1, [[1, 0], [0, 0]]),
    # four overlapping 2x2 windows over a constant 3x3 image: each credits its own top-left
    (3, 2, 1, [[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
    # 3x3 windows with stride 1 over a constant 4x4 image: top-left of each of the 2x2 windows
    (4, 3, 1, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
])
def test_max_pool2d_tie_credits_first_maximum_once(device, H, k, stride, expected):
    OH = (H - k) // stride + 1
    x = leaf(np.full((1, 1, H, H), 3.0), device)
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, k, stride), [x], gy=np.ones((1, 1, OH, OH)))
    np.testing.assert_array_equal(y, 3.0)
    np.testing.assert_array_equal(gx[0, 0], expected)


def test_max_pool2d_tie_within_a_row_and_a_column():
    # Window [[1, 5], [5, 5]]: the first 5 in row-major order is at (0, 1).
    x = leaf(np.array([[[[1.0, 5.0], [5.0, 5.0]]]]))
    _, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 2), [x], gy=np.array([[[[7.0]]]]))
    np.testing.assert_array_equal(gx[0, 0], [[0.0, 7.0], [0.0, 0.0]])


def test_max_pool2d_padding_never_wins_over_negative_values(device):
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)  # all negative: zero padding would win, -inf does not
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 3, 2, 1), [leaf(x, device)], gy=np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])  # each window's top-left pixel
    assert gx.sum() == 4.0  # every window credited one real pixel


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_max_pool2d_propagates_nan_from_anywhere_in_the_window(device, where):
    # [[0, 1], [4, 2]] with one entry made NaN: the max is NaN, as np.max and PyTorch give.
    x = np.array([[[[0.0, 1.0], [4.0, 2.0]]]])
    x[(0, 0) + where] = np.nan
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 2), [leaf(x, device)], gy=np.array([[[[5.0]]]]))
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(np.max(x))
    expected = np.zeros((2, 2))
    expected[where] = 5.0  # the NaN is the window's maximum, so it takes the gradient
    np.testing.assert_array_equal(gx[0, 0], expected)


def test_max_pool2d_with_nans_matches_loops_and_credits_the_first_nan(device):
    # Overlapping 3x3/2 windows with padding, NaNs scattered, and a window holding two NaNs.
    x = np.random.default_rng(5).standard_normal((2, 2, 7, 6))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[1, 1, 4, 5] = x[1, 0, 0, 0] = np.nan
    y, (gx,), gy = forward_backward(lambda x: F.max_pool2d(x, 3, 2, 1), [leaf(x, device)])
    np.testing.assert_array_equal(y, oracles.max_pool2d(x, 3, 2, 1))  # NaN where the oracle has NaN
    np.testing.assert_allclose(gx, oracles.max_pool2d_backward(x, gy, 3, 2, 1), rtol=1e-12, atol=1e-12)


def test_max_pool2d_stride_defaults_to_kernel_size():
    x = mr.Tensor(np.random.default_rng(0).standard_normal((1, 2, 6, 6)))
    y = F.max_pool2d(x, 2)
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(y.data, oracles.max_pool2d(x.data, 2, 2, 0))


# -- average pooling -------------------------------------------------------------------------------

@SETTINGS
@given(pool_geometries(), seeds)
def test_avg_pool2d_matches_loops(device, geometry, seed):
    shape, k, stride, padding = geometry
    x = np.random.default_rng(seed).standard_normal(shape)
    y, (gx,), gy = forward_backward(lambda x: F.avg_pool2d(x, k, stride, padding), [leaf(x, device)], seed=seed + 1)
    s = effective_stride(k, stride)
    np.testing.assert_allclose(y, oracles.avg_pool2d(x, k, s, padding), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, oracles.avg_pool2d_backward(x, gy, k, s, padding), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_geometries(), seeds)
def test_avg_pool2d_gradcheck(geometry, seed):
    shape, k, stride, padding = geometry
    x = mr.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    assert mr.gradcheck(lambda x: F.avg_pool2d(x, k, stride, padding), x)


def test_avg_pool2d_counts_padding_in_the_divisor():
    # 2x2 image of ones, 2x2 windows, stride 2, padding 1: each window holds one pixel and three zeros.
    y = F.avg_pool2d(mr.Tensor(np.ones((1, 1, 2, 2))), 2, 2, 1)
    np.testing.assert_array_equal(y.data[0, 0], [[0.25, 0.25], [0.25, 0.25]])


# -- global average pooling ------------------------------------------------------------------------

@SETTINGS
@given(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)), seeds)
def test_global_avg_pool2d_is_the_spatial_mean(device, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    y, (gx,), gy = forward_backward(F.global_avg_pool2d, [leaf(x, device)], seed=seed + 1)
    assert y.shape == shape[:2]
    np.testing.assert_allclose(y, x.sum(axis=(2, 3)) / (shape[2] * shape[3]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, np.broadcast_to(gy[:, :, None, None] / (shape[2] * shape[3]), shape),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)), seeds)
def test_global_avg_pool2d_gradcheck(shape, seed):
    x = mr.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    assert mr.gradcheck(F.global_avg_pool2d, x)


# -- layout, dtype ---------------------------------------------------------------------------------

POOLS = {
    "max_pool2d": lambda x: F.max_pool2d(x, 3, 2, 1),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 3, 2, 1),
    "avg_pool2d_default_stride": lambda x: F.avg_pool2d(x, 2),
    "global_avg_pool2d": F.global_avg_pool2d,
}


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("gy_layout", LAYOUTS)
def test_pooling_same_numbers_for_nchw_and_channel_major_arrays(device, pool, x_layout, gy_layout):
    x = distinct_values((3, 4, 7, 6), 0)
    y, (gx,), _ = forward_backward(POOLS[pool], [leaf(x, device, x_layout)], gy_layout=gy_layout)
    y_ref, (gx_ref,), _ = forward_backward(POOLS[pool], [leaf(x)])
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool", POOLS)
def test_pooling_float32_stays_float32(device, pool):
    x = distinct_values((2, 3, 6, 6), 0).astype(np.float32)
    y, (gx,), _ = forward_backward(POOLS[pool], [leaf(x, device)])
    assert y.dtype == np.float32 and gx.dtype == np.float32


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, cls", [(F.max_pool2d, MaxPool2d), (F.avg_pool2d, AvgPool2d)])
@pytest.mark.parametrize("shape, kwargs, error, match", [
    ((2, 4, 4), dict(kernel_size=2), ValueError, r"input must be 4-D"),
    ((1, 1, 2, 2), dict(kernel_size=3), ValueError, r"kernel 3x3 is larger than the padded input 2x2"),
    ((1, 1, 4, 4), dict(kernel_size=2, padding=2), ValueError, r"padding 2 must be at most half the kernel size 2"),
    ((1, 1, 4, 4), dict(kernel_size=2, stride=0), ValueError, r"stride must be >= 1"),
    ((1, 1, 4, 4), dict(kernel_size=2.0), TypeError, r"kernel_size must be an int"),
])
def test_pooling_rejects_bad_input_before_computing(monkeypatch, op, cls, shape, kwargs, error, match):
    forbid_forward(monkeypatch, cls)
    with pytest.raises(error, match=match):
        op(mr.Tensor(np.zeros(shape)), **kwargs)


def test_global_avg_pool2d_rejects_non_4d_input(monkeypatch):
    forbid_forward(monkeypatch, GlobalAvgPool2d)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        F.global_avg_pool2d(mr.Tensor(np.zeros((2, 3))))
