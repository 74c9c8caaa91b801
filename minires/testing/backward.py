"""``check_backward``: property-test an op's forward and backward over generated examples.

Every example runs the checks the package doc (``minires.testing``) lists, in order, and stops at
the first that fails: shapes (``_run``), forward (against the oracle, between the forward and the
backward), layout (``_layout_pairs``: channel-major inputs, gy, or both, against NCHW), float32,
gradient (``minires.gradcheck``). ``HINTS`` is what each failure's report says to look at.
"""
import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad
from ..gradcheck import GradcheckError, gradcheck
from .layouts import on_layout
from .report import Failure, Report, raised, worst
from .search import (MAX_EXAMPLES, call_text, check_is_op, input_names, is_function_class,
                     op_name, search)
from .strategies import elementwise_cases

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
    return op.__name__ if is_function_class(op) else op_name(op)


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
    if is_function_class(op):
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
    msg = worst(y1, y0, tol)
    if msg:
        raise Failure(check, f"the output with {what}: {msg}", hint=HINTS[check])
    for n, a, b in zip(names, g0, g1):
        if (a is None) != (b is None):
            raise Failure(check, f"the gradient of {n!r} is None in one run only ({what})",
                          input=n, hint=HINTS[check])
        msg = None if a is None else worst(b, a, tol)
        if msg:
            raise Failure(check, f"the gradient of {n!r} with {what}: {msg}", input=n,
                          hint=HINTS[check])


def _default_inputs(op):
    names = input_names(op)
    if names is None:
        raise TypeError(f"check_backward: cannot tell how many tensors {op_name(op)} takes; "
                        "pass inputs=, e.g. inputs=mt.cases(x=mt.values())")
    return names, elementwise_cases(names)


def check_backward(op, inputs=None, oracle=None, *, examples=(), max_examples=MAX_EXAMPLES,
                   seed=None, eps=1e-6, atol=1e-5, rtol=1e-4, oracle_tol=1e-8, layout_tol=1e-10,
                   float32_tol=1e-4, layouts=True, float32=True, device="cpu",
                   raise_on_failure=True, name=None):
    """Property-test ``op``'s forward and backward over generated examples; see the package doc.

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
    check_is_op("check_backward", op)
    names = input_names(op) or ()
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
        options["oracle"] = op_name(oracle, "oracle")
    defaults = dict(eps=1e-6, atol=1e-5, rtol=1e-4, oracle_tol=1e-8, layout_tol=1e-10,
                    float32_tol=1e-4, layouts=True, float32=True, device="cpu")
    given_options = dict(eps=eps, atol=atol, rtol=rtol, oracle_tol=oracle_tol,
                         layout_tol=layout_tol, float32_tol=float32_tol, layouts=layouts,
                         float32=float32, device=device)
    options.update({k: repr(v) for k, v in given_options.items() if v != defaults[k]})
    op_text = op_name(op)
    report = Report(f"check_backward({name or op_text})", name or op_text, checks,
                    lambda case: call_text("check_backward", op_text,
                                           {"inputs": repr(case), **options}))

    def against_oracle(case):
        def check(y):
            with no_grad():
                want = oracle(*case.arrays(np.float64), **case.kwargs(np.float64))
            msg = worst(y, backend.as_numpy(getattr(want, "data", want)), oracle_tol)
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
            fn = (lambda *ts: op(**params)(*ts)) if is_function_class(op) else (
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
            raise raised(e)

    search(report, check_case, inputs, names, examples, max_examples, seed)
    return report.raise_if_failed() if raise_on_failure else report

