"""Max, average and global average pooling, checked against loops over windows.

Specification: windows of kernel_size with stride (default: kernel_size) and padding; max pooling
pads with -inf and, on ties, gives the gradient to the first maximum of the window in row-major
order, once, and a NaN anywhere in a window makes the window's maximum NaN (as np.max does; the
first NaN takes the gradient); average pooling counts padded zeros in the divisor; global average
pooling is the mean over H and W. Same numbers for NCHW and channel-major arrays; float32 stays
float32 (both checked by minires.testing's check_backward, with distinct values: no ties).
"""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

import oracles
from opcheck import EXAMPLES, SETTINGS, forbid_forward, forward_backward, leaf

seeds = st.integers(0, 2**16)


def max_pool_oracle(x, kernel_size, stride, padding):
    return oracles.max_pool2d(x, kernel_size, stride or kernel_size, padding)


def avg_pool_oracle(x, kernel_size, stride, padding):
    return oracles.avg_pool2d(x, kernel_size, stride or kernel_size, padding)


# -- max pooling -----------------------------------------------------------------------------------

def test_max_pool2d_check_backward(device):
    mt.check_backward(F.max_pool2d, mt.pool_cases(), oracle=max_pool_oracle,
                      examples=[mt.RESNET_POOL], max_examples=EXAMPLES, device=device)


@SETTINGS
@given(mt.pool_geometries(), seeds)
@example(dict(N=2, C=2, H=7, W=6, kernel_size=3, stride=2, padding=1), 0)  # ResNet's stem pool
def test_max_pool2d_with_ties_matches_loops(device, g, seed):
    # Values drawn from {0, 1, 2}: many ties, and the oracle credits np.argmax's first maximum.
    k, stride, padding = g["kernel_size"], g["stride"], g["padding"]
    x = np.random.default_rng(seed).integers(0, 3, size=(g["N"], g["C"], g["H"], g["W"]))
    x = x.astype(np.float64)
    fn = lambda x: F.max_pool2d(x, k, stride, padding)
    y, (gx,), gy = forward_backward(fn, [leaf(x, device)], seed=seed + 1)
    s = stride or k
    np.testing.assert_array_equal(y, oracles.max_pool2d(x, k, s, padding))
    np.testing.assert_allclose(gx, oracles.max_pool2d_backward(x, gy, k, s, padding),
                               rtol=1e-12, atol=1e-12)


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
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, k, stride), [x],
                                   gy=np.ones((1, 1, OH, OH)))
    np.testing.assert_array_equal(y, 3.0)
    np.testing.assert_array_equal(gx[0, 0], expected)


def test_max_pool2d_tie_within_a_row_and_a_column():
    # Window [[1, 5], [5, 5]]: the first 5 in row-major order is at (0, 1).
    x = leaf(np.array([[[[1.0, 5.0], [5.0, 5.0]]]]))
    _, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 2), [x], gy=np.array([[[[7.0]]]]))
    np.testing.assert_array_equal(gx[0, 0], [[0.0, 7.0], [0.0, 0.0]])


def test_max_pool2d_padding_never_wins_over_negative_values(device):
    # all negative: zero padding would win, -inf does not
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 3, 2, 1), [leaf(x, device)],
                                   gy=np.ones((1, 1, 2, 2)))
    # each window's top-left pixel
    np.testing.assert_array_equal(y[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])
    assert gx.sum() == 4.0  # every window credited one real pixel


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_max_pool2d_propagates_nan_from_anywhere_in_the_window(device, where):
    # [[0, 1], [4, 2]] with one entry made NaN: the max is NaN, as np.max and PyTorch give.
    x = np.array([[[[0.0, 1.0], [4.0, 2.0]]]])
    x[(0, 0) + where] = np.nan
    y, (gx,), _ = forward_backward(lambda x: F.max_pool2d(x, 2), [leaf(x, device)],
                                   gy=np.array([[[[5.0]]]]))
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(np.max(x))
    expected = np.zeros((2, 2))
    expected[where] = 5.0  # the NaN is the window's maximum, so it takes the gradient
    np.testing.assert_array_equal(gx[0, 0], expected)


def test_max_pool2d_with_nans_matches_loops_and_credits_the_first_nan(device):
    # Overlapping 3x3/2 windows with padding, NaNs scattered, and a window holding two NaNs.
    x = np.random.default_rng(5).standard_normal((2, 2, 7, 6))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[1, 1, 4, 5] = x[1, 0, 0, 0] = np.nan
    y, (gx,), gy = forward_backward(lambda x: F.max_pool2d(x, 3, 2, 1), [leaf(x, device)])
    np.testing.assert_array_equal(y, oracles.max_pool2d(x, 3, 2, 1))  # NaN where the oracle's is
    np.testing.assert_allclose(gx, oracles.max_pool2d_backward(x, gy, 3, 2, 1),
                               rtol=1e-12, atol=1e-12)


def test_max_pool2d_stride_defaults_to_kernel_size():
    x = mr.Tensor(np.random.default_rng(0).standard_normal((1, 2, 6, 6)))
    y = F.max_pool2d(x, 2)
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(y.data, oracles.max_pool2d(x.data, 2, 2, 0))


# -- average pooling -------------------------------------------------------------------------------

def test_avg_pool2d_check_backward(device):
    mt.check_backward(F.avg_pool2d, mt.pool_cases(), oracle=avg_pool_oracle,
                      max_examples=EXAMPLES, device=device)


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (2, None, 0), (3, 1, 1), (1, 2, 0)])
def test_avg_pool2d_backward_matches_loops(device, k, s, p):
    x = mt.Values((2, 3, 5, 4), seed=k).numpy()
    _, (gx,), gy = forward_backward(lambda x: F.avg_pool2d(x, k, s, p), [leaf(x, device)])
    np.testing.assert_allclose(gx, oracles.avg_pool2d_backward(x, gy, k, s or k, p),
                               rtol=1e-12, atol=1e-12)


def test_avg_pool2d_counts_padding_in_the_divisor():
    # 2x2 image of ones, 2x2 windows, stride 2, padding 1: each window holds one pixel and three
    # zeros.
    y = F.avg_pool2d(mr.Tensor(np.ones((1, 1, 2, 2))), 2, 2, 1)
    np.testing.assert_array_equal(y.data[0, 0], [[0.25, 0.25], [0.25, 0.25]])


# -- global average pooling ------------------------------------------------------------------------

def test_global_avg_pool2d_check_backward(device):
    mean = lambda x: x.sum(axis=(2, 3)) / (x.shape[2] * x.shape[3])
    mt.check_backward(F.global_avg_pool2d, mt.cases(x=mt.values(mt.nchw())), oracle=mean,
                      max_examples=EXAMPLES, device=device)


def test_global_avg_pool2d_gradient_is_spread_evenly(device):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    _, (gx,), gy = forward_backward(F.global_avg_pool2d, [leaf(x, device)])
    np.testing.assert_allclose(gx, np.broadcast_to(gy[:, :, None, None] / 20, x.shape),
                               rtol=1e-12, atol=1e-12)


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, cls", [(F.max_pool2d, MaxPool2d), (F.avg_pool2d, AvgPool2d)])
@pytest.mark.parametrize("shape, kwargs, error, match", [
    ((2, 4, 4), dict(kernel_size=2), ValueError, r"input must be 4-D"),
    ((1, 1, 2, 2), dict(kernel_size=3), ValueError,
     r"kernel 3x3 is larger than the padded input 2x2"),
    ((1, 1, 4, 4), dict(kernel_size=2, padding=2), ValueError,
     r"padding 2 must be at most half the kernel size 2"),
    ((1, 1, 4, 4), dict(kernel_size=2, stride=0), ValueError, r"stride must be >= 1"),
    ((1, 1, 4, 4), dict(kernel_size=2.0), TypeError, r"kernel_size must be an int"),
])
def test_pooling_rejects_bad_input_before_computing(monkeypatch, op, cls, shape, kwargs, error,
                                                    match):
    forbid_forward(monkeypatch, cls)
    with pytest.raises(error, match=match):
        op(mr.Tensor(np.zeros(shape)), **kwargs)


def test_global_avg_pool2d_rejects_non_4d_input(monkeypatch):
    forbid_forward(monkeypatch, GlobalAvgPool2d)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        F.global_avg_pool2d(mr.Tensor(np.zeros((2, 3))))
