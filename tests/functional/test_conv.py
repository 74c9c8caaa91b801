"""Convolution as one GEMM (im2col, col2im, conv2d), checked against a nested-loop convolution.

Specification: cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, s*p + i, s*q + j];
col2im is the adjoint of im2col; conv2d is cross-correlation with OH = (H + 2p - kh) // s + 1,
linear in x and in w, a plain matmul over channels for a 1x1 kernel; the same numbers for NCHW
and channel-major inputs; float32 in, float32 out; bad shapes rejected before any arithmetic.
The property tests are minires.testing's, over its convolution geometries (1x1 images, odd sizes
with stride 2, kernels as large as the padded input) and ResNet's own. Tests taking ``impl`` hold
for the reference op and for its fast twin (tests/fast/ checks each fast branch against it).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.conv import Conv2d

import oracles
from opcheck import EXAMPLES, SETTINGS, forbid_forward, forward_backward, leaf, on_layout

seeds = st.integers(0, 2**16)

# im2col itself allows more than conv2d's tests use: rectangular kernels up to 4, strides 1..3.
im2col_geometries = mt.conv_geometries(kernels=(1, 2, 3, 4), strides=(1, 2, 3), max_padding=2)


def unpack(g):
    return (g["N"], g["C_in"], g["H"], g["W"]), g["kh"], g["kw"], g["stride"], g["padding"]


# -- im2col / col2im -------------------------------------------------------------------------------

@SETTINGS
@given(im2col_geometries, seeds)
def test_im2col_matches_its_documented_index_formula(device, geometry, seed):
    shape, kh, kw, stride, padding = unpack(geometry)
    x = np.random.default_rng(seed).standard_normal(shape)
    cols = F.im2col(on_layout(device, x), kh, kw, stride, padding)
    np.testing.assert_array_equal(mr.backend.as_numpy(cols),
                                  oracles.im2col(x, kh, kw, stride, padding))


@SETTINGS
@given(im2col_geometries, seeds)
def test_im2col_col2im_adjoint(device, geometry, seed):
    # <im2col(x), y> == <x, col2im(y)> for every x and y: col2im is exactly the transpose of im2col.
    shape, kh, kw, stride, padding = unpack(geometry)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    cols_shape = oracles.im2col(np.zeros(shape), kh, kw, stride, padding).shape
    y = rng.standard_normal(cols_shape)
    cols = F.im2col(on_layout(device, x), kh, kw, stride, padding)
    back = F.col2im(on_layout(device, y), shape, kh, kw, stride, padding)
    lhs, rhs = np.vdot(mr.backend.as_numpy(cols), y), np.vdot(x, mr.backend.as_numpy(back))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_col2im_sums_overlapping_windows():
    # A 2x2 kernel sliding with stride 1 over 3x3 covers the centre 4 times, edges twice, corners
    # once.
    ones = np.ones((1 * 2 * 2, 1 * 2 * 2))
    counts = F.col2im(ones, (1, 1, 3, 3), 2, 2, stride=1, padding=0)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_col2im_drops_what_falls_in_the_padding():
    # 1x1 image, 3x3 kernel, padding 1: one window, and only its centre lies on the image.
    cols = np.arange(1.0, 10.0).reshape(9, 1)
    np.testing.assert_array_equal(F.col2im(cols, (1, 1, 1, 1), 3, 3, stride=1, padding=1),
                                  [[[[5.0]]]])


# -- conv2d: values and gradients ------------------------------------------------------------------

def test_conv2d_check_backward(device, impl):
    # Forward against the loops, every gradient against central differences, both layouts,
    # float32 against float64, gradient shapes and dtypes: over generated geometries and ResNet's.
    mt.check_backward(F.conv2d, mt.conv_cases(), oracle=oracles.conv2d, examples=mt.RESNET_CONVS,
                      max_examples=EXAMPLES, device=device)


@pytest.mark.parametrize("case", mt.RESNET_CONVS, ids=["stem", "same3x3", "down3x3", "proj1x1"])
def test_conv2d_backward_matches_nested_loops(device, impl, case):
    # The gradients against the loops' own backward, which walks the forward's loops.
    x, w, *b = case.arrays()
    p = case.params
    fn = lambda x, w, *b: F.conv2d(x, w, *b, **p)
    _, grads, gy = forward_backward(fn, [leaf(a, device) for a in [x, w, *b]])
    expected = oracles.conv2d_backward(x, w, gy, p["stride"], p["padding"])
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("H, k, stride, padding, expected", [
    (224, 7, 2, 3, 112),  # ResNet's ImageNet stem
    (32, 3, 1, 1, 32),    # CIFAR 3x3 "same" convolution
    (32, 3, 2, 1, 16),    # CIFAR downsampling convolution
    (8, 1, 2, 0, 4),      # 1x1 projection shortcut
    (7, 3, 2, 0, 3),      # (7 - 3) / 2 + 1 = 3 exactly
    (6, 3, 2, 0, 2),      # (6 - 3) / 2 + 1 = 2.5: the partial window is dropped (floor)
])
def test_conv2d_output_size_floors_like_pytorch(impl, H, k, stride, padding, expected):
    x = mr.Tensor(np.zeros((1, 1, H, H)))
    y = F.conv2d(x, mr.Tensor(np.zeros((2, 1, k, k))), stride=stride, padding=padding)
    assert y.shape == (1, 2, expected, expected)


# -- conv2d: algebraic properties ------------------------------------------------------------------

def test_conv2d_is_linear_in_x_and_in_w(impl):
    mt.check_linearity(F.conv2d, mt.conv_cases(bias=False), wrt=("x", "w"),
                       max_examples=EXAMPLES)


def test_conv2d_backward_is_the_adjoint_of_its_forward(impl):
    # <conv(x), v> == <x, dx(v)> exactly: the backward is the transpose, with no finite differences.
    mt.check_adjoint(F.conv2d, inputs=mt.conv_cases(bias=False), max_examples=EXAMPLES)


def test_conv_transpose_by_col2im_is_the_adjoint_of_conv2d(impl):
    # <conv(x), y> == <x, col2im(W^T y)>, with the input size given for the rows no window reached.
    mt.check_adjoint(F.conv2d, mt.conv_transpose2d, mt.conv_cases(bias=False),
                     max_examples=EXAMPLES)


@SETTINGS
@given(mt.conv_cases(kernels=(1,), strides=(1,), max_padding=0, bias=False, max_channels=4))
def test_1x1_conv_is_a_matmul_over_channels(impl, case):
    x, w = case.arrays()
    y = F.conv2d(mr.Tensor(x), mr.Tensor(w)).data
    N, _, H, W = x.shape
    expected = np.zeros((N, w.shape[0], H, W))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                # the channel vector at every pixel times W
                expected[n, :, i, j] = w[:, :, 0, 0] @ x[n, :, i, j]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


# -- dtype (conv2d's layouts and dtypes are in test_conv2d_check_backward) -------------------------

def test_im2col_and_col2im_keep_float32(device):
    x = on_layout(device, np.ones((2, 3, 5, 5), dtype=np.float32))
    cols = F.im2col(x, 3, 3, stride=1, padding=1)
    assert cols.dtype == np.float32
    assert F.col2im(cols, x.shape, 3, 3, stride=1, padding=1).dtype == np.float32


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, b_shape, padding, match", [
    ((2, 3, 8, 8), (4, 2, 3, 3), None, 0, r"x has 3 channels but w expects 2"),
    ((1, 1, 4, 4), (1, 1, 7, 7), None, 1, r"kernel 7x7 is larger than the padded input 6x6"),
    ((1, 1, 8, 2), (1, 1, 3, 3), None, 0, r"kernel 3x3 is larger than the padded input 8x2"),
    ((3, 8, 8), (4, 3, 3, 3), None, 0, r"x must be 4-D"),
    ((2, 3, 8, 8), (4, 3, 3), None, 0, r"w must be 4-D"),
    ((2, 3, 8, 8), (4, 3, 3, 3), (3,), 0, r"b must have shape \(4,\)"),
    ((2, 3, 8, 8), (4, 3, 3, 3), (4, 1), 0, r"b must have shape \(4,\)"),
])
def test_conv2d_rejects_bad_shapes_before_computing(monkeypatch, x_shape, w_shape, b_shape,
                                                    padding, match):
    forbid_forward(monkeypatch, Conv2d)
    x, w = mr.Tensor(np.zeros(x_shape)), mr.Tensor(np.zeros(w_shape))
    b = None if b_shape is None else mr.Tensor(np.zeros(b_shape))
    with pytest.raises(ValueError, match=match):
        F.conv2d(x, w, b, padding=padding)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(stride=0), ValueError, r"stride must be >= 1"),
    (dict(padding=-1), ValueError, r"padding must be >= 0"),
    (dict(stride=1.5), TypeError, r"stride must be an int"),
    (dict(stride=(1, 2)), ValueError, r"stride must be the same in both directions"),
])
def test_conv2d_rejects_bad_stride_and_padding(monkeypatch, kwargs, error, match):
    forbid_forward(monkeypatch, Conv2d)
    with pytest.raises(error, match=match):
        F.conv2d(mr.Tensor(np.zeros((1, 1, 5, 5))), mr.Tensor(np.zeros((1, 1, 3, 3))), **kwargs)


def test_im2col_and_col2im_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"im2col: kernel 5x5 is larger than the padded input 4x4"):
        F.im2col(np.zeros((1, 1, 4, 4)), 5, 5)
    with pytest.raises(ValueError, match=r"im2col: input must be 4-D"):
        F.im2col(np.zeros((4, 4)), 3, 3)
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(9, 3\), expected \(9, 4\)"):
        F.col2im(np.zeros((9, 3)), (1, 1, 4, 4), 3, 3)


@pytest.mark.parametrize("shape_x, shape_w", [((2, 3, 5, 5), (0, 3, 3, 3)),
                                              ((0, 3, 5, 5), (4, 3, 3, 3)),
                                              ((2, 0, 5, 5), (4, 0, 3, 3))])
def test_conv2d_of_empty_shapes_is_empty_or_zero(impl, shape_x, shape_w):
    """A size-0 batch or channel count: y has the empty shape (or is 0, the empty sum), and the
    gradients are zeros of their inputs' shapes."""
    rng = np.random.default_rng(0)
    x, w = leaf(rng.standard_normal(shape_x)), leaf(rng.standard_normal(shape_w))
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (shape_x[0], shape_w[0], 5, 5)
    np.testing.assert_array_equal(y.data, 0.0)
    (y * leaf(rng.standard_normal(y.shape))).sum().backward()
    assert x.grad.shape == shape_x and w.grad.shape == shape_w
    np.testing.assert_array_equal(x.grad, 0.0)
    np.testing.assert_array_equal(w.grad, 0.0)
