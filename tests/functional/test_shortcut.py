"""The paper's option-A shortcut, pad_channels: subsample by the stride, append zero channels.

Specification (minires/functional/shortcut.py): y[:, :C] = x[:, :, ::s, ::s], y[:, C:] = 0, output
(N, out_channels, ceil(H/s), ceil(W/s)); the gradient goes back to the sampled pixels of the
first C channels and nowhere else.
"""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import minires as mr
from minires import functional as F
from minires.functional.shortcut import PadChannels

import oracles
from opcheck import LAYOUTS, SETTINGS, forbid_forward, forward_backward, leaf

seeds = st.integers(0, 2**16)


@st.composite
def shortcut_problems(draw):
    N, C, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return (N, C, H, W), C + draw(st.integers(0, 4)), draw(st.integers(1, 3))


CIFAR_STAGE = ((2, 4, 6, 6), 8, 2)  # the paper's transition: twice the channels, half the resolution


@SETTINGS
@given(shortcut_problems(), seeds)
@example(CIFAR_STAGE, 0)
def test_pad_channels_matches_explicit_construction(device, problem, seed):
    shape, out_channels, stride = problem
    x = np.random.default_rng(seed).standard_normal(shape)
    y, (gx,), gy = forward_backward(lambda x: F.pad_channels(x, out_channels, stride), [leaf(x, device)], seed=seed)
    np.testing.assert_array_equal(y, oracles.pad_channels(x, out_channels, stride))
    # The op is linear, so the gradient is the numerical derivative of the oracle (exact up to rounding).
    expected = oracles.numeric_grad(lambda x: oracles.pad_channels(x, out_channels, stride), [x], gy)[0]
    np.testing.assert_allclose(gx, expected, rtol=1e-7, atol=1e-8)


@SETTINGS
@given(shortcut_problems(), seeds)
def test_pad_channels_gradcheck(problem, seed):
    shape, out_channels, stride = problem
    x = mr.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    assert mr.gradcheck(lambda x: F.pad_channels(x, out_channels, stride), x)


def test_pad_channels_gradient_reaches_only_sampled_pixels():
    x = leaf(np.zeros((1, 1, 3, 3)))
    _, (gx,), _ = forward_backward(lambda x: F.pad_channels(x, 2, 2), [x], gy=np.arange(1.0, 9.0).reshape(1, 2, 2, 2))
    # dy of channel 0 lands on pixels (0, 0), (0, 2), (2, 0), (2, 2); channel 1 (the zeros) is dropped
    np.testing.assert_array_equal(gx[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


def test_pad_channels_with_stride_1_and_same_channels_is_the_identity():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(F.pad_channels(mr.Tensor(x), 3, 1).data, x)


@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("gy_layout", LAYOUTS)
def test_pad_channels_same_numbers_for_nchw_and_channel_major_arrays(device, x_layout, gy_layout):
    x = np.random.default_rng(0).standard_normal((3, 4, 7, 6))
    fn = lambda x: F.pad_channels(x, 8, 2)
    y, (gx,), _ = forward_backward(fn, [leaf(x, device, x_layout)], gy_layout=gy_layout)
    y_ref, (gx_ref,), _ = forward_backward(fn, [leaf(x)])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(gx, gx_ref)


def test_pad_channels_float32_stays_float32(device):
    x = np.ones((2, 4, 6, 6), dtype=np.float32)
    y, (gx,), _ = forward_backward(lambda x: F.pad_channels(x, 8, 2), [leaf(x, device)])
    assert y.dtype == np.float32 and gx.dtype == np.float32


@pytest.mark.parametrize("shape, out_channels, stride, match", [
    ((2, 4, 6), 8, 2, r"x must be 4-D"),
    ((2, 4, 6, 6), 3, 2, r"out_channels \(3\) must be >= the input's channels \(4\)"),
    ((2, 4, 6, 6), 8, 0, r"stride must be >= 1"),
])
def test_pad_channels_rejects_bad_input_before_computing(monkeypatch, shape, out_channels, stride, match):
    forbid_forward(monkeypatch, PadChannels)
    with pytest.raises(ValueError, match=match):
        F.pad_channels(mr.Tensor(np.zeros(shape)), out_channels, stride)
