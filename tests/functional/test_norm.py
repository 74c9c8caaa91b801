"""Batch norm per channel, checked against its formula in float64.

Specification (docstring of minires/functional/norm.py): over the M = N*H*W values of a channel,
training normalises with the batch mean and *biased* variance,
y = gamma * (x - mu) / sqrt(var + eps) + beta, and updates
running = (1 - momentum) * running + momentum * stat with the *unbiased*
variance, as PyTorch does; eval normalises with the running statistics and leaves them alone.
Training-mode output is invariant to a per-channel shift and positive scale of x. Tests taking
``impl`` hold for the reference op and for its fast twin (tests/fast/ checks it against the
reference); the property tests are minires.testing's.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.norm import BatchNorm

import oracles
from opcheck import EXAMPLES, SETTINGS, forbid_forward, forward_backward, leaf, on_layout

seeds = st.integers(0, 2**16)


@st.composite
def bn_shapes(draw):
    """(N, C) or (N, C, H, W) with at least two values per channel."""
    C = draw(st.integers(1, 3))
    if draw(st.booleans()):
        return (draw(st.integers(2, 6)), C)
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (max(N, 2) if H * W == 1 else N, C, H, W)


def bn_problem(shape, seed):
    """x with a per-channel offset and scale (so normalising has work to do), gamma, beta, running
    stats."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    view = (1, C) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape)  # then a scale and an offset per channel, drawn in this order
    x = x * rng.uniform(0.5, 3.0, C).reshape(view) + rng.uniform(-3, 3, C).reshape(view)
    gamma = rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)
    return x, gamma, rng.standard_normal(C), rng.standard_normal(C), rng.uniform(0.5, 2.0, C)


# -- values against the formula --------------------------------------------------------------------

@SETTINGS
@given(bn_shapes(), seeds, st.sampled_from([0.1, 0.3, 1.0]))
def test_batch_norm_training_matches_formula_and_updates_running_stats(device, impl, shape, seed,
                                                                        momentum):
    x, gamma, beta, rm, rv = bn_problem(shape, seed)
    rm_dev, rv_dev = on_layout(device, rm), on_layout(device, rv)
    y = F.batch_norm(leaf(x, device), leaf(gamma, device), leaf(beta, device), rm_dev, rv_dev,
                     training=True, momentum=momentum)
    y_ref, rm_ref, rv_ref = oracles.batch_norm(x, gamma, beta, rm, rv, True, momentum)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mr.backend.as_numpy(rm_dev), rm_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mr.backend.as_numpy(rv_dev), rv_ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(bn_shapes(), seeds)
def test_batch_norm_eval_uses_running_stats_and_leaves_them_alone(device, impl, shape, seed):
    x, gamma, beta, rm, rv = bn_problem(shape, seed)
    rm_dev, rv_dev = on_layout(device, rm), on_layout(device, rv)
    y = F.batch_norm(leaf(x, device), leaf(gamma, device), leaf(beta, device), rm_dev, rv_dev,
                     training=False)
    np.testing.assert_allclose(y.numpy(), oracles.batch_norm(x, gamma, beta, rm, rv, False)[0],
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(mr.backend.as_numpy(rm_dev), rm)
    np.testing.assert_array_equal(mr.backend.as_numpy(rv_dev), rv)


def test_running_variance_is_unbiased_as_in_pytorch(impl):
    # Channel values {1, 3}: mean 2, biased variance 1 (normalises the batch), unbiased 2 (the
    # estimate).
    rm, rv = np.zeros(1), np.ones(1)
    y = F.batch_norm(mr.Tensor(np.array([[1.0], [3.0]])), None, None, rm, rv, training=True,
                     momentum=0.1, eps=0.0)
    np.testing.assert_allclose(y.data[:, 0], [-1.0, 1.0])
    np.testing.assert_allclose(rm, [0.9 * 0 + 0.1 * 2.0])
    np.testing.assert_allclose(rv, [0.9 * 1 + 0.1 * 2.0])


def test_running_stats_converge_over_repeated_steps(impl):
    # Same batch every step: running_mean -> batch mean, running_var -> unbiased batch variance.
    x = np.random.default_rng(0).standard_normal((8, 3, 2, 2)) * 2 + 5
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(200):
        F.batch_norm(mr.Tensor(x), None, None, rm, rv, training=True, momentum=0.1)
    per_channel = x.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(rm, per_channel.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(rv, per_channel.var(axis=1, ddof=1), rtol=1e-6)


@SETTINGS
@given(bn_shapes(), seeds)
def test_batch_norm_training_output_has_zero_mean_and_unit_variance_per_channel(impl, shape, seed):
    x = bn_problem(shape, seed)[0]
    eps = 1e-5
    y = F.batch_norm(mr.Tensor(x), None, None, None, None, training=True, eps=eps).data
    per_channel = np.moveaxis(y, 1, 0).reshape(shape[1], -1)
    var_x = np.moveaxis(x, 1, 0).reshape(shape[1], -1).var(axis=1)
    np.testing.assert_allclose(per_channel.mean(axis=1), 0.0, atol=1e-10)
    np.testing.assert_allclose(per_channel.var(axis=1), 1.0, atol=1e-2)
    # exactly var / (var + eps): eps keeps a near-constant channel from blowing up
    np.testing.assert_allclose(per_channel.var(axis=1), var_x / (var_x + eps), rtol=1e-10)


# -- the property tests ---------------------------------------------------------------------------

def batch_norm_oracle(x, weight, bias, **params):
    return oracles.batch_norm(x, weight, bias, **params)[0]


def test_batch_norm_check_backward(device, impl):
    # Forward against the per-channel loop, gradients of x, gamma and beta against central
    # differences, both layouts, float32 against float64: training and eval, (N, C) and NCHW.
    mt.check_backward(F.batch_norm, mt.batch_norm_cases(), oracle=batch_norm_oracle,
                      max_examples=EXAMPLES, device=device)


def test_batch_norm_is_invariant_to_shift_and_scale_per_channel(impl):
    mt.check_batch_norm_invariance(F.batch_norm, max_examples=EXAMPLES)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_matches_derivative_of_formula(device, impl, training):
    # Analytic gradients on the device against central differences of the float64 oracle.
    x, gamma, beta, rm, rv = bn_problem((3, 2, 2, 3), 0)
    fn = lambda x, g, b: F.batch_norm(x, g, b, on_layout(device, rm.copy()),
                                      on_layout(device, rv.copy()), training=training)
    _, grads, gy = forward_backward(fn, [leaf(a, device) for a in (x, gamma, beta)])
    expected = oracles.numeric_grad(
        lambda x, g, b: oracles.batch_norm(x, g, b, rm, rv, training)[0], [x, gamma, beta], gy)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


class BatchNormMissingTerm(BatchNorm):
    """BatchNorm whose training backward omits one term of dx (``drop``), to test the gradcheck
    itself.

    dx = gamma * invstd * (g - xhat * dgamma / M - dbeta / M), written out here per channel.
    """

    drop = None

    def backward(self, gy):
        C = gy.shape[1]
        g = np.moveaxis(gy, 1, 0).reshape(C, -1)
        xhat = self.xhat  # (C, M), saved by the reference forward
        M = g.shape[1]
        dbeta, dgamma = g.sum(axis=1), (g * xhat).sum(axis=1)
        inner = g.copy()
        if self.drop != "xhat * dgamma / M":
            inner -= xhat * dgamma[:, None] / M
        if self.drop != "dbeta / M":
            inner -= dbeta[:, None] / M
        dx = (self.gamma * self.invstd)[:, None] * inner
        dx = np.moveaxis(dx.reshape((C, gy.shape[0]) + gy.shape[2:]), 0, 1)
        return dx, dgamma, dbeta


def batch_norm_missing(drop):
    cls = type("BatchNormWithout", (BatchNormMissingTerm,), {"drop": drop})
    return lambda x, g, b: cls(True, None, None, 0.1, 1e-5)(x, g, b)


def bn_leaves(seed=0):
    x, gamma, beta = bn_problem((4, 2, 2, 2), seed)[:3]
    return [mr.Tensor(a, requires_grad=True) for a in (x, gamma, beta)]


def test_batch_norm_test_double_with_all_terms_passes_gradcheck():
    # Control: the hand-written backward above is right when nothing is dropped.
    assert mr.gradcheck(batch_norm_missing(None), *bn_leaves())


@pytest.mark.parametrize("drop", ["xhat * dgamma / M", "dbeta / M"])
def test_gradcheck_catches_batch_norm_backward_missing_a_term(drop):
    with pytest.raises(mr.GradcheckError, match=r"input 0 of shape \(4, 2, 2, 2\)"):
        mr.gradcheck(batch_norm_missing(drop), *bn_leaves())


def test_sum_based_check_misses_the_dropped_dgamma_term():
    # With upstream gradient all ones, dgamma = sum(xhat) = 0, so the dropped term is zero, and
    # d sum(y)/dx = 0 both numerically and analytically: a check of sum(y) passes the broken
    # backward.
    x, gamma, beta = bn_leaves()
    fn = batch_norm_missing("xhat * dgamma / M")
    y = fn(x, gamma, beta)
    y.backward(np.ones(y.shape))
    analytic = x.grad
    numeric = oracles.numeric_grad(
        lambda x: fn(mr.Tensor(x), gamma.detach(), beta.detach()).data, [x.data],
        np.ones(y.shape))[0]
    np.testing.assert_allclose(numeric, 0.0, atol=1e-6)
    np.testing.assert_allclose(analytic, numeric, atol=1e-6)  # the sum-based check is satisfied...
    with pytest.raises(mr.GradcheckError):                    # ...the random-contraction one is not
        mr.gradcheck(fn, x, gamma, beta)


# -- layout and dtype of the running statistics ----------------------------------------------------

@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_running_stats_in_float32_and_channel_major(impl, training):
    # check_backward covers the output and gradients; the running statistics are updated in place.
    x, gamma, beta, rm, rv = (a.astype(np.float32) for a in bn_problem((4, 3, 2, 2), 0))
    rm_dev, rv_dev = rm.copy(), rv.copy()
    F.batch_norm(leaf(x, "cpu", "channel_major"), leaf(gamma), leaf(beta), rm_dev, rv_dev,
                 training=training)
    _, rm_ref, rv_ref = oracles.batch_norm(x, gamma, beta, rm, rv, training)
    assert rm_dev.dtype == np.float32 and rv_dev.dtype == np.float32
    np.testing.assert_allclose(rm_dev, rm_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv_dev, rv_ref, rtol=1e-5, atol=1e-6)


# -- bad input -------------------------------------------------------------------------------------

C = 3


@pytest.mark.parametrize("x_shape, param_shapes, training, error, match", [
    ((4, C, 2, 2), dict(weight=(C + 1,)), True, ValueError,
     r"weight must have shape \(3,\) for 3 channels"),
    ((4, C, 2, 2), dict(bias=(C, 1)), True, ValueError, r"bias must have shape \(3,\)"),
    ((4, C, 2, 2), dict(running_mean=(C - 1,)), True, ValueError,
     r"running_mean must have shape \(3,\)"),
    ((4, C, 2, 2), dict(running_var=(1,)), False, ValueError,
     r"running_var must have shape \(3,\)"),
    ((4, C, 2), {}, True, ValueError, r"x must be \(N, C\) or \(N, C, H, W\)"),
    ((1, C), {}, True, ValueError, r"training needs more than one value per channel"),
    ((1, C, 1, 1), {}, True, ValueError, r"training needs more than one value per channel"),
])
def test_batch_norm_rejects_bad_shapes_before_computing(monkeypatch, x_shape, param_shapes,
                                                        training, error, match):
    forbid_forward(monkeypatch, BatchNorm)
    shapes = dict(weight=(C,), bias=(C,), running_mean=(C,), running_var=(C,)) | param_shapes
    weight, bias = (mr.Tensor(np.ones(shapes[k]), requires_grad=True)
                    for k in ("weight", "bias"))
    rm, rv = np.zeros(shapes["running_mean"]), np.ones(shapes["running_var"])
    with pytest.raises(error, match=match):
        F.batch_norm(mr.Tensor(np.ones(x_shape)), weight, bias, rm, rv, training=training)
    assert (rm == 0).all() and (rv == 1).all()  # nothing was updated


def test_batch_norm_rejects_running_stats_of_another_dtype(monkeypatch):
    forbid_forward(monkeypatch, BatchNorm)
    x = mr.Tensor(np.ones((4, 2)), dtype="float32")
    with pytest.raises(TypeError, match=r"running_mean is float64 .* expected float32"):
        F.batch_norm(x, None, None, np.zeros(2), np.ones(2, dtype=np.float32), training=True)


def test_batch_norm_eval_needs_running_stats(monkeypatch):
    forbid_forward(monkeypatch, BatchNorm)
    with pytest.raises(ValueError, match=r"eval mode .* needs running_mean and running_var"):
        F.batch_norm(mr.Tensor(np.ones((4, 2))), None, None, None, None, training=False)


def test_batch_norm_rejects_momentum_outside_unit_interval(monkeypatch):
    forbid_forward(monkeypatch, BatchNorm)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        F.batch_norm(mr.Tensor(np.ones((4, 2))), None, None, np.zeros(2), np.ones(2),
                     training=True, momentum=1.5)
