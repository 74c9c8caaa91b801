"""The paper's option-A shortcut, pad_channels: subsample by the stride, append zero channels.

Specification (minires/functional/shortcut.py): y[:, :C] = x[:, :, ::s, ::s], y[:, C:] = 0, output
(N, out_channels, ceil(H/s), ceil(W/s)); the gradient goes back to the sampled pixels of the
first C channels and nowhere else; the same numbers for both memory layouts, float32 stays
float32 (minires.testing's check_backward).
"""
import numpy as np
import pytest
from hypothesis import example, given

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.shortcut import PadChannels

import oracles
from opcheck import EXAMPLES, SETTINGS, forbid_forward, forward_backward, leaf

CIFAR_STAGE = mt.Case({"x": mt.Values((2, 4, 6, 6))}, out_channels=8, stride=2)
"""The paper's transition: twice the channels, half the resolution."""


def test_pad_channels_check_backward(device):
    mt.check_backward(F.pad_channels, mt.pad_channels_cases(), oracle=oracles.pad_channels,
                      examples=[CIFAR_STAGE], max_examples=EXAMPLES, device=device)


@SETTINGS
@given(mt.pad_channels_cases())
@example(CIFAR_STAGE)
def test_pad_channels_gradient_is_the_derivative_of_the_oracle(device, case):
    # The op is linear, so the gradient is the numerical derivative of the oracle (exact up to
    # rounding).
    (x,), p = case.arrays(), case.params
    y, (gx,), gy = forward_backward(lambda x: F.pad_channels(x, **p), [leaf(x, device)])
    expected = oracles.numeric_grad(lambda x: oracles.pad_channels(x, **p), [x], gy)[0]
    np.testing.assert_allclose(gx, expected, rtol=1e-7, atol=1e-8)


def test_pad_channels_gradient_reaches_only_sampled_pixels():
    x = leaf(np.zeros((1, 1, 3, 3)))
    _, (gx,), _ = forward_backward(lambda x: F.pad_channels(x, 2, 2), [x],
                                   gy=np.arange(1.0, 9.0).reshape(1, 2, 2, 2))
    # dy of channel 0 lands on pixels (0, 0), (0, 2), (2, 0), (2, 2); channel 1 (the zeros) is
    # dropped
    np.testing.assert_array_equal(gx[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


def test_pad_channels_with_stride_1_and_same_channels_is_the_identity():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(F.pad_channels(mr.Tensor(x), 3, 1).data, x)


@pytest.mark.parametrize("shape, out_channels, stride, match", [
    ((2, 4, 6), 8, 2, r"x must be 4-D"),
    ((2, 4, 6, 6), 3, 2, r"out_channels \(3\) must be >= the input's channels \(4\)"),
    ((2, 4, 6, 6), 8, 0, r"stride must be >= 1"),
])
def test_pad_channels_rejects_bad_input_before_computing(monkeypatch, shape, out_channels, stride,
                                                         match):
    forbid_forward(monkeypatch, PadChannels)
    with pytest.raises(ValueError, match=match):
        F.pad_channels(mr.Tensor(np.zeros(shape)), out_channels, stride)
