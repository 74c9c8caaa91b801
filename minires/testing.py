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

hypothesis is a test-time dependency: ``import minires`` does not need it; this module does.
"""
try:
    from hypothesis import HealthCheck, Phase, Verbosity, example, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings, strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:
    raise ImportError("minires.testing needs hypothesis, a test-time dependency: "
                      "pip install -e '.[dev]'") from None

import contextlib
import inspect
import os
import time
import traceback

import numpy as np

from . import backend
from .autograd import Function, Tensor, no_grad
from .gradcheck import GradcheckError, gradcheck
from .switch import reference_ops

MAX_EXAMPLES = 30
"""Examples per check by default: a built-in op takes a few seconds on one core."""

LAYOUTS = ("nchw", "channel_major")

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


# -- examples: Values and Case ---------------------------------------------------------------------

class Values:
    """The recipe of an array: ``shape``, and the ``seed`` its numbers are drawn from.

    Numbers are uniform in ``bounds``; with ``margin`` > 0, of either sign and between ``margin``
    and the largest |bound| (for ops with a kink at 0, like ReLU); with ``distinct``, evenly spaced
    over ``bounds`` and shuffled, so no two are close (for max pooling: no ties; for batch norm:
    no channel of near-equal values).
    ``repr`` is Python that builds the same array, which is what a failure report prints.
    """

    def __init__(self, shape, seed=0, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
        self.shape = tuple(int(s) for s in shape)
        self.seed, self.bounds = int(seed), (float(bounds[0]), float(bounds[1]))
        self.margin, self.distinct = float(margin), bool(distinct)

    def numpy(self, dtype=np.float64):
        rng = np.random.default_rng(self.seed)
        low, high = self.bounds
        size = int(np.prod(self.shape))
        if self.distinct:
            a = low + (rng.permutation(size) + 0.5) * ((high - low) / max(size, 1))
        elif self.margin > 0:
            a = rng.uniform(self.margin, max(abs(low), abs(high)), size) * rng.choice([-1, 1], size)
        else:
            a = rng.uniform(low, high, size)
        return a.reshape(self.shape).astype(dtype)

    def __array__(self, dtype=None, copy=None):
        return self.numpy(dtype or np.float64)

    def __repr__(self):
        extra = "" if self.bounds == (-2.0, 2.0) else f", bounds={self.bounds}"
        extra += f", margin={self.margin}" if self.margin else ""
        extra += ", distinct=True" if self.distinct else ""
        return f"Values({self.shape}, seed={self.seed}{extra})"


def _is_data(v):
    return isinstance(v, Values) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _literal(v):
    if isinstance(v, np.ndarray):
        body = np.array2string(v, separator=", ", threshold=1 << 30, floatmode="unique")
        return f"np.array({body}" + (")" if v.dtype.kind == "i" else f", dtype='{v.dtype}')")
    return repr(v)


class Case:
    """One example: ``inputs`` ({name: Values or float array}, the op's tensors, in order) and
    ``params`` (its other arguments: ints, tuples, flags, or arrays such as running statistics).

        Case({"x": Values((2, 3, 5, 5), seed=1), "w": Values((4, 3, 3, 3))}, stride=2, padding=1)
    """

    def __init__(self, inputs, **params):
        if not isinstance(inputs, dict) or not inputs:
            raise TypeError("Case(inputs, **params): inputs must be a non-empty dict of "
                            "{name: Values or array}")
        self.inputs, self.params = dict(inputs), params

    @property
    def names(self):
        return tuple(self.inputs)

    def arrays(self, dtype=np.float64):
        return [np.array(v.numpy() if isinstance(v, Values) else v, dtype=dtype)
                for v in self.inputs.values()]

    def kwargs(self, dtype=np.float64, device="cpu"):
        """``params``, every float array (or Values) a fresh ``dtype`` array on ``device``."""
        out = {}
        for k, v in self.params.items():
            if _is_data(v):
                v = backend.to_device(np.array(np.asarray(v), dtype=dtype), device)
            elif isinstance(v, np.ndarray):
                v = v.copy()
            out[k] = v
        return out

    def shapes(self):
        return {k: tuple(np.shape(v) if isinstance(v, np.ndarray) else v.shape)
                for k, v in self.inputs.items()}

    def describe(self):
        """Short and readable: ``x (1, 1, 3, 2), w (1, 1, 2, 2), stride=2, padding=0``."""
        parts = [f"{k} {s}" for k, s in self.shapes().items()]
        for k, v in self.params.items():
            if v is None:
                continue
            if _is_data(v):
                parts.append(f"{k} {np.shape(v) if isinstance(v, np.ndarray) else v.shape}")
            elif isinstance(v, np.ndarray):
                parts.append(f"{k}={_literal(v) if v.size <= 8 else f'array {v.shape}'}")
            else:
                parts.append(f"{k}={v!r}")
        return ", ".join(parts)

    def __repr__(self):
        inputs = ", ".join(f"{k!r}: {_literal(v)}" for k, v in self.inputs.items())
        params = "".join(f", {k}={_literal(v)}" for k, v in self.params.items())
        return f"Case({{{inputs}}}{params})"


# -- strategies ------------------------------------------------------------------------------------

seeds = st.integers(0, 2**16)


def _seeds(draw, n):
    """n different seeds (shrinking to 0, 1, 2, ...): two inputs of one shape never get the same
    numbers, which would hide a swapped pair or make a tie."""
    return draw(st.lists(seeds, min_size=n, max_size=n, unique=True))


def _strategy(v):
    return v if isinstance(v, st.SearchStrategy) else st.just(v)


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=4):
    """Array shapes: ``min_dims``..``max_dims`` axes of ``min_side``..``max_side`` each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def dtypes():
    """float32 or float64, the two dtypes minires computes in."""
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def values(shape=None, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
    """:class:`Values` of ``shape`` (a tuple, or a strategy of them; default: :func:`shapes`)."""
    shape = shapes() if shape is None else shape
    return st.builds(lambda s, seed: Values(s, seed, bounds, margin, distinct), _strategy(shape),
                     seeds)


def arrays(shape=None, dtype=np.float64, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
    """NumPy arrays for your own ``@given`` tests; ``dtype`` a dtype or a strategy (:func:`dtypes`).

    The numbers come from a seeded generator (see :class:`Values`), so hypothesis shrinks the
    shape and the seed, not thousands of floats.
    """
    return st.builds(lambda v, d: v.numpy(d), values(shape, bounds, margin, distinct),
                     _strategy(np.dtype(dtype) if not isinstance(dtype, st.SearchStrategy)
                               else dtype))


def nchw(max_batch=3, max_channels=3, min_size=1, max_size=6):
    """(N, C, H, W) image-batch shapes; H and W drawn separately (non-square images too)."""
    side = st.integers(min_size, max_size)
    return st.tuples(st.integers(1, max_batch), st.integers(1, max_channels), side, side)


@st.composite
def conv_geometries(draw, kernels=(1, 2, 3, 5, 7), strides=(1, 2, 3), max_padding=3,
                    max_batch=2, max_channels=3, max_extra=4, square_kernels=False):
    """A valid convolution: dict N, C_in, C_out, H, W, kh, kw, stride, padding.

    H runs from the smallest size that holds one window (kh - 2*padding, at least 1) to
    ``max_extra`` more, so the awkward cases come up and are where shrinking ends: 1x1 images,
    kernels exactly as large as the padded input, odd sizes with stride 2 (the last rows and
    columns that no window reaches), windows that lie wholly in the padding.
    """
    kh = draw(st.sampled_from(kernels))
    kw = kh if square_kernels else draw(st.sampled_from(kernels))
    stride, padding = draw(st.sampled_from(strides)), draw(st.integers(0, max_padding))
    low_h, low_w = max(1, kh - 2 * padding), max(1, kw - 2 * padding)
    return dict(N=draw(st.integers(1, max_batch)), C_in=draw(st.integers(1, max_channels)),
                C_out=draw(st.integers(1, max_channels)),
                H=draw(st.integers(low_h, low_h + max_extra)),
                W=draw(st.integers(low_w, low_w + max_extra)),
                kh=kh, kw=kw, stride=stride, padding=padding)


@st.composite
def pool_geometries(draw, kernels=(1, 2, 3), strides=(None, 1, 2, 3), max_batch=2,
                    max_channels=3, max_extra=4):
    """A valid pooling: dict N, C, H, W, kernel_size, stride (None: the kernel size), padding
    (at most half the kernel), H and W from one window's size up."""
    k = draw(st.sampled_from(kernels))
    stride, padding = draw(st.sampled_from(strides)), draw(st.integers(0, k // 2))
    low = max(1, k - 2 * padding)
    return dict(N=draw(st.integers(1, max_batch)), C=draw(st.integers(1, max_channels)),
                H=draw(st.integers(low, low + max_extra)),
                W=draw(st.integers(low, low + max_extra)),
                kernel_size=k, stride=stride, padding=padding)


def cases(**kwargs):
    """A strategy of :class:`Case` from one strategy (or fixed value) per argument.

    Arguments that draw :class:`Values` or float arrays are the op's tensor inputs, in the order
    given; the others are its parameters:  ``cases(x=values(nchw()), slope=st.floats(0, 1))``.
    """
    def build(drawn):
        inputs = {k: v for k, v in drawn.items() if _is_data(v)}
        return Case(inputs, **{k: v for k, v in drawn.items() if k not in inputs})
    return st.fixed_dictionaries({k: _strategy(v) for k, v in kwargs.items()}).map(build)


def elementwise_cases(names=("x",), shape=None, **value_options):
    """Cases of one or more inputs of the same shape (default :func:`shapes`), no parameters."""
    @st.composite
    def draw_case(draw):
        s = draw(_strategy(shapes() if shape is None else shape))
        ks = _seeds(draw, len(names))
        return Case({n: Values(s, k, **value_options) for n, k in zip(names, ks)})
    return draw_case()


@st.composite
def conv_cases(draw, bias=None, **geometry):
    """Cases for ``conv2d(x, w[, b], stride, padding)`` over :func:`conv_geometries`.

    ``bias``: True, False, or None (drawn).
    """
    g = draw(conv_geometries(**geometry))
    sx, sw, sb = _seeds(draw, 3)
    inputs = {"x": Values((g["N"], g["C_in"], g["H"], g["W"]), sx),
              "w": Values((g["C_out"], g["C_in"], g["kh"], g["kw"]), sw)}
    if draw(st.booleans()) if bias is None else bias:
        inputs["b"] = Values((g["C_out"],), sb)
    return Case(inputs, stride=g["stride"], padding=g["padding"])


@st.composite
def pool_cases(draw, **geometry):
    """Cases for ``max_pool2d``/``avg_pool2d(x, kernel_size, stride, padding)``; distinct values,
    so no window has a tie and no finite-difference step moves its maximum."""
    g = draw(pool_geometries(**geometry))
    x = Values((g["N"], g["C"], g["H"], g["W"]), draw(seeds), distinct=True)
    return Case({"x": x}, kernel_size=g["kernel_size"], stride=g["stride"], padding=g["padding"])


@st.composite
def batch_norm_cases(draw, training=None, ndim=None, eps=1e-5, momentum=0.1):
    """Cases for ``batch_norm(x, weight, bias, running_mean, running_var, training, momentum,
    eps)``: x (N, C) or (N, C, H, W) with at least two values per channel, all distinct; |weight|
    in [0.5, 2]; in eval mode running statistics (running_var in [0.5, 2]), in training none.
    ``training`` and ``ndim`` (2 or 4): fixed, or None to draw."""
    training = draw(st.booleans()) if training is None else training
    ndim = draw(st.sampled_from([4, 2])) if ndim is None else ndim
    C = draw(st.integers(1, 3))
    if ndim == 2:
        shape = (draw(st.integers(2, 6)), C)
    else:
        N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        shape = (max(N, 2) if H * W == 1 else N, C, H, W)
    sx, sg, sb, sm, sv = _seeds(draw, 5)
    inputs = {"x": Values(shape, sx, distinct=True), "weight": Values((C,), sg, margin=0.5),
              "bias": Values((C,), sb)}
    stats = dict(running_mean=None, running_var=None)
    if not training:
        stats = dict(running_mean=Values((C,), sm),
                     running_var=Values((C,), sv, bounds=(0.5, 2.0)))
    return Case(inputs, **stats, training=training, momentum=momentum, eps=eps)


@st.composite
def linear_cases(draw, bias=None, max_size=5):
    """Cases for ``linear(x, w[, b])``: x (N, in), w (out, in), b (out,)."""
    N, n_in, n_out = (draw(st.integers(1, max_size)) for _ in range(3))
    sx, sw, sb = _seeds(draw, 3)
    inputs = {"x": Values((N, n_in), sx), "w": Values((n_out, n_in), sw)}
    if draw(st.booleans()) if bias is None else bias:
        inputs["b"] = Values((n_out,), sb)
    return Case(inputs)


@st.composite
def cross_entropy_cases(draw, max_batch=6, max_classes=6):
    """Cases for ``softmax_cross_entropy(logits, labels)``: logits (N, C) in [-6, 6], integer
    labels in [0, C) (a parameter: no gradient)."""
    N, C = draw(st.integers(1, max_batch)), draw(st.integers(1, max_classes))
    labels = np.random.default_rng(draw(seeds)).integers(0, C, N)
    return Case({"logits": Values((N, C), draw(seeds), bounds=(-6.0, 6.0))}, labels=labels)


@st.composite
def pad_channels_cases(draw):
    """Cases for ``pad_channels(x, out_channels, stride)``: out_channels >= C, stride 1..3."""
    N, C, H, W = draw(nchw(max_batch=2, max_channels=3))
    return Case({"x": Values((N, C, H, W), draw(seeds))},
                out_channels=C + draw(st.integers(0, 3)), stride=draw(st.integers(1, 3)))


# -- layouts and one forward-backward --------------------------------------------------------------

def on_layout(a, layout="nchw", device="cpu"):
    """A fresh copy of array ``a`` on ``device``; 4-D and ``"channel_major"``: an NCHW-shaped
    view of a contiguous (C, N, H, W) array, the layout minires's convolutions hand on."""
    d = backend.to_device(np.array(backend.as_numpy(a), order="C"), device)
    if layout == "nchw" or d.ndim != 4:
        return d
    xp = backend.get_array_module(d)
    return xp.ascontiguousarray(d.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def forward_backward(fn, tensors, gy=None, seed=0, gy_layout="nchw"):
    """y = fn(*tensors); backward with ``gy`` (a NumPy array; standard normal when None).

    Returns NumPy arrays: y, the gradient that reached every tensor (None where none did), and gy.
    The gradients are caught by hooks as the op produced them, before the engine stores them in
    ``.grad`` (which casts to the leaf's dtype), so a float64 gradient from a float32 op shows.
    """
    caught = [None] * len(tensors)

    def catcher(i):
        def hook(g):
            caught[i] = g
        return hook

    handles = [t.register_hook(catcher(i)) for i, t in enumerate(tensors)]
    try:
        y = fn(*tensors)
        if gy is None:
            gy = np.random.default_rng(seed).standard_normal(y.shape)
        gy = np.asarray(gy).astype(y.dtype)
        y.backward(on_layout(gy, gy_layout, y.device))
    finally:
        for h in handles:
            h.remove()
    grads = [None if g is None else backend.as_numpy(g) for g in caught]
    return backend.as_numpy(y.data), grads, gy


# -- reports ---------------------------------------------------------------------------------------

class Failure(Exception):
    """What one check found wrong with one case (raised inside the search, kept in the report)."""

    def __init__(self, check, message, input=None, hint=""):
        super().__init__(message)
        self.check, self.message, self.input, self.hint = check, message, input, hint
        self.case = None

    def headline(self):
        what = {"gradient": "the gradient of {i} is wrong",
                "forward": "the forward differs from the oracle",
                "layout": "channel-major memory gives other numbers than NCHW",
                "float32": "float32 and float64 disagree", "dtype": "a dtype is wrong",
                "shapes": "the backward's gradients are malformed",
                "raised": "the op raised an exception"}.get(self.check, self.check)
        return what.format(i=repr(self.input))


class CheckFailed(AssertionError):
    """Raised by the checks on a failure; ``str`` is the report, ``.report`` the :class:`Report`."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


class Report:
    """The outcome of one check over its examples: true when it passed; ``str`` for a person.

    ``examples``: examples tried up to the first failure (all of them when none failed);
    ``shrinks``: examples tried after it while shrinking; ``slowest``: (seconds, Case);
    ``failing``: every failing case in the order they were tried, the first found to the smallest.
    """

    def __init__(self, call, name, checks, rerun):
        self.call, self.name, self.checks, self._rerun = call, name, checks, rerun
        self.examples = self.shrinks = 0
        self.failing = []
        self.seconds, self.slowest, self.failure = 0.0, (0.0, None), None

    passed = property(lambda self: self.failure is None)

    def __bool__(self):
        return self.passed

    @property
    def rerun(self):
        """The one line that reruns the smallest failing case (None when nothing failed)."""
        return None if self.failure is None else self._rerun(self.failure.case)

    def summary(self):
        """One line: passed or what failed, for a table."""
        if self.passed:
            return "ok"
        return f"FAILED: {self.failure.headline()}"

    def slowest_text(self):
        sec, case = self.slowest
        return "" if case is None else f"{case.describe()}: {sec:.2f} s"

    def __str__(self):
        if self.passed:
            return (f"{self.call} passed: {_plural(self.examples, 'example')} in "
                    f"{self.seconds:.1f} s "
                    f"({', '.join(self.checks)}); slowest {self.slowest_text()}")
        f = self.failure
        lines = [f"{self.call} failed: {f.headline()}.",
                 f"  smallest failing case (found after {_plural(self.examples, 'example')}, "
                 f"shrunk in {self.shrinks} more):",
                 f"      {f.case.describe()}"]
        lines += ["  " + line for line in f.message.splitlines()]
        if f.hint:
            lines.append(f"  what to look at: {f.hint}")
        lines += ["  rerun exactly this case (from minires.testing import Case, Values, "
                  f"{self.call.split('(')[0]}):", f"      {self.rerun}"]
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.passed:
            raise CheckFailed(self)
        return self


# -- the search ------------------------------------------------------------------------------------

def _as_strategy(inputs, names):
    """``inputs`` as a strategy of Case: a strategy (of Case, dict, tuple or one Values/array),
    a dict of strategies (see :func:`cases`), or a tuple of strategies, one per input."""
    if isinstance(inputs, dict):
        inputs = cases(**inputs)
    elif isinstance(inputs, (tuple, list)):
        inputs = st.tuples(*map(_strategy, inputs))
    if not isinstance(inputs, st.SearchStrategy):
        raise TypeError(f"inputs must be a Case or a hypothesis strategy, got "
                        f"{type(inputs).__name__}")
    return inputs.map(lambda drawn: _as_case(drawn, names))


def _as_case(drawn, names):
    if isinstance(drawn, Case):
        return drawn
    if isinstance(drawn, dict):
        return Case(drawn)
    if _is_data(drawn):
        drawn = (drawn,)
    names = list(names) + [f"input{i}" for i in range(len(names), len(drawn))]
    return Case(dict(zip(names, drawn)))


def _search(report, check_case, inputs, names, examples, max_examples, seed):
    """Run ``check_case`` (Case -> None, or raise Failure) over ``inputs`` and fill ``report``."""
    start = time.perf_counter()
    state = {"failed": False}

    def prop(case):
        if state["failed"]:
            report.shrinks += 1
        else:
            report.examples += 1
        t0 = time.perf_counter()
        try:
            check_case(case)
        except Failure as failure:
            failure.case = case
            state["failed"] = True
            if not report.failing or report.failing[-1] is not case:
                report.failing.append(case)
            raise
        finally:
            dt = time.perf_counter() - t0
            if dt > report.slowest[0]:
                report.slowest = (dt, case)

    one = isinstance(inputs, dict) and all(map(_is_data, inputs.values()))
    if isinstance(inputs, Case) or one:
        test = lambda: prop(_as_case(inputs, names))  # one given case: no search
    else:
        test = given(_as_strategy(inputs, names))(prop)
        for case in reversed(list(examples)):
            test = example(_as_case(case, names))(test)
        test = settings(max_examples=max_examples, derandomize=seed is None, database=None,
                        deadline=None, verbosity=Verbosity.quiet, report_multiple_bugs=False,
                        phases=[Phase.explicit, Phase.generate, Phase.shrink],
                        suppress_health_check=list(HealthCheck))(test)
        if seed is not None:
            test = hypothesis_seed(seed)(test)
    try:
        test()
    except Failure as failure:
        report.failure = failure
        report.shrinks = max(report.shrinks - 1, 0)  # hypothesis replays the smallest case once
    report.seconds = time.perf_counter() - start
    return report


def sample(inputs, n=5, seed=None):
    """The first ``n`` examples a check draws from ``inputs`` (a strategy of Case): the same
    every call, unless ``seed`` asks for others. To see what a strategy generates."""
    drawn = []

    def keep(case):
        if len(drawn) < n and case not in drawn:
            drawn.append(case)

    _search(Report("sample", "sample", [], repr), keep, inputs, (), (), n, seed)
    return drawn


def _op_name(op, default="op"):
    name = getattr(op, "__name__", None) or default
    if not name.isidentifier():
        return default
    module = getattr(op, "__module__", "") or ""
    return f"F.{name}" if module.startswith("minires.functional") else name


def _call_text(fn_name, op_text, options):
    return f"{fn_name}({op_text}{''.join(f', {k}={v}' for k, v in options.items())})"


def _input_names(op):
    """Names of the op's tensor inputs, from its signature (``forward``'s for a Function)."""
    target = op.forward if _is_function_class(op) else op
    try:
        ps = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if _is_function_class(op):
        ps = ps[1:]  # self
    if any(p.kind == p.VAR_POSITIONAL for p in ps):
        return None
    pos = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in ps if p.kind in pos and p.default is p.empty) or None


def _is_function_class(op):
    return isinstance(op, type) and issubclass(op, Function)


def _check_is_op(where, op):
    if isinstance(op, Function):
        raise TypeError(f"{where}: pass the class {type(op).__name__}, not an instance: a Function "
                        "is used once, so the check makes one per call (its arguments go in the "
                        "Case's params)")
    if not (_is_function_class(op) or (callable(op) and not isinstance(op, type))):
        raise TypeError(f"{where}: {op!r} is not an op: pass a Function subclass or a function "
                        "of Tensors")


def _default_inputs(op):
    names = _input_names(op)
    if names is None:
        raise TypeError(f"check_backward: cannot tell how many tensors {_op_name(op)} takes; "
                        "pass inputs=, e.g. inputs=mt.cases(x=mt.values())")
    return names, elementwise_cases(names)


# -- comparing arrays ------------------------------------------------------------------------------

def _worst(got, want, tol):
    """None when |got - want| <= tol * max(1, max|want|) everywhere (NaN only where want has NaN);
    else a sentence naming the largest error, its index and both values."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape} where {want.shape} was expected"
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    err = np.abs(got - want)
    same_nan = np.isnan(got) & np.isnan(want)
    same_inf = np.isinf(want) & (got == want)
    bad = ~((err <= tol * scale) | same_nan | same_inf)
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))),
                           got.shape)
    where = tuple(int(i) for i in idx)
    return (f"largest error {err[idx]:.3g} at index {where}: got {got[idx]:.8g}, expected "
            f"{want[idx]:.8g} ({int(bad.sum())} of {got.size} elements off by more than "
            f"{tol:g} * {scale:.3g})")


# -- check_backward --------------------------------------------------------------------------------

HINTS = {
    "gradient": "backward disagrees with the slope of the forward. An error in a few positions "
                "only points to the padding, the stride or the last rows and columns; one only "
                "when N > 1 to a sum or mean over the wrong axes; one everywhere to the formula",
    "forward": "the op computes another function than the oracle, or the two use different "
               "conventions (padding value, floor or ceil of the output size, biased variance)",
    "layout": "somewhere the code assumes C-contiguous memory: writing through reshape(-1) of an "
              "array that is not contiguous (that writes into a copy), or reading raw memory. Use "
              "the result of reshape, np.ascontiguousarray, or minires/functional/layout.py",
    "float32": "a cancellation (E[x^2] - E[x]^2), an overflow (exp of a large number), or a "
               "float64 constant makes float32 lose more than rounding explains",
    "dtype": "build each gradient from gy (gy * mask), or cast it (.astype(gy.dtype)): "
             "np.where(m, 1.0, a), np.ones(shape) and Python floats make float64 arrays",
    "shapes": "backward(gy) returns one gradient per input of forward, in order, each shaped like "
              "its input, and must not write into gy (another op may read it too)",
}


def _function_name(op):
    return op.__name__ if _is_function_class(op) else _op_name(op)


def _run(op, case, dtype, x_layout, gy_layout, device, after_forward=None):
    """One forward and backward of ``case`` in ``dtype``/layouts; returns (y, grads, gy) as NumPy
    arrays, or raises Failure for a malformed backward (shapes, dtypes, in-place writes).
    ``after_forward(y)`` (a NumPy array) runs between the two: the oracle's check."""
    names = case.names
    arrays = case.arrays(dtype)
    tensors = [Tensor(on_layout(a, x_layout, device), requires_grad=True, name=n)
               for a, n in zip(arrays, names)]
    params = case.kwargs(dtype, device)
    where = "" if (x_layout, gy_layout) == ("nchw", "nchw") else (
        f" ({x_layout} inputs, {gy_layout} gy)")
    if _is_function_class(op):
        f = op(**params)
        y = f(*tensors)
        _check_output(op, y, dtype, where, after_forward)
        gy = np.random.default_rng(0).standard_normal(y.shape)
        gy_dev = on_layout(gy.astype(dtype), gy_layout, device)
        gy_before = backend.as_numpy(gy_dev).copy()
        grads = f.backward(gy_dev)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(tensors):
            raise Failure("shapes", f"{op.__name__}.backward returned {len(grads)} gradient(s) for "
                                    f"{len(tensors)} inputs ({', '.join(names)})",
                          hint=HINTS["shapes"])
        if not np.array_equal(backend.as_numpy(gy_dev), gy_before, equal_nan=True):
            raise Failure("shapes", f"{op.__name__}.backward wrote into gy", hint=HINTS["shapes"])
    else:
        y = op(*tensors, **params)
        _check_output(op, y, dtype, where, after_forward)
        gy = np.random.default_rng(0).standard_normal(y.shape)
        caught = [None] * len(tensors)
        handles = [t.register_hook(lambda g, i=i: caught.__setitem__(i, g))
                   for i, t in enumerate(tensors)]
        try:
            try:
                y.backward(on_layout(gy.astype(dtype), gy_layout, device))
            except RuntimeError as e:
                if "returned a gradient of shape" in str(e):
                    raise Failure("shapes", str(e), hint=HINTS["shapes"])
                raise
        finally:
            for h in handles:
                h.remove()
        grads = caught
    for n, a, t in zip(names, arrays, tensors):
        if not np.array_equal(backend.as_numpy(t.data), a, equal_nan=True):
            raise Failure("shapes", f"the op wrote into its input {n!r}{where}",
                          input=n, hint="copy an array before changing it")
    out = []
    for n, a, g in zip(names, arrays, grads):
        if g is not None:
            if not hasattr(g, "shape") or tuple(g.shape) != a.shape:
                raise Failure("shapes", f"the gradient of {n!r} has shape {getattr(g, 'shape', g)}"
                                        f", its input {a.shape}", input=n, hint=HINTS["shapes"])
            if g.dtype != dtype:
                raise Failure("dtype", f"the gradient of {n!r} is {g.dtype} for a "
                                       f"{np.dtype(dtype).name} input{where}",
                              input=n, hint=HINTS["dtype"])
            g = backend.as_numpy(g)
        out.append(g)
    return backend.as_numpy(y.data), out, gy


def _check_output(op, y, dtype, where, after_forward):
    if not isinstance(y, Tensor):
        raise Failure("shapes", f"{_function_name(op)} returned a {type(y).__name__}, not a Tensor")
    if y.dtype != dtype:
        raise Failure("dtype", f"the output is {y.dtype} for {np.dtype(dtype).name} inputs"
                               f"{where}", hint=HINTS["dtype"])
    if after_forward is not None:
        after_forward(backend.as_numpy(y.data))


def _layout_pairs(case, out_ndim):
    four = any(len(s) == 4 for s in case.shapes().values())
    pairs = []
    if four:
        pairs.append(("channel_major", "nchw"))
    if out_ndim == 4:
        pairs.append(("nchw", "channel_major"))
        if four:
            pairs.append(("channel_major", "channel_major"))
    return pairs


def _compare_runs(check, base, other, names, tol, what):
    y0, g0, _ = base
    y1, g1, _ = other
    msg = _worst(y1, y0, tol)
    if msg:
        raise Failure(check, f"the output with {what}: {msg}", hint=HINTS[check])
    for n, a, b in zip(names, g0, g1):
        if (a is None) != (b is None):
            raise Failure(check, f"the gradient of {n!r} is None in one run only ({what})",
                          input=n, hint=HINTS[check])
        msg = None if a is None else _worst(b, a, tol)
        if msg:
            raise Failure(check, f"the gradient of {n!r} with {what}: {msg}", input=n,
                          hint=HINTS[check])


def _raised(e):
    """A Failure for an exception from the op: its type, message and the line that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    where = f"\n  at {frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line}" if frames else ""
    return Failure("raised", f"{type(e).__name__}: {e}{where}",
                   hint="if the op does not support this case, narrow inputs= to the cases it "
                        "supports; otherwise this is the bug")


def check_backward(op, inputs=None, oracle=None, *, examples=(), max_examples=MAX_EXAMPLES,
                   seed=None, eps=1e-6, atol=1e-5, rtol=1e-4, oracle_tol=1e-8, layout_tol=1e-10,
                   float32_tol=1e-4, layouts=True, float32=True, device="cpu",
                   raise_on_failure=True, name=None):
    """Property-test ``op``'s forward and backward over generated examples; see the module doc.

    op       a ``Function`` subclass (called ``op(**params)(*tensors)``) or a function of Tensors
             (``op(*tensors, **params)``)
    inputs   a strategy of :class:`Case` (:func:`conv_cases`, :func:`cases`, ...), a dict or tuple
             of strategies, or one Case (checked alone, no search). Default: ``op.check_inputs``
             if the op has one, else inputs of one random shape, one per argument of the op
    oracle   optional ``oracle(*arrays, **params)`` on float64 NumPy arrays: the expected output
             (default: ``op.check_oracle`` if the op has one)
    examples Cases always checked first (ResNet's own geometries, say)
    seed     None: the same examples every run; an int: other examples, the same for that int
    name     how the report names the op (default: its own name)

    Tolerances: gradients as ``minires.gradcheck`` (eps, atol, rtol); the forward against the
    oracle, the two layouts against each other, float32 against float64: |difference| <= tol *
    max(1, largest |value| of that array). Returns the :class:`Report` (true when it passed);
    on a failure raises :class:`CheckFailed`, whose message is the report, unless
    ``raise_on_failure`` is False.
    """
    _check_is_op("check_backward", op)
    names = _input_names(op) or ()
    if inputs is None:
        inputs = getattr(op, "check_inputs", None)
        if inputs is None:
            names, inputs = _default_inputs(op)
    if oracle is None:
        oracle = getattr(op, "check_oracle", None)
    dtypes_ = [np.float64] + ([np.float32] if float32 else [])
    checks = ["shapes"] + (["forward"] if oracle is not None else []) + (
        ["layout"] if layouts else []) + (["float32"] if float32 else []) + ["gradient"]
    options = {}
    if oracle is not None:
        options["oracle"] = _op_name(oracle, "oracle")
    defaults = dict(eps=1e-6, atol=1e-5, rtol=1e-4, oracle_tol=1e-8, layout_tol=1e-10,
                    float32_tol=1e-4, layouts=True, float32=True, device="cpu")
    given_options = dict(eps=eps, atol=atol, rtol=rtol, oracle_tol=oracle_tol,
                         layout_tol=layout_tol, float32_tol=float32_tol, layouts=layouts,
                         float32=float32, device=device)
    options.update({k: repr(v) for k, v in given_options.items() if v != defaults[k]})
    op_text = _op_name(op)
    report = Report(f"check_backward({name or op_text})", name or op_text, checks,
                    lambda case: _call_text("check_backward", op_text,
                                            {"inputs": repr(case), **options}))

    def against_oracle(case):
        def check(y):
            with no_grad():
                want = oracle(*case.arrays(np.float64), **case.kwargs(np.float64))
            msg = _worst(y, backend.as_numpy(getattr(want, "data", want)), oracle_tol)
            if msg:
                raise Failure("forward", f"the output against the oracle: {msg}",
                              hint=HINTS["forward"])
        return None if oracle is None else check

    def check_case(case):
        try:
            base = _run(op, case, np.float64, "nchw", "nchw", device, against_oracle(case))
            y = base[0]
            if layouts:
                for x_layout, gy_layout in _layout_pairs(case, y.ndim):
                    other = _run(op, case, np.float64, x_layout, gy_layout, device)
                    _compare_runs("layout", base, other, case.names, layout_tol,
                                  f"{x_layout} inputs and {gy_layout} gy")
            for dtype in dtypes_[1:]:
                other = _run(op, case, dtype, "nchw", "nchw", device)
                _compare_runs("float32", base, other, case.names, float32_tol,
                              "float32 (against float64)")
            tensors = [Tensor(on_layout(a, "nchw", device), requires_grad=True, name=n)
                       for a, n in zip(case.arrays(np.float64), case.names)]
            params = case.kwargs(np.float64, device)
            fn = (lambda *ts: op(**params)(*ts)) if _is_function_class(op) else (
                lambda *ts: op(*ts, **params))
            try:
                gradcheck(fn, *tensors, eps=eps, atol=atol, rtol=rtol)
            except GradcheckError as e:
                i = int(str(e).split("input ", 1)[1].split()[0])
                none = " (backward returned None for it)" if base[1][i] is None else ""
                raise Failure("gradient", f"{e}{none}", input=case.names[i],
                              hint=HINTS["gradient"])
        except Failure:
            raise
        except Exception as e:  # noqa: BLE001  (any exception from the op is a finding)
            raise _raised(e)

    _search(report, check_case, inputs, names, examples, max_examples, seed)
    return report.raise_if_failed() if raise_on_failure else report


# -- metamorphic checks ----------------------------------------------------------------------------

def _apply(op, arrays, params, names=None):
    """op on float64 arrays (as Tensors that need no gradient) -> NumPy array."""
    tensors = [Tensor(a, name=n) for a, n in zip(arrays, names or [None] * len(arrays))]
    with no_grad():
        y = op(**params)(*tensors) if _is_function_class(op) else op(*tensors, **params)
    return backend.as_numpy(y.data)


def _property(fn_name, op, inputs, default_inputs, what, check_case, examples, max_examples,
              seed, raise_on_failure, extra=None):
    _check_is_op(fn_name, op)
    names = _input_names(op) or ()
    inputs = default_inputs if inputs is None else inputs
    op_text = _op_name(op)
    options = {k: _op_name(v, k) if callable(v) else repr(v) for k, v in (extra or {}).items()}
    report = Report(f"{fn_name}({op_text})", op_text, [what],
                    lambda case: _call_text(fn_name, op_text, {"inputs": repr(case), **options}))

    def guarded(case):
        try:
            check_case(case)
        except Failure:
            raise
        except Exception as e:  # noqa: BLE001
            raise _raised(e)

    _search(report, guarded, inputs, names, examples, max_examples, seed)
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
            msg = _worst(lhs, rhs, tol)
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
    from .functional.conv import col2im
    from .functional.layout import channels_first_2d
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
            out = op(**params)(*tensors) if _is_function_class(op) else op(*tensors, **params)
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
        msg = _worst(y2, y, tol)
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
        msg = _worst(yy, y, tol)
        if msg:
            raise Failure("not idempotent", f"op(op(x)) against op(x): {msg}",
                          input=case.names[0], hint="op(x) is not a fixed point of the op")

    return _property("check_idempotence", op, inputs, elementwise_cases(), "idempotence",
                     check_case, examples, max_examples, seed, raise_on_failure)


# -- the built-in ops ------------------------------------------------------------------------------
# Independent forward formulas for python -m minires check: NumPy only, written from the
# definitions with sliding windows, nothing shared with minires's im2col, pooling or norm code
# (tests/oracles.py has slower nested-loop versions that the test suite uses, and checks these).

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


@st.composite
def _broadcast_cases(draw, positive_b=False):
    bs = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    (sa, sb), (ka, kb) = bs.input_shapes, _seeds(draw, 2)
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
    ka, kb = _seeds(draw, 2)
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
    from . import functional as F

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
