"""The metamorphic checks: each fails on an op that breaks its property, shrinks it, and passes an
op that is wrong in a way the property cannot see (which check_backward with an oracle then finds).
"""
import numpy as np
import pytest

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.conv import Conv2d, check_geometry, im2col
from minires.functional.layout import channels_first_2d, from_channels_first_2d
from minires.functional.norm import BatchNorm

import oracles

EXAMPLES = 15


def fails(check, *args, **kwargs):
    report = check(*args, max_examples=EXAMPLES, raise_on_failure=False, **kwargs)
    assert not report, "the check should have failed"
    return report


# -- linearity -------------------------------------------------------------------------------------

def conv_padding_with_ones(x, w, stride=1, padding=0):
    p = padding
    xp = np.pad(x.data, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=1.0)
    return F.conv2d(mr.Tensor(xp), w, stride=stride)


def conv_flipped_kernel(x, w, b=None, stride=1, padding=0):
    """A convolution (not the cross-correlation every framework computes): linear, and wrong."""
    return F.conv2d(x, w[:, :, ::-1, ::-1], b, stride=stride, padding=padding)


def test_linearity_catches_padding_with_ones_and_shrinks_to_a_padded_pixel():
    report = fails(mt.check_linearity, conv_padding_with_ones)
    f = report.failure
    assert f.check == "not linear in 'x'" and f.case.params["padding"] == 1
    assert all(s == 1 for s in f.case.shapes()["x"])  # one pixel, one channel: still fails
    assert "check_linearity(conv_padding_with_ones) failed" in str(report)
    assert report.rerun.startswith("check_linearity(conv_padding_with_ones, inputs=Case(")


def test_linearity_catches_a_bias():
    f = fails(mt.check_linearity, F.conv2d, mt.conv_cases(bias=True)).failure
    assert f.check == "not linear in 'x'"


def test_linearity_cannot_see_a_flipped_kernel_but_the_oracle_does():
    mt.check_linearity(conv_flipped_kernel, wrt=("x", "w"), max_examples=EXAMPLES)
    report = mt.check_backward(conv_flipped_kernel, mt.conv_cases(), oracle=oracles.conv2d,
                               max_examples=EXAMPLES, raise_on_failure=False)
    assert report.failure.check == "forward"
    assert report.failure.case.shapes()["w"][2:] in ((1, 2), (2, 1))  # the smallest asymmetry


# -- the adjoint -----------------------------------------------------------------------------------

def col2im_assigning(cols, input_shape, kh, kw, stride, padding):
    """col2im with '=' where overlapping windows must add: right only where windows do not
    overlap."""
    N, C, H, W = input_shape
    OH, OW = check_geometry("col2im", input_shape, kh, kw, stride, padding)
    out = np.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    blocks = cols.reshape(C, kh, kw, N, OH, OW)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] = blocks[:, i, j]
    return out[:, :, padding:padding + H, padding:padding + W].swapaxes(0, 1)


class ConvAssigningOverlaps(Conv2d):
    def backward(self, gy):
        x, w, s, p = self.x, self.w, self.stride, self.padding
        C_out, _, kh, kw = w.shape
        g = channels_first_2d(gy)
        gw = (g @ im2col(x, kh, kw, s, p).T).reshape(w.shape)
        return col2im_assigning(w.reshape(C_out, -1).T @ g, x.shape, kh, kw, s, p), gw


def test_adjoint_catches_overlapping_windows_assigned_instead_of_summed():
    report = fails(mt.check_adjoint, ConvAssigningOverlaps)
    f = report.failure
    kh, kw = f.case.shapes()["w"][2:]
    assert f.check == "not the adjoint" and f.case.params["stride"] < max(kh, kw)  # overlaps
    assert "<op(x), v> =" in f.message


def test_adjoint_with_an_explicit_transpose_and_with_the_backward():
    mt.check_adjoint(F.conv2d, mt.conv_transpose2d, max_examples=EXAMPLES)
    mt.check_adjoint(F.conv2d, wrt="w", max_examples=EXAMPLES)

    def conv_transpose_without_overlap(y, w, stride, padding, input_shape):
        C_out = w.shape[0]
        cols = w.reshape(C_out, -1).T @ channels_first_2d(y)
        return col2im_assigning(cols, input_shape, *w.shape[2:], stride, padding)
    fails(mt.check_adjoint, F.conv2d, conv_transpose_without_overlap)


def test_adjoint_cannot_see_a_forward_wrong_the_same_way_as_its_backward():
    # The flipped kernel's backward is the exact transpose of its (wrong) forward.
    mt.check_adjoint(conv_flipped_kernel, max_examples=EXAMPLES)


# -- batch norm's invariance -----------------------------------------------------------------------

class ScaleOnly(mr.Function):
    """Batch norm that forgets to subtract the mean: x / sigma * gamma + beta."""

    def __init__(self, training, running_mean, running_var, momentum, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        m = channels_first_2d(x)
        y = m / np.sqrt(m.var(axis=1, keepdims=True) + self.eps) * gamma[:, None] + beta[:, None]
        return from_channels_first_2d(y, x.shape)


class UnbiasedVariance(BatchNorm):
    """Batch norm normalising with the unbiased variance (what the running estimate uses)."""

    def forward(self, x, gamma, beta):
        m = channels_first_2d(x)
        self.invstd = 1 / np.sqrt(m.var(axis=1, ddof=1) + self.eps)
        self.xhat = (m - m.mean(axis=1, keepdims=True)) * self.invstd[:, None]
        self.gamma = gamma
        return from_channels_first_2d(gamma[:, None] * self.xhat + beta[:, None], x.shape)


def test_invariance_catches_a_mean_not_subtracted():
    f = fails(mt.check_batch_norm_invariance, ScaleOnly).failure
    assert f.check == "not invariant" and f.input == "x"


def test_invariance_cannot_see_the_unbiased_variance_but_the_oracle_does():
    mt.check_batch_norm_invariance(UnbiasedVariance, max_examples=EXAMPLES)
    mt.check_batch_norm_invariance(F.batch_norm, max_examples=EXAMPLES)
    report = mt.check_backward(UnbiasedVariance, mt.batch_norm_cases(training=True),
                               oracle=lambda *a, **p: oracles.batch_norm(*a, **p)[0],
                               max_examples=EXAMPLES, raise_on_failure=False)
    assert report.failure.check == "forward"


# -- idempotence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op, ok", [
    (F.relu, True),
    (lambda x: x.maximum(x * 0.1), False),  # leaky: relu(relu(x)) != relu(x) for x < 0
    (lambda x: x * 1.0, True),              # the identity: idempotent, and not a ReLU
    (lambda x: x * 0.0, True),              # the zero map, likewise
])
def test_idempotence_of_relu_and_what_it_cannot_tell_apart(op, ok):
    report = mt.check_idempotence(op, max_examples=EXAMPLES, raise_on_failure=False)
    assert bool(report) is ok
    if not ok:  # one negative number is enough
        assert np.prod(report.failure.case.shapes()["x"]) <= 2
