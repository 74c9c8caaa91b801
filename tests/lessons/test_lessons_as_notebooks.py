"""Every lesson runs as a notebook, the way ``pip install -e '.[lessons]'`` users open it: converted
by jupytext, executed cell by cell in a Jupyter kernel by ``jupyter nbconvert --execute``, in quick
mode. Needs the ``lessons`` extra (jupytext, nbconvert, a kernel); without it the tests skip and say
so (CI installs only ``.[dev]``, and tests/lessons/test_lessons.py still runs every lesson as a
script there)."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS_DIR = Path(__file__).resolve().parents[2] / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]*_*.py"))  # 03b_...: after 03
MISSING = [
    name
    for name in ("jupytext", "nbconvert", "ipykernel")
    if importlib.util.find_spec(name) is None
]


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs the lessons extra (pip install -e '.[lessons]'): "
    f"{', '.join(MISSING)} not installed",
)
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_as_a_notebook(path, tmp_path):
    notebook = tmp_path / (path.stem + ".ipynb")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupytext",
            "--to",
            "notebook",
            "--output",
            str(notebook),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The kernel inherits this environment: quick mode, figures to tmp, lesson_setup importable.
    env = dict(
        os.environ,
        MINIRES_QUICK="1",
        MINIRES_LESSON_OUT=str(tmp_path / "figures"),
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(LESSONS_DIR), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--output",
            str(tmp_path / "executed.ipynb"),
            str(notebook),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{path.name} failed as a notebook:\n{proc.stderr[-6000:]}"
    assert (tmp_path / "executed.ipynb").exists()


def test_the_lessons_extra_is_declared_and_notebooks_are_not_committed():
    """The set-up command in the README installs what this file needs, and generated notebooks stay
    out of git."""
    root = LESSONS_DIR.parent
    setup = (root / "setup.cfg").read_text()
    extra = setup.split("lessons =", 1)[1].split("\n\n", 1)[0] if "lessons =" in setup else ""
    for package in ("jupytext", "jupyterlab", "ipywidgets"):
        assert package in extra, f"setup.cfg's lessons extra lacks {package}"
    # CI installs only dev
    assert "jupyterlab" not in setup.split("dev =", 1)[1].split("lessons =", 1)[0]
    command = (
        "pip install -e '.[lessons]' && jupytext --to notebook lessons/[0-9]*.py "
        "&& jupyter lab lessons/"
    )
    assert (
        command in (root / "README.md").read_text()
        and command in (LESSONS_DIR / "README.md").read_text()
    )
    if shutil.which("git") and (root / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", "lessons/01_autograd.ipynb"], cwd=root
        )
        assert ignored.returncode == 0, "lessons/*.ipynb is not git-ignored"
