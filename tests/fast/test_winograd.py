"""Winograd F(2x2, 3x3) (minires/fast/winograd.py) against the loop oracles.

Specification: equal to the convolution in float64 for every tile geometry (even and odd output
sizes, so the last tile hangs over the edge), paddings 0..2, and its input gradient equal to the
convolution's. Its float32 error is bounded here, and of the same order as im2col's: its
transforms add and subtract before the products, but its sums over channels are 9x shorter.
"""
import numpy as np
import pytest

import oracles
from minires.functional.conv import im2col
from minires.fast.winograd import (filter_transform, winograd_conv3x3, winograd_conv3x3_input_grad)

GEOMETRIES = [(1, 1, 3, 3, 1, 0), (2, 3, 5, 7, 4, 1), (1, 2, 4, 4, 3, 0), (3, 4, 8, 8, 5, 1),
              (2, 2, 3, 6, 2, 2), (1, 5, 9, 4, 3, 2), (2, 3, 6, 5, 2, 1)]


def test_one_dimensional_f23_is_the_direct_formula():
    """y = A^T [(G g) * (B^T d)] is the 3-tap correlation of 4 inputs, with 4 products, not 6."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal(4), rng.standard_normal(3)
    BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    products = (G @ g) * (BT @ d)  # the only multiplications that involve the data: 4 of them
    np.testing.assert_allclose(AT @ products, [d[:3] @ g, d[1:] @ g], rtol=1e-13)


def test_filter_transform_is_g_g_gt():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3, 3, 3))
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    U = filter_transform(w)
    assert U.shape == (4, 4, 2, 3)
    np.testing.assert_allclose(U[:, :, 1, 2], G @ w[1, 2] @ G.T, rtol=1e-13)


@pytest.mark.parametrize("N, C, H, W, K, p", GEOMETRIES)
def test_winograd_equals_the_convolution_in_float64(N, C, H, W, K, p):
    rng = np.random.default_rng(N * 100 + C * 10 + H + p)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, 3, 3))
    y = winograd_conv3x3(x, w, p)
    expected = oracles.conv2d(x, w, padding=p)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("N, C, H, W, K, p", GEOMETRIES)
def test_winograd_input_gradient_equals_the_convolutions(N, C, H, W, K, p):
    rng = np.random.default_rng(7 + N + C + H + W + p)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, 3, 3))
    gy = rng.standard_normal(oracles.conv2d(x, w, padding=p).shape)
    gx, _ = oracles.conv2d_backward(x, w, gy, padding=p)[:2]
    np.testing.assert_allclose(winograd_conv3x3_input_grad(gy, w, p), gx, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("C", [16, 64, 256])
def test_float32_error_is_bounded_and_of_im2cols_order(C):
    """Measured (largest error / largest output): about 2-7e-7 for both up to 128 channels, where
    Winograd's is often the smaller; at 512 channels Winograd's is 1.2-2.7x im2col's."""
    rng = np.random.default_rng(3)
    N, K = 4, 32
    x, w = rng.standard_normal((N, C, 8, 8)), rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)
    exact = oracles.conv2d(x, w, padding=1)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    y32 = winograd_conv3x3(x32, w32, 1)
    y_im2col = (w32.reshape(K, -1) @ im2col(x32, 3, 3, 1, 1)).reshape(K, N, 8, 8).swapaxes(0, 1)
    assert y32.dtype == np.float32
    scale = np.abs(exact).max()
    err, err_im2col = np.abs(y32 - exact).max() / scale, np.abs(y_im2col - exact).max() / scale
    assert err < 5e-6
    assert err < 4 * err_im2col, (err, err_im2col)


def test_input_gradient_rejects_a_padding_it_cannot_flip():
    with pytest.raises(ValueError, match="padding"):
        winograd_conv3x3_input_grad(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), 3)
