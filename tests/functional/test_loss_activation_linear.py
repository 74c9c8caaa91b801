"""ReLU, linear and softmax cross-entropy: the head of the network and its nonlinearity.

Specification: relu(x) = max(x, 0) with gradient 0 at x == 0; linear(x, w, b) = x @ w.T + b;
softmax_cross_entropy is the batch mean of -log softmax(z)[t], log(C) for uniform logits, with
gradient (softmax(z) - onehot(t)) / N, finite for logits of size 1e4; labels must be integers in
[0, C). float32 stays float32 and both memory layouts give the same numbers (minires.testing's
check_backward, against the oracles); bad shapes rejected before any arithmetic.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minires as mr
from minires import functional as F, testing as mt
from minires.functional.linear import Linear
from minires.functional.loss import SoftmaxCrossEntropy

import oracles
from opcheck import EXAMPLES, SETTINGS, forbid_forward, forward_backward, leaf, on_layout

seeds = st.integers(0, 2**16)


def away_from_zero(shape, seed, margin=0.1):
    """Values with |x| >= margin: central differences with eps = 1e-6 never straddle ReLU's kink."""
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


# -- ReLU ------------------------------------------------------------------------------------------

def test_relu_check_backward(device, impl):
    # |x| >= 0.05: central differences with eps = 1e-6 never straddle the kink.
    mt.check_backward(F.relu, mt.elementwise_cases(margin=0.05),
                      oracle=lambda x: np.where(x > 0, x, 0.0), max_examples=EXAMPLES,
                      device=device)


def test_relu_is_idempotent(impl):
    mt.check_idempotence(F.relu, max_examples=EXAMPLES)


def test_relu_gradient_at_zero_is_zero(device, impl):
    # The documented subgradient at the kink: 0, not 1/2 (as a tie-splitting maximum would give).
    x = leaf(np.array([-1.0, -0.0, 0.0, 1e-300, 2.0]), device)
    y, (gx,), _ = forward_backward(F.relu, [x], gy=np.full(5, 3.0))
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 1e-300, 2.0])
    np.testing.assert_array_equal(gx, [0.0, 0.0, 0.0, 3.0, 3.0])


def test_relu_keeps_channel_major_layout(impl):
    # minires relies on elementwise ops keeping channel-major memory (layout.py): no copy per layer.
    x = leaf(away_from_zero((3, 4, 5, 2), 0), "cpu", "channel_major")
    assert F.relu(x).data.transpose(1, 0, 2, 3).flags.c_contiguous


# -- linear ----------------------------------------------------------------------------------------

def test_linear_check_backward(device):
    mt.check_backward(F.linear, mt.linear_cases(), oracle=oracles.linear, max_examples=EXAMPLES,
                      device=device)


@SETTINGS
@given(mt.linear_cases())
def test_linear_gradients_are_the_derivative_of_the_oracle(device, case):
    arrays = case.arrays()
    y, grads, gy = forward_backward(F.linear, [leaf(a, device) for a in arrays])
    expected = oracles.numeric_grad(oracles.linear, arrays, gy)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("x_shape, w_shape, b_shape, match", [
    ((4, 5), (3, 6), None, r"x has 5 features but w expects 6"),
    ((4, 5, 1), (3, 5), None, r"x must be \(N, in\) and w \(out, in\)"),
    ((4, 5), (3, 5, 1), None, r"x must be \(N, in\) and w \(out, in\)"),
    ((4, 5), (3, 5), (5,), r"b must have shape \(3,\)"),
    ((4, 5), (3, 5), (1, 3), r"b must have shape \(3,\)"),
])
def test_linear_rejects_bad_shapes_before_computing(monkeypatch, x_shape, w_shape, b_shape, match):
    forbid_forward(monkeypatch, Linear)
    b = None if b_shape is None else mr.Tensor(np.zeros(b_shape))
    with pytest.raises(ValueError, match=match):
        F.linear(mr.Tensor(np.zeros(x_shape)), mr.Tensor(np.zeros(w_shape)), b)


# -- softmax cross-entropy -------------------------------------------------------------------------

def test_cross_entropy_check_backward(device):
    mt.check_backward(F.softmax_cross_entropy, mt.cross_entropy_cases(), max_examples=EXAMPLES,
                      oracle=lambda z, labels: np.array(oracles.cross_entropy(z, labels)),
                      device=device)


@SETTINGS
@given(mt.cross_entropy_cases(), st.floats(0.1, 3.0))
def test_cross_entropy_gradient_is_softmax_minus_onehot(device, case, upstream):
    (z,), t = case.arrays(), case.params["labels"]
    loss, (gz,), _ = forward_backward(lambda z: F.softmax_cross_entropy(z, on_layout(device, t)),
                                      [leaf(z, device)], gy=np.array(upstream))
    assert loss.shape == ()
    np.testing.assert_allclose(loss, oracles.cross_entropy(z, t), rtol=1e-12, atol=1e-12)
    expected = upstream * (oracles.softmax(z) - oracles.one_hot(t, z.shape[1])) / z.shape[0]
    np.testing.assert_allclose(gz, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("C", [1, 2, 10, 1000])
def test_cross_entropy_of_uniform_logits_is_log_C(device, C):
    for value in (0.0, 7.5, -1e4):  # any constant row is uniform
        z = on_layout(device, np.full((3, C), value))
        loss = F.softmax_cross_entropy(mr.Tensor(z), np.array([0, C - 1, C // 2]))
        np.testing.assert_allclose(loss.item(), np.log(C), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_stable_for_huge_logits(device, dtype):
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4]])
    t = np.array([1, 2, 0])
    loss, (gz,), _ = forward_backward(lambda z: F.softmax_cross_entropy(z, t),
                                      [leaf(z.astype(dtype), device)],
                                      gy=np.array(1.0))
    assert np.isfinite(loss) and np.isfinite(gz).all()
    # row 0: -log softmax = 1e4 exactly; row 1: log 2; row 2: log 3
    np.testing.assert_allclose(loss, (1e4 + np.log(2) + np.log(3)) / 3, rtol=1e-6)
    np.testing.assert_allclose(gz, (oracles.softmax(z) - oracles.one_hot(t, 3)) / 3, atol=1e-6)


def test_cross_entropy_accepts_labels_as_a_list_or_any_integer_dtype():
    z = mr.Tensor(np.random.default_rng(0).standard_normal((3, 4)))
    expected = oracles.cross_entropy(z.data, [3, 0, 1])
    for labels in ([3, 0, 1], np.array([3, 0, 1], dtype=np.uint8),
                   np.array([3, 0, 1], dtype=np.int32)):
        np.testing.assert_allclose(F.softmax_cross_entropy(z, labels).item(), expected, rtol=1e-12)


@pytest.mark.parametrize("logits_shape, labels, error, match", [
    ((3, 4), np.array([0.0, 1.0, 2.0]), TypeError, r"labels must be integers"),
    ((3, 4), np.array([True, False, True]), TypeError, r"labels must be integers"),
    ((3, 4), [0.5, 1, 2], TypeError, r"labels must be integers"),
    ((3, 4), np.array([0, 4, 1]), ValueError,
     r"labels must be in \[0, 4\), got values in \[0, 4\]"),
    ((3, 4), np.array([0, -1, 1]), ValueError,
     r"labels must be in \[0, 4\), got values in \[-1, 1\]"),
    ((3, 4), np.array([0, 1]), ValueError, r"labels must have shape \(3,\)"),
    ((3, 4), np.array([[0], [1], [2]]), ValueError, r"labels must have shape \(3,\)"),
    ((3, 4, 1), np.array([0, 1, 2]), ValueError, r"logits must be \(N, C\)"),
    ((12,), np.array([0, 1, 2]), ValueError, r"logits must be \(N, C\)"),
])
def test_cross_entropy_rejects_bad_labels_and_logits_before_computing(monkeypatch, logits_shape,
                                                                      labels, error, match):
    forbid_forward(monkeypatch, SoftmaxCrossEntropy)
    with pytest.raises(error, match=match):
        F.softmax_cross_entropy(mr.Tensor(np.zeros(logits_shape)), labels)


def test_cross_entropy_rejects_labels_given_as_a_tensor(monkeypatch):
    forbid_forward(monkeypatch, SoftmaxCrossEntropy)
    with pytest.raises(TypeError, match=r"labels must be an integer array, not a Tensor"):
        F.softmax_cross_entropy(mr.Tensor(np.zeros((2, 3))), mr.Tensor(np.array([0.0, 1.0])))
