"""``python -m minires check [TARGET ...]``: property-test the forward and backward of ops.

With no TARGET every built-in op is checked (``minires.testing.builtin_checks``). A TARGET is a
built-in name (``conv2d`` runs every conv2d row; ``conv2d.reference`` one of them) or an op of
your own, ``FILE.py:NAME`` or ``module:NAME``: a Function subclass or a function of Tensors. Its
inputs are ``NAME.check_inputs`` if it has one, else arrays of one random shape, one per argument;
``NAME.check_oracle``, if it has one, is the expected forward. One row per check (examples, result,
slowest case), then the report of every failure; exit status 1 when something failed.
"""
import importlib
import importlib.util
import inspect
import os
import sys
import time

from .options import nonnegative_int, positive_int

HELP = "property-test ops' forward and backward: every built-in op, or FILE.py:NAME of your own"


def add_arguments(parser):
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="a built-in op (see --list) or FILE.py:NAME / module:NAME "
                             "(default: every built-in op)")
    parser.add_argument("--examples", type=positive_int, default=None,
                        help="examples per check (default: minires.testing.MAX_EXAMPLES)")
    parser.add_argument("--seed", type=nonnegative_int, default=None,
                        help="draw other examples than the default ones (the same for a seed)")
    parser.add_argument("--case", default=None, metavar="CASE",
                        help="check only this case, written as a report prints it: "
                             "\"Case({'x': Values((1, 2), seed=0)})\"")
    parser.add_argument("--list", action="store_true", help="list the built-in checks and exit")


def _is_op(obj, function_class):
    if isinstance(obj, type):
        return issubclass(obj, function_class)
    return inspect.isfunction(obj) or inspect.isbuiltin(obj)


def _kind(obj, function_class):
    if isinstance(obj, type):
        return f"class ({obj.__name__} is not a Function subclass)"
    if isinstance(obj, function_class):
        return f"{type(obj).__name__} instance (give the class: a Function is used once)"
    return type(obj).__name__


def _load_module(path):
    if path.endswith(".py") or os.sep in path or "/" in path:
        if not os.path.isfile(path):
            raise SystemExit(f"check: no such file: {path}")
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in sys.path:
            sys.path.insert(0, folder)  # so the file can import its neighbours
        name = "_minires_check_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001  (any error in the learner's file, in one line)
            raise SystemExit(f"check: importing {path} failed: {type(e).__name__}: {e}")
        return module
    try:
        return importlib.import_module(path)
    except ImportError as e:
        raise SystemExit(f"check: cannot import {path}: {e}")
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"check: importing {path} failed: {type(e).__name__}: {e}")


def load_op(target, function_class):
    """The op named by ``FILE.py:NAME`` or ``module:NAME``; one-line SystemExit if it is none."""
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise SystemExit(f"check: {target!r} is not FILE.py:NAME (or module:NAME)")
    module = _load_module(path)
    if not hasattr(module, name):
        ops = sorted(k for k, v in vars(module).items()
                     if not k.startswith("_") and _is_op(v, function_class)
                     and getattr(v, "__module__", None) == module.__name__)
        found = f"; it defines {', '.join(ops)}" if ops else "; it defines no op"
        raise SystemExit(f"check: {path} has no {name!r}{found}")
    obj = getattr(module, name)
    if not _is_op(obj, function_class):
        raise SystemExit(f"check: {target} is a {_kind(obj, function_class)}, not an op: give a "
                         "Function subclass or a function of Tensors")
    if isinstance(obj, type) and getattr(obj, "check_inputs", None) is None:
        required = [p.name for p in inspect.signature(obj.__init__).parameters.values()
                    if p.name != "self" and p.default is p.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if required and obj.__init__ is not function_class.__init__:
            raise SystemExit(f"check: {name}.__init__ needs {', '.join(required)}: give "
                             f"{'it' if len(required) == 1 else 'them'} a default, or give "
                             f"{name} a check_inputs strategy (minires.testing.cases)")
    return obj


def _select(targets, builtins, function_class):
    """[(label, run, cli_target)] for the targets: built-in rows, or the learner's ops."""
    if not targets:
        return [(name, run, name) for name, run in builtins]
    chosen = []
    for target in targets:
        rows = [(n, r, n) for n, r in builtins if n == target or n.startswith(target + ".")]
        if rows:
            chosen += rows
        elif ":" in target:
            op = load_op(target, function_class)
            chosen.append((target, _user_run(op, target), target))
        else:
            names = sorted({n.split(".")[0] for n, _ in builtins})
            raise SystemExit(f"check: {target!r} is not a built-in op ({', '.join(names)}) "
                             "nor FILE.py:NAME")
    return chosen


def _user_run(op, target):
    from .. import testing

    def run(inputs=None, **options):
        try:
            return testing.check_backward(op, inputs, name=target, raise_on_failure=False,
                                          **options)
        except TypeError as e:
            if str(e).startswith("check_backward: "):
                raise SystemExit("check: " + str(e).split(": ", 1)[1])
            raise
    return run


def _parse_case(text, testing):
    import numpy as np
    try:
        case = eval(text, {"Case": testing.Case, "Values": testing.Values, "np": np})
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"check: --case is not a Case: {type(e).__name__}: {e}")
    if not isinstance(case, testing.Case):
        raise SystemExit(f"check: --case is a {type(case).__name__}, not a Case(...)")
    return case


def main(args):
    try:
        from .. import testing
    except ImportError as e:
        raise SystemExit(f"check: {e}")
    from ..autograd import Function

    builtins = testing.builtin_checks()
    if args.list:
        for name, _ in builtins:
            print(name)
        return 0
    chosen = _select(args.targets, builtins, Function)
    options = {"seed": args.seed}
    if args.examples is not None:
        options["max_examples"] = args.examples
    if args.case is not None:
        if len(chosen) != 1:
            raise SystemExit(f"check: --case needs exactly one check, got {len(chosen)} "
                             f"({', '.join(label for label, _, _ in chosen)})")
        options["inputs"] = _parse_case(args.case, testing)

    width = max(24, *(len(label) + 2 for label, _, _ in chosen))
    print(f"{'op':{width}s}{'examples':>8s}  {'result':44s} slowest case", flush=True)
    start, failed = time.perf_counter(), []
    for label, run, target in chosen:
        report = run(**options)
        examples = report.examples + report.shrinks
        print(f"{label:{width}s}{examples:8d}  {report.summary():44s} {report.slowest_text()}",
              flush=True)
        if not report.passed:
            failed.append((report, target))
    total = time.perf_counter() - start
    outcome = "all passed" if not failed else f"{len(failed)} failed"
    checks = f"{len(chosen)} check" + ("" if len(chosen) == 1 else "s")
    print(f"{checks} in {total:.1f} s: {outcome}")
    for report, target in failed:
        print()
        print(report)
        print(f"  or from the shell:\n      python -m minires check {target} "
              f"--case \"{report.failure.case!r}\"")
    return 1 if failed else 0
