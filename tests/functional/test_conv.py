"""Convolution as one GEMM (im2col, col2im, conv2d), checked against a nested-loop convolution.

Specification: cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, s*p + i, s*q + j];
col2im is the adjoint of im2col; conv2d is cross-correlation with OH = (H + 2p - kh) // s + 1,
linear in x and in w, a plain matmul over channels for a 1x1 kernel; the same numbers for NCHW
and channel-major inputs; float32 in, float32 out; bad shapes rejected before any arithmetic.
Tests taking ``impl`` hold for the reference op and for its fast twin; gradient checks run on the
reference (tests/fast/ checks each fast branch against it).
"""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import minires as mr
from minires import functional as F
from minires.functional.conv import Conv2d

import oracles
from opcheck import LAYOUTS, SETTINGS, forbid_forward, forward_backward, leaf, on_layout

seeds = st.integers(0, 2**16)


@st.composite
def conv_geometries(draw, kernels=(1, 3, 7), max_channels=3, max_extra=4):
    """A convolution problem: kernel k x k, stride 1 or 2, padding 0..3, an input that holds the kernel."""
    k = draw(st.sampled_from(kernels))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, 3))
    smallest = max(1, k - 2 * padding)  # the padded input must hold at least one window
    H, W = draw(st.integers(smallest, smallest + max_extra)), draw(st.integers(smallest, smallest + max_extra))
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    return dict(x=(N, C_in, H, W), w=(C_out, C_in, k, k), stride=stride, padding=padding, bias=draw(st.booleans()))


@st.composite
def im2col_geometries(draw):
    """Rectangular kernels, strides 1..3, paddings 0..2: im2col itself allows more than conv2d's tests use."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * padding), max(1, kh - 2 * padding) + 4))
    W = draw(st.integers(max(1, kw - 2 * padding), max(1, kw - 2 * padding) + 4))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kh, kw, stride, padding


def random_problem(g, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x"]).astype(dtype)
    w = rng.standard_normal(g["w"]).astype(dtype)
    b = rng.standard_normal(g["w"][0]).astype(dtype) if g["bias"] else None
    return x, w, b


# The geometries ResNet itself uses, always checked whatever hypothesis draws.
STEM = dict(x=(1, 2, 9, 8), w=(2, 2, 7, 7), stride=2, padding=3, bias=False)      # 7x7/2, pad 3
SAME3X3 = dict(x=(2, 2, 5, 5), w=(3, 2, 3, 3), stride=1, padding=1, bias=True)    # 3x3/1, pad 1
DOWN3X3 = dict(x=(2, 2, 6, 6), w=(2, 2, 3, 3), stride=2, padding=1, bias=False)   # 3x3/2, pad 1
PROJ1X1 = dict(x=(2, 3, 5, 5), w=(2, 3, 1, 1), stride=2, padding=0, bias=True)    # 1x1/2 projection


def resnet_geometries(test):
    for g in (STEM, SAME3X3, DOWN3X3, PROJ1X1):
        test = example(g, 7)(test)
    return test


def conv_fn(g):
    return lambda x, w, b=None: F.conv2d(x, w, b, stride=g["stride"], padding=g["padding"])


# -- im2col / col2im -------------------------------------------------------------------------------

@SETTINGS
@given(im2col_geometries(), seeds)
def test_im2col_matches_its_documented_index_formula(device, geometry, seed):
    shape, kh, kw, stride, padding = geometry
    x = np.random.default_rng(seed).standard_normal(shape)
    cols = F.im2col(on_layout(device, x), kh, kw, stride, padding)
    np.testing.assert_array_equal(mr.backend.as_numpy(cols), oracles.im2col(x, kh, kw, stride, padding))


@SETTINGS
@given(im2col_geometries(), seeds)
def test_im2col_col2im_adjoint(device, geometry, seed):
    # <im2col(x), y> == <x, col2im(y)> for every x and y: col2im is exactly the transpose of im2col.
    shape, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    cols_shape = oracles.im2col(np.zeros(shape), kh, kw, stride, padding).shape
    y = rng.standard_normal(cols_shape)
    lhs = np.vdot(mr.backend.as_numpy(F.im2col(on_layout(device, x), kh, kw, stride, padding)), y)
    rhs = np.vdot(x, mr.backend.as_numpy(F.col2im(on_layout(device, y), shape, kh, kw, stride, padding)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_col2im_sums_overlapping_windows():
    # A 2x2 kernel sliding with stride 1 over 3x3 covers the centre 4 times, edges twice, corners once.
    ones = np.ones((1 * 2 * 2, 1 * 2 * 2))
    counts = F.col2im(ones, (1, 1, 3, 3), 2, 2, stride=1, padding=0)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_col2im_drops_what_falls_in_the_padding():
    # 1x1 image, 3x3 kernel, padding 1: one window, and only its centre lies on the image.
    cols = np.arange(1.0, 10.0).reshape(9, 1)
    np.testing.assert_array_equal(F.col2im(cols, (1, 1, 1, 1), 3, 3, stride=1, padding=1), [[[[5.0]]]])


# -- conv2d: values and gradients ------------------------------------------------------------------

@SETTINGS
@given(conv_geometries(), seeds)
@resnet_geometries
def test_conv2d_forward_and_backward_match_nested_loops(device, impl, g, seed):
    x, w, b = random_problem(g, seed)
    arrays = [x, w] if b is None else [x, w, b]
    y, grads, gy = forward_backward(conv_fn(g), [leaf(a, device) for a in arrays], seed=seed + 1)
    np.testing.assert_allclose(y, oracles.conv2d(x, w, b, g["stride"], g["padding"]), rtol=1e-10, atol=1e-10)
    expected = oracles.conv2d_backward(x, w, gy, g["stride"], g["padding"])
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(conv_geometries(max_channels=2, max_extra=3), seeds)
@resnet_geometries
def test_conv2d_gradcheck(g, seed):
    x, w, b = random_problem(g, seed)
    inputs = [mr.Tensor(a, requires_grad=True) for a in ([x, w] if b is None else [x, w, b])]
    with mr.reference_ops():
        assert mr.gradcheck(conv_fn(g), *inputs)


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

@SETTINGS
@given(conv_geometries(), seeds)
def test_conv2d_is_linear_in_x_and_in_w(impl, g, seed):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(g["x"]), rng.standard_normal(g["x"])
    w1, w2 = rng.standard_normal(g["w"]), rng.standard_normal(g["w"])
    a, c = rng.standard_normal(2)
    T = mr.Tensor

    def conv(x, w):
        return F.conv2d(T(x), T(w), stride=g["stride"], padding=g["padding"]).data

    np.testing.assert_allclose(conv(a * x1 + c * x2, w1), a * conv(x1, w1) + c * conv(x2, w1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv(x1, a * w1 + c * w2), a * conv(x1, w1) + c * conv(x1, w2), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), seeds)
def test_1x1_conv_is_a_matmul_over_channels(impl, N, C_in, C_out, H, W, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, C_in, H, W)), rng.standard_normal((C_out, C_in))
    y = F.conv2d(mr.Tensor(x), mr.Tensor(w[:, :, None, None])).data
    expected = np.zeros((N, C_out, H, W))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                expected[n, :, i, j] = w @ x[n, :, i, j]  # the channel vector at every pixel times W
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


# -- layout and dtype ------------------------------------------------------------------------------

@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("gy_layout", LAYOUTS)
def test_conv2d_same_numbers_for_nchw_and_channel_major_arrays(device, impl, x_layout, gy_layout):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(5)
    fn = lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)
    y, grads, gy = forward_backward(fn, [leaf(x, device, x_layout), leaf(w, device), leaf(b, device)],
                                    gy_layout=gy_layout)
    y_ref, grads_ref, _ = forward_backward(fn, [leaf(x), leaf(w), leaf(b)])
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, grads_ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_float32_stays_float32(device, impl):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 8, 8), (4, 3, 3, 3), (4,)])
    y, grads, gy = forward_backward(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                                    [leaf(x, device), leaf(w, device), leaf(b, device)])
    assert y.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads)
    np.testing.assert_allclose(y, oracles.conv2d(x, w, b, 2, 1), rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, oracles.conv2d_backward(x, w, gy, 2, 1)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


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
def test_conv2d_rejects_bad_shapes_before_computing(monkeypatch, x_shape, w_shape, b_shape, padding, match):
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
