"""Property tests for anyone's op: hypothesis strategies and ``check_backward``.

    from minires import testing as mt

    mt.check_backward(MyLeakyReLU)                                 # a Function subclass
    mt.check_backward(my_conv, inputs=mt.conv_cases(), oracle=my_loops)   # or a function of Tensors

A gradient check on one fixed input is how backprop bugs hide: an off-by-one in the padding that
shows only with stride 2 on an odd size, a backward right only for a batch of one image, a
transpose right only for square inputs. ``check_backward`` lets hypothesis generate the inputs
(shapes, strides, paddings, values), and for every example checks that

    shapes   backward returns one gradient per input, shaped like it, and leaves gy and the inputs
             as it found them
    forward  the output equals ``oracle(*arrays, **params)`` (when an oracle is given), to
             ``oracle_tol`` relative to the output's largest value
    layout   4-D inputs and upstream gradients laid out channel-major (a transposed view of a
             contiguous (C, N, H, W) array, the layout minires's convolutions produce, see
             ``minires/functional/layout.py``) give the NCHW numbers, to ``layout_tol``
    float32  float32 inputs give float32 outputs and gradients, equal to the float64 ones to
             ``float32_tol`` relative to each array's largest value
    gradient every input's gradient equals central differences (``minires.gradcheck``: float64,
             L = sum(v * y) with a random v, |analytic - numeric| <= atol + rtol * |numeric|)

On a failure hypothesis shrinks the example to the smallest one that still fails, and the report
names the check, the input, the largest error and where it is, and the one line that reruns exactly
that case. The examples are the same on every run (derandomized, no example database) unless a
``seed`` asks for others.

An example is a :class:`Case`: the op's tensor inputs by name, each a :class:`Values` (a shape and
the seed of the generator its numbers come from, so a report can print it in one line) or an array,
and its other arguments (stride, padding, ...). ``op`` is called as ``op(**params)(*tensors)`` for
a ``Function`` subclass and ``op(*tensors, **params)`` for a function.

Metamorphic checks need no oracle: :func:`check_linearity`, :func:`check_adjoint`,
:func:`check_batch_norm_invariance`, :func:`check_idempotence`. ``python -m minires check`` runs
all of this on every built-in op (:func:`builtin_checks`).

One file per idea:

    case.py        Values and Case: an example, and the Python that builds it again
    strategies.py  the hypothesis strategies that draw Cases (shapes, geometries, per-op cases)
    search.py      running a check over the examples, shrinking; how a check calls an op
    report.py      Failure, Report, CheckFailed: what a person reads when a check fails
    layouts.py     NCHW and channel-major memory, and one forward-backward
    backward.py    check_backward
    properties.py  the metamorphic checks, and conv_transpose2d
    builtin.py     the built-in ops' independent formulas, ResNet's geometries, builtin_checks

hypothesis is a test-time dependency: ``import minires`` does not need it; this package does.
"""
try:
    import hypothesis  # noqa: F401  (first: without it, one line that says what to install)
except ImportError:
    raise ImportError("minires.testing needs hypothesis, a test-time dependency: "
                      "pip install -e '.[dev]'") from None

from .backward import HINTS, check_backward
from .builtin import (RESNET_CONVS, RESNET_POOL, avg_pool2d_formula, batch_norm_formula,
                      builtin_checks, conv2d_formula, cross_entropy_formula, max_pool2d_formula,
                      pad_channels_formula)
from .case import Case, Values
from .layouts import LAYOUTS, forward_backward, on_layout
from .properties import (check_adjoint, check_batch_norm_invariance, check_idempotence,
                         check_linearity, conv_transpose2d)
from .report import CheckFailed, Failure, Report
from .search import MAX_EXAMPLES, sample
from .strategies import (arrays, batch_norm_cases, cases, conv_cases, conv_geometries,
                         cross_entropy_cases, dtypes, elementwise_cases, linear_cases, nchw,
                         pad_channels_cases, pool_cases, pool_geometries, seeds, shapes, values)

__all__ = [
    # examples and reports
    "Case", "Values", "Report", "CheckFailed", "sample",
    # the checks
    "check_backward", "check_linearity", "check_adjoint", "check_batch_norm_invariance",
    "check_idempotence", "builtin_checks",
    # strategies
    "seeds", "shapes", "dtypes", "values", "arrays", "nchw", "conv_geometries", "pool_geometries",
    "cases", "elementwise_cases", "conv_cases", "pool_cases", "batch_norm_cases", "linear_cases",
    "cross_entropy_cases", "pad_channels_cases",
    # layouts, and the independent forward formulas of the built-in ops
    "LAYOUTS", "on_layout", "forward_backward", "conv_transpose2d", "conv2d_formula",
    "max_pool2d_formula", "avg_pool2d_formula", "batch_norm_formula", "cross_entropy_formula",
    "pad_channels_formula", "RESNET_CONVS", "RESNET_POOL", "MAX_EXAMPLES"]
