"""The shape of minires/experiments/: one module per experiment, the same parts in each, and
shared foundations instead of experiments importing each other."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "minires" / "experiments"
EXPERIMENTS = ("flow", "degradation", "responses", "lesion", "paths", "landscape", "identity",
               "shatter", "signal", "normfree", "rank", "sharpness")
FOUNDATIONS = ("nets", "surgery", "probes", "output")


def imported_modules(path):
    """The minires.experiments modules that the file at ``path`` imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:  # from .x import y / from . import x
                found |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif module.startswith("minires.experiments"):
                rest = module[len("minires.experiments"):].lstrip(".")
                found |= {rest.split(".")[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("minires.experiments."):
                    found.add(a.name.split(".")[2])
    return found


def test_the_package_holds_the_experiments_and_the_foundations_only():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(EXPERIMENTS) | set(FOUNDATIONS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_no_experiment_imports_another(name):
    others = imported_modules(PACKAGE / f"{name}.py") & (set(EXPERIMENTS) - {name})
    assert not others, f"experiments/{name}.py imports the experiment(s) {sorted(others)}"


@pytest.mark.parametrize("name", FOUNDATIONS)
def test_no_foundation_imports_an_experiment(name):
    assert not imported_modules(PACKAGE / f"{name}.py") & set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_measure_table_and_run_in_that_order(name):
    module = importlib.import_module(f"minires.experiments.{name}")
    parts = [getattr(module, part, None) for part in ("measure", "table", "run")]
    assert all(callable(p) for p in parts), f"{name}: measure, table and run are its parts"
    lines = [inspect.getsourcelines(p)[1] for p in parts]
    assert lines == sorted(lines), f"{name}: measure, table and run come in that order"
    plots = [v for k, v in vars(module).items()
             if k.startswith("plot") and inspect.isfunction(v) and v.__module__ == module.__name__]
    assert plots, f"{name} has no plot_* function"
    assert all(lines[0] < inspect.getsourcelines(p)[1] < lines[2] for p in plots), \
        f"{name}: its plots sit between measure and run"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_run_takes_out_first_and_the_rest_by_keyword(name):
    run = importlib.import_module(f"minires.experiments.{name}").run
    params = list(inspect.signature(run).parameters.values())
    assert params[0].name == "out" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), \
        f"{name}.run: every option after out is keyword-only"
    assert {"device", "progress"} <= {p.name for p in params}


def test_the_old_top_level_experiment_modules_are_gone():
    top = PACKAGE.parent
    assert not [n for n in EXPERIMENTS if (top / f"{n}.py").exists()]
