"""Every basic op gradchecked in float64, over hypothesis-generated shapes and broadcasts."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minires as mr
from minires import functional as F

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def leaf(shape, seed, low=-2.0, high=2.0):
    a = np.random.default_rng(seed).uniform(low, high, size=shape)
    return mr.Tensor(a, requires_grad=True, dtype="float64")


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
       st.sampled_from(["add", "sub", "mul", "div", "maximum"]), st.integers(0, 2**16))
def test_binary_ops_with_broadcasting(bs, op, seed):
    sa, sb = bs.input_shapes
    a = leaf(sa, seed)
    b = leaf(sb, seed + 1, 0.5, 2.0) if op == "div" else leaf(sb, seed + 1)
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b)}[op]
    # maximum: independent uniform draws are never within eps of a tie (the kink), in practice
    y = fn(a, b)
    assert y.shape == bs.result_shape
    assert mr.gradcheck(fn, a, b)


@SETTINGS
@given(shapes, st.integers(0, 2**16))
def test_unary_ops(shape, seed):
    x = leaf(shape, seed, 0.2, 2.0)  # positive, for log and fractional powers
    for fn in (lambda x: -x, lambda x: x.exp(), lambda x: x.log(), lambda x: x ** 3, lambda x: x ** 0.5,
               lambda x: x ** -1.5, lambda x: 2.0 - x, lambda x: 3.0 / x):
        assert mr.gradcheck(fn, x)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), st.data(), st.booleans(), st.integers(0, 2**16))
def test_reductions_over_axes(shape, data, keepdims, seed):
    x = leaf(shape, seed)
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1) |
                     st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True).map(tuple))
    for name in ("sum", "mean", "max"):
        fn = lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(fn(x).data, getattr(np, name if name != "max" else "amax")(x.data, axis=axis,
                                                                                             keepdims=keepdims))
        assert mr.gradcheck(fn, x)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.lists(st.integers(1, 3), max_size=2),
       st.lists(st.integers(1, 3), max_size=2), st.integers(0, 2**16))
def test_matmul_2d_and_batched_with_broadcast_batch_dims(n, k, m, batch_a, batch_b, seed):
    # batch dims broadcast from the right; make them compatible by putting 1 where they differ
    nb = min(len(batch_a), len(batch_b))
    for i in range(1, nb + 1):
        if batch_a[-i] != batch_b[-i]:
            batch_b[-i] = 1
    a, b = leaf(tuple(batch_a) + (n, k), seed), leaf(tuple(batch_b) + (k, m), seed + 1)
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data))
    assert mr.gradcheck(lambda a, b: a @ b, a, b)


def test_matmul_with_vectors_follows_numpy():
    A, v, w = leaf((3, 4), 0), leaf((4,), 1), leaf((3,), 2)
    assert (A @ v).shape == (3,) and (w @ A).shape == (4,) and (v @ v).shape == ()
    for fn in (lambda A, v, w: A @ v, lambda A, v, w: w @ A, lambda A, v, w: v @ v):
        assert mr.gradcheck(fn, A, v, w)


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), st.data(), st.integers(0, 2**16))
def test_reshape_transpose_broadcast_to(shape, data, seed):
    x = leaf(shape, seed)
    perm = data.draw(st.permutations(range(len(shape))))
    target = data.draw(hnp.broadcastable_shapes(shape, max_dims=len(shape) + 1).map(
        lambda s: np.broadcast_shapes(s, shape)))
    assert mr.gradcheck(lambda x: x.reshape(-1), x)
    assert mr.gradcheck(lambda x: x.reshape(x.size, 1).T, x)
    assert mr.gradcheck(lambda x: x.transpose(*perm) * mr.Tensor(np.arange(x.size, dtype=np.float64).reshape(
        tuple(shape[i] for i in perm))), x)
    assert mr.gradcheck(lambda x: x.broadcast_to(target), x)


def test_indexing_slices_ints_and_integer_arrays():
    x = leaf((4, 5), 7)
    for fn in (lambda x: x[1], lambda x: x[:, 1:4:2], lambda x: x[::-1, -1], lambda x: x[None, 2, :3],
               lambda x: x[np.array([3, 0, 3])], lambda x: x[[0, 1, 1], [4, 4, 2]], lambda x: x[..., 2]):
        assert mr.gradcheck(fn, x)
    with pytest.raises(IndexError, match=r"shape \(4, 5\)"):
        x[9]
    with pytest.raises(TypeError, match="integer"):
        x[np.array([0.5])]


def test_cast_between_float32_and_float64_is_differentiable():
    x = leaf((3,), 3)
    # linear in x, so a large eps is exact up to float32 rounding of x +- eps
    assert mr.gradcheck(lambda x: (x.float() * 2).double(), x, eps=1e-2, atol=1e-4, rtol=1e-3)
    assert x.float().dtype == np.float32


def test_axis_errors_name_the_axis():
    x = leaf((2, 3), 0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        x.mean(axis=(0, 0))
    with pytest.raises(TypeError, match="exponent"):
        x ** x


def test_flatten_merges_trailing_dimensions():
    x = leaf((2, 3, 4, 5), 1)
    assert F.flatten(x).shape == (2, 60)
    assert mr.gradcheck(F.flatten, x)
