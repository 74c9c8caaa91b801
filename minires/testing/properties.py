"""Metamorphic checks: properties an op must have, tested without an oracle.

    check_linearity              op(a*x1 + c*x2) == a*op(x1) + c*op(x2)   convolution in x and in w
    check_adjoint                <op(x), v> == <x, adjoint(v)>            convolution, col2im
    check_batch_norm_invariance  BN(a*x + b) == BN(x), a > 0              training-mode batch norm
    check_idempotence            op(op(x)) == op(x)                       ReLU

Each docstring says what the property catches and what it cannot: a property holds for many
wrong ops too (the identity is idempotent), so it adds to an oracle, and does not replace one.
Each runs like ``check_backward``: generated examples, shrinking, the same kind of report.
:func:`conv_transpose2d` is convolution's adjoint in x, on arrays, for ``check_adjoint``.
"""
import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad
from .case import Values
from .report import Failure, Report, raised, worst
from .search import (MAX_EXAMPLES, call_text, check_is_op, input_names, is_function_class,
                     op_name, search)
from .strategies import batch_norm_cases, conv_cases, elementwise_cases


def _apply(op, arrays, params, names=None):
    """op on float64 arrays (as Tensors that need no gradient) -> NumPy array."""
    tensors = [Tensor(a, name=n) for a, n in zip(arrays, names or [None] * len(arrays))]
    with no_grad():
        y = op(**params)(*tensors) if is_function_class(op) else op(*tensors, **params)
    return backend.as_numpy(y.data)


def _property(fn_name, op, inputs, default_inputs, what, check_case, examples, max_examples,
              seed, raise_on_failure, extra=None):
    check_is_op(fn_name, op)
    names = input_names(op) or ()
    inputs = default_inputs if inputs is None else inputs
    op_text = op_name(op)
    options = {k: op_name(v, k) if callable(v) else repr(v) for k, v in (extra or {}).items()}
    report = Report(f"{fn_name}({op_text})", op_text, [what],
                    lambda case: call_text(fn_name, op_text, {"inputs": repr(case), **options}))

    def guarded(case):
        try:
            check_case(case)
        except Failure:
            raise
        except Exception as e:  # noqa: BLE001
            raise raised(e)

    search(report, guarded, inputs, names, examples, max_examples, seed)
    return report.raise_if_failed() if raise_on_failure else report


def check_linearity(op, inputs=None, wrt=("x",), *, tol=1e-10, examples=(),
                    max_examples=MAX_EXAMPLES, seed=None, raise_on_failure=True):
    """op(a*x1 + c*x2, ...) == a*op(x1, ...) + c*op(x2, ...) for each input named in ``wrt``,
    the others held fixed (a = 1.5, c = -2: a + c != 1, so a constant added anywhere shows).

    Holds for convolution in x and in w (without a bias), pooling-free linear maps, col2im.
    Catches: a bias or constant added inside, padding with a value other than zero, any
    nonlinearity. Cannot catch: a wrong linear map (a flipped kernel, a wrong stride), nor
    anything about the backward. Default inputs: :func:`conv_cases` without a bias.
    """
    wrt = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    a, c = 1.5, -2.0

    def check_case(case):
        base, params = case.arrays(), case.kwargs()
        for n in wrt:
            i = case.names.index(n)
            x1 = base[i]
            x2 = Values(x1.shape, seed=12345).numpy()
            mix = lambda x: [x if j == i else b for j, b in enumerate(base)]
            lhs = _apply(op, mix(a * x1 + c * x2), params, case.names)
            rhs = a * _apply(op, mix(x1), params, case.names) + c * _apply(op, mix(x2), params,
                                                                          case.names)
            msg = worst(lhs, rhs, tol)
            if msg:
                raise Failure(f"not linear in {n!r}",
                              f"op(1.5*{n}1 - 2*{n}2) against 1.5*op({n}1) - 2*op({n}2): {msg}",
                              input=n, hint="a constant or a bias is added, the padding is not "
                                            "zero, or the op is not linear in this input")

    return _property("check_linearity", op, inputs, conv_cases(bias=False), "linearity",
                     check_case, examples, max_examples, seed, raise_on_failure,
                     extra={"wrt": wrt} if wrt != ("x",) else None)


def conv_transpose2d(y, w, stride=1, padding=0, input_shape=None):
    """The adjoint of conv2d in x, on arrays: col2im(W^T @ y) -> (N, C_in, H, W).

    ``input_shape`` defaults to the smallest input that gives y's size; pass it when the input
    had rows that no window reached (odd sizes with stride 2).
    """
    from ..functional.conv import col2im
    from ..functional.layout import channels_first_2d
    C_out, C_in, kh, kw = w.shape
    N, _, OH, OW = y.shape
    if input_shape is None:
        input_shape = (N, C_in, (OH - 1) * stride + kh - 2 * padding,
                       (OW - 1) * stride + kw - 2 * padding)
    cols = w.reshape(C_out, -1).T @ channels_first_2d(y)
    return col2im(cols, tuple(input_shape), kh, kw, stride, padding)


def check_adjoint(op, adjoint=None, inputs=None, wrt="x", *, tol=1e-10, examples=(),
                  max_examples=MAX_EXAMPLES, seed=None, raise_on_failure=True):
    """<op(x), v> == <x, adjoint(v)> for an op linear in input ``wrt``, with v random.

    ``adjoint`` None: the op's own backward (the gradient of <op(x), v> w.r.t. x is op^T v, so
    this checks the backward exactly, without finite differences, on inputs of any size). Else a
    function on arrays, called ``adjoint(v, **other_inputs, **params, input_shape=x.shape)``;
    :func:`conv_transpose2d` is convolution's. This is the identity behind col2im: the backward of
    im2col's copy is col2im's sum. Catches: a backward (or a transposed op) that is not the exact
    transpose of the forward, such as overlapping windows assigned instead of summed. Cannot catch:
    a forward that is wrong in the same way (check it against an oracle), nor a nonlinear op.
    Default inputs: :func:`conv_cases` without a bias.
    """
    def check_case(case):
        arrays, params = case.arrays(), case.kwargs()
        i = case.names.index(wrt)
        x = arrays[i]
        y = _apply(op, arrays, params, case.names)
        v = np.random.default_rng(1).standard_normal(y.shape)
        if adjoint is None:
            tensors = [Tensor(a, requires_grad=(j == i), name=n)
                       for j, (a, n) in enumerate(zip(arrays, case.names))]
            out = op(**params)(*tensors) if is_function_class(op) else op(*tensors, **params)
            out.backward(v)
            xt = tensors[i].grad
            xt = np.zeros_like(x) if xt is None else backend.as_numpy(xt)
        else:
            others = {n: a for j, (n, a) in enumerate(zip(case.names, arrays)) if j != i}
            xt = backend.as_numpy(adjoint(v, **others, **params, input_shape=x.shape))
        lhs, rhs = float(np.vdot(y, v)), float(np.vdot(x, xt))
        scale = float(np.abs(y).ravel() @ np.abs(v).ravel()) + float(
            np.abs(x).ravel() @ np.abs(xt).ravel())
        if abs(lhs - rhs) > tol * max(1.0, scale):
            raise Failure("not the adjoint", f"<op(x), v> = {lhs:.12g} but <x, adjoint(v)> = "
                                             f"{rhs:.12g} (difference {abs(lhs - rhs):.3g})",
                          input=wrt, hint="the backward (or adjoint) is not the transpose of the"
                                          " forward: an overlap assigned instead of summed, an "
                                          "index off by one, or a flipped kernel")

    return _property("check_adjoint", op, inputs, conv_cases(bias=False), "adjoint",
                     check_case, examples, max_examples, seed, raise_on_failure,
                     extra={k: v for k, v in (("adjoint", adjoint), ("wrt", wrt))
                            if v not in (None, "x")} or None)


def check_batch_norm_invariance(op, inputs=None, *, tol=1e-8, examples=(),
                                max_examples=MAX_EXAMPLES, seed=None, raise_on_failure=True):
    """Training-mode batch norm of a*x + b, a > 0 and b per channel, equals that of x.

    Exact with eps = 0 (the default inputs, :func:`batch_norm_cases` in training with eps 0);
    with eps > 0 it holds to about eps / var. Catches: statistics over the wrong axes (not per
    channel), a mean not subtracted, not dividing by the standard deviation. Cannot catch:
    the unbiased variance used to normalise (it scales xhat by a constant; an oracle sees it),
    a wrong gamma or beta, the backward; eval mode is not invariant (its statistics are fixed).
    """
    def check_case(case):
        arrays, params = case.arrays(), case.kwargs()
        x = arrays[0]
        view = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        rng = np.random.default_rng(2)
        a = rng.uniform(0.5, 2.0, x.shape[1]).reshape(view)
        b = rng.uniform(-3.0, 3.0, x.shape[1]).reshape(view)
        y = _apply(op, arrays, params, case.names)
        y2 = _apply(op, [a * x + b] + arrays[1:], params, case.names)
        msg = worst(y2, y, tol)
        if msg:
            raise Failure("not invariant", f"batch norm of a*x + b against that of x: {msg}",
                          input=case.names[0], hint="the statistics are not the per-channel "
                                                    "mean and standard deviation of x")

    return _property("check_batch_norm_invariance", op, inputs,
                     batch_norm_cases(training=True, eps=0.0), "invariance", check_case,
                     examples, max_examples, seed, raise_on_failure)


def check_idempotence(op, inputs=None, *, tol=0.0, examples=(), max_examples=MAX_EXAMPLES,
                      seed=None, raise_on_failure=True):
    """op(op(x)) == op(x), as for ReLU (a projection onto x >= 0).

    Catches: a negative slope (leaky), a scale or shift of the positive part. Cannot catch:
    an op that is idempotent and still wrong, such as the identity or the zero map, nor the
    backward. Default inputs: one array of any shape.
    """
    def check_case(case):
        arrays, params = case.arrays(), case.kwargs()
        y = _apply(op, arrays, params, case.names)
        yy = _apply(op, [y] + arrays[1:], params, case.names)
        msg = worst(yy, y, tol)
        if msg:
            raise Failure("not idempotent", f"op(op(x)) against op(x): {msg}",
                          input=case.names[0], hint="op(x) is not a fixed point of the op")

    return _property("check_idempotence", op, inputs, elementwise_cases(), "idempotence",
                     check_case, examples, max_examples, seed, raise_on_failure)
