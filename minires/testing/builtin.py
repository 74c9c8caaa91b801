"""The built-in ops' checks, which ``python -m minires check`` runs: :func:`builtin_checks`.

The forward formulas here are independent of minires's own code: NumPy only, written from the
definitions with sliding windows, nothing shared with minires's im2col, pooling or norm code
(tests/oracles.py has slower nested-loop versions that the test suite uses, and checks these).
``RESNET_CONVS`` and ``RESNET_POOL`` are ResNet's own geometries, small, checked on every run.
"""
import contextlib

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..switch import reference_ops
from .backward import check_backward
from .case import Case, Values
from .properties import (check_adjoint, check_batch_norm_invariance, check_idempotence,
                         check_linearity, conv_transpose2d)
from .search import MAX_EXAMPLES
from .strategies import (batch_norm_cases, cases, conv_cases, cross_entropy_cases, distinct_seeds,
                         elementwise_cases, linear_cases, nchw, pad_channels_cases, pool_cases,
                         seeds, shapes, values)


# -- independent forward formulas ------------------------------------------------------------------

def _windows(x, kh, kw, stride, padding, value=0.0):
    """(N, C, OH, OW, kh, kw): every window of x padded by ``padding`` with ``value``."""
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    xpad = np.pad(x, pad, constant_values=value)
    return np.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(2, 3))[
        :, :, ::stride, ::stride]


def conv2d_formula(x, w, b=None, stride=1, padding=0):
    """y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, s*p + i, s*q + j]."""
    y = np.einsum("ncpqij,ocij->nopq", _windows(x, w.shape[2], w.shape[3], stride, padding), w)
    return y if b is None else y + b[None, :, None, None]


def max_pool2d_formula(x, kernel_size, stride=None, padding=0):
    s = kernel_size if stride is None else stride
    return _windows(x, kernel_size, kernel_size, s, padding, -np.inf).max(axis=(4, 5))


def avg_pool2d_formula(x, kernel_size, stride=None, padding=0):
    s = kernel_size if stride is None else stride
    return _windows(x, kernel_size, kernel_size, s, padding).mean(axis=(4, 5))


def batch_norm_formula(x, weight, bias, running_mean, running_var, training, momentum=0.1,
                       eps=1e-5):
    """gamma * (x - mu) / sqrt(var + eps) + beta per channel; batch statistics (biased variance)
    in training, the running ones in eval."""
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes) if training else running_mean
    var = x.var(axis=axes) if training else running_var
    return weight.reshape(view) * (x - mu.reshape(view)) / np.sqrt(var.reshape(view) + eps) + \
        bias.reshape(view)


def cross_entropy_formula(logits, labels):
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return np.array(-logp[np.arange(len(labels)), labels].mean())


def pad_channels_formula(x, out_channels, stride):
    N, C, H, W = x.shape
    y = np.zeros((N, out_channels, -(-H // stride), -(-W // stride)))
    y[:, :C] = x[:, :, ::stride, ::stride]
    return y


# -- ResNet's own geometries -----------------------------------------------------------------------

def _resnet_conv(x, w, stride, padding, bias=False, seed=7):
    inputs = {"x": Values(x, seed), "w": Values(w, seed + 1)}
    if bias:
        inputs["b"] = Values((w[0],), seed + 2)
    return Case(inputs, stride=stride, padding=padding)


RESNET_CONVS = (
    _resnet_conv((1, 2, 9, 8), (2, 2, 7, 7), 2, 3),             # the 7x7/2 stem, padding 3
    _resnet_conv((2, 2, 5, 5), (3, 2, 3, 3), 1, 1, bias=True),  # 3x3/1 "same"
    _resnet_conv((2, 2, 6, 6), (2, 2, 3, 3), 2, 1),             # 3x3/2 downsampling
    _resnet_conv((2, 3, 5, 5), (2, 3, 1, 1), 2, 0, bias=True),  # 1x1/2 projection shortcut
)
"""The convolutions ResNet itself uses, small: always checked, whatever hypothesis draws."""

RESNET_POOL = Case({"x": Values((2, 2, 7, 6), 7, distinct=True)}, kernel_size=3, stride=2,
                   padding=1)
"""The 3x3/2, padding 1 max pool after ResNet's first convolution."""


# -- every built-in op's check ---------------------------------------------------------------------

@st.composite
def _broadcast_cases(draw, positive_b=False):
    bs = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    (sa, sb), (ka, kb) = bs.input_shapes, distinct_seeds(draw, 2)
    b = Values(sb, kb, bounds=(0.5, 2.0)) if positive_b else Values(sb, kb)
    return Case({"a": Values(sa, ka), "b": b})


@st.composite
def _reduction_cases(draw):
    s = draw(shapes(max_dims=3, max_side=3))
    axis = draw(st.none() | st.integers(-len(s), len(s) - 1) | st.lists(
        st.integers(0, len(s) - 1), min_size=1, max_size=len(s), unique=True).map(tuple))
    return Case({"a": Values(s, draw(seeds), distinct=True)}, axis=axis,
                keepdims=draw(st.booleans()))


@st.composite
def _matmul_cases(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    a_batch = tuple(1 if draw(st.booleans()) else d for d in batch)
    ka, kb = distinct_seeds(draw, 2)
    return Case({"a": Values(a_batch + (n, k), ka), "b": Values(batch + (k, m), kb)})


@st.composite
def _layout_op_cases(draw, kind):
    s = draw(shapes(max_dims=4, max_side=3))
    a = Values(s, draw(seeds))
    if kind == "reshape":
        return Case({"a": a}, shape=draw(st.sampled_from([(-1,), s[::-1], (1,) + s])))
    if kind == "transpose":
        return Case({"a": a}, axes=tuple(draw(st.permutations(range(len(s))))))
    if kind == "broadcast_to":
        target = draw(hnp.broadcastable_shapes(s, max_dims=len(s) + 1, max_side=3))
        return Case({"a": a}, shape=tuple(np.broadcast_shapes(target, s)))
    return Case({"a": a}, index=draw(hnp.basic_indices(s, allow_newaxis=True)))


@contextlib.contextmanager
def _path(reference):
    if reference is None:
        yield
    else:
        with reference_ops(reference):
            yield


def builtin_checks():
    """Every built-in op's check: a list of (name, run), ``run(inputs=None, max_examples=...,
    seed=None) -> Report`` (``inputs``: another strategy, or one Case, instead of the op's own).

    The ops with a fast twin (conv2d, batch_norm, relu) are checked on both paths; then the
    metamorphic properties of convolution, batch norm and ReLU.
    """
    from .. import functional as F

    def backward_check(name, op, inputs, oracle, reference=None, examples=()):
        def run(inputs=inputs, **options):
            with _path(reference):
                return check_backward(op, inputs, oracle, examples=examples, name=name,
                                      raise_on_failure=False, **options)
        return name, run

    def property_check(name, check, op, **kwargs):
        def run(inputs=None, max_examples=MAX_EXAMPLES, seed=None):
            return check(op, inputs=inputs, max_examples=max_examples, seed=seed,
                         raise_on_failure=False, **kwargs)
        return name, run

    relu_cases = elementwise_cases(shape=shapes(), margin=0.05)
    out = []
    for path, label in ((False, ""), (True, ".reference")):
        out += [
            backward_check("conv2d" + label, F.conv2d, conv_cases(), conv2d_formula, path,
                           RESNET_CONVS),
            backward_check("batch_norm" + label, F.batch_norm, batch_norm_cases(),
                           batch_norm_formula, path),
            backward_check("relu" + label, F.relu, relu_cases,
                           lambda x: np.where(x > 0, x, 0.0), path),
        ]
    out += [
        backward_check("max_pool2d", F.max_pool2d, pool_cases(), max_pool2d_formula,
                       examples=[RESNET_POOL]),
        backward_check("avg_pool2d", F.avg_pool2d, pool_cases(), avg_pool2d_formula),
        backward_check("global_avg_pool2d", F.global_avg_pool2d,
                       cases(x=values(nchw())), lambda x: x.mean(axis=(2, 3))),
        backward_check("linear", F.linear, linear_cases(),
                       lambda x, w, b=None: x @ w.T + (0 if b is None else b)),
        backward_check("softmax_cross_entropy", F.softmax_cross_entropy, cross_entropy_cases(),
                       cross_entropy_formula),
        backward_check("pad_channels", F.pad_channels, pad_channels_cases(),
                       pad_channels_formula),
        backward_check("add", F.add, _broadcast_cases(), np.add),
        backward_check("sub", F.sub, _broadcast_cases(), np.subtract),
        backward_check("mul", F.mul, _broadcast_cases(), np.multiply),
        backward_check("div", F.div, _broadcast_cases(positive_b=True), np.divide),
        backward_check("maximum", F.maximum, _broadcast_cases(), np.maximum),
        backward_check("matmul", F.matmul, _matmul_cases(), np.matmul),
        backward_check("neg", F.neg, elementwise_cases(("a",)), np.negative),
        backward_check("exp", F.exp, elementwise_cases(("a",)), np.exp),
        backward_check("log", F.log, elementwise_cases(("a",), bounds=(0.2, 3.0)), np.log),
        backward_check("pow", F.pow, cases(a=values(bounds=(0.2, 2.0)),
                                           p=st.sampled_from([2, 3, 0.5, -1.5])),
                       lambda a, p: a ** p),
        backward_check("sum", F.sum, _reduction_cases(), np.sum),
        backward_check("mean", F.mean, _reduction_cases(), np.mean),
        backward_check("max", F.max, _reduction_cases(), np.amax),
        backward_check("reshape", F.reshape, _layout_op_cases("reshape"), np.reshape),
        backward_check("transpose", F.transpose, _layout_op_cases("transpose"), np.transpose),
        backward_check("broadcast_to", F.broadcast_to, _layout_op_cases("broadcast_to"),
                       np.broadcast_to),
        backward_check("getitem", F.getitem, _layout_op_cases("getitem"),
                       lambda a, index: a[index]),
        property_check("conv2d.linearity", check_linearity, F.conv2d, wrt=("x", "w")),
        property_check("conv2d.adjoint", check_adjoint, F.conv2d, adjoint=conv_transpose2d),
        property_check("batch_norm.invariance", check_batch_norm_invariance, F.batch_norm),
        property_check("relu.idempotence", check_idempotence, F.relu),
    ]
    return out
