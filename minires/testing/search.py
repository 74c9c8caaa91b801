"""The search every check runs: hypothesis draws Cases, a check tries each, the smallest failure
is kept; and how a check calls, names and inspects the op under test.

A check is a function ``check_case(case)`` that returns on success and raises
:class:`~minires.testing.report.Failure`; :func:`search` runs it over the examples, derandomized
(the same examples every run, no example database) unless a ``seed`` asks for others, shrinks a
failure to the smallest case that still fails, and fills in the
:class:`~minires.testing.report.Report`.
"""
import inspect
import time

from hypothesis import HealthCheck, Phase, Verbosity, example, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings

from ..autograd import Function
from .case import Case, as_case, is_data
from .report import Failure, Report
from .strategies import case_strategy

MAX_EXAMPLES = 30
"""Examples per check by default: a built-in op takes a few seconds on one core."""


def search(report, check_case, inputs, names, examples, max_examples, seed):
    """Run ``check_case`` (Case -> None, or raise Failure) over ``inputs`` and fill ``report``.

    ``inputs``: one Case (or a dict of Values/arrays), tried alone; or anything
    :func:`~minires.testing.strategies.case_strategy` takes, searched with ``examples`` first.
    ``names``: the op's input names, for inputs drawn as tuples.
    """
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

    one = isinstance(inputs, dict) and all(map(is_data, inputs.values()))
    if isinstance(inputs, Case) or one:
        test = lambda: prop(as_case(inputs, names))  # one given case: no search
    else:
        test = given(case_strategy(inputs, names))(prop)
        for case in reversed(list(examples)):
            test = example(as_case(case, names))(test)
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

    search(Report("sample", "sample", [], repr), keep, inputs, (), (), n, seed)
    return drawn


# -- the op under test -----------------------------------------------------------------------------

def op_name(op, default="op"):
    """How a report names ``op``: its ``__name__`` (``F.conv2d`` for minires's own), else
    ``default``."""
    name = getattr(op, "__name__", None) or default
    if not name.isidentifier():
        return default
    module = getattr(op, "__module__", "") or ""
    return f"F.{name}" if module.startswith("minires.functional") else name


def call_text(fn_name, op_text, options):
    """The call a report prints: ``check_backward(F.conv2d, inputs=..., oracle=...)``."""
    return f"{fn_name}({op_text}{''.join(f', {k}={v}' for k, v in options.items())})"


def input_names(op):
    """Names of the op's tensor inputs, from its signature (``forward``'s for a Function)."""
    target = op.forward if is_function_class(op) else op
    try:
        ps = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if is_function_class(op):
        ps = ps[1:]  # self
    if any(p.kind == p.VAR_POSITIONAL for p in ps):
        return None
    pos = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in ps if p.kind in pos and p.default is p.empty) or None


def is_function_class(op):
    """True for a ``Function`` subclass, called ``op(**params)(*tensors)``; a function of Tensors
    is called ``op(*tensors, **params)``."""
    return isinstance(op, type) and issubclass(op, Function)


def check_is_op(where, op):
    """Raise a TypeError that says what to pass when ``op`` is neither a Function subclass nor a
    function (a Function instance, say); ``where`` names the check."""
    if isinstance(op, Function):
        raise TypeError(f"{where}: pass the class {type(op).__name__}, not an instance: a Function "
                        "is used once, so the check makes one per call (its arguments go in the "
                        "Case's params)")
    if not (is_function_class(op) or (callable(op) and not isinstance(op, type))):
        raise TypeError(f"{where}: {op!r} is not an op: pass a Function subclass or a function "
                        "of Tensors")
