"""Every lesson runs as a notebook, the way Jupyter users open it, and shows every figure it saves.

Each lesson is converted by jupytext (the README's ``jupytext --to notebook``) and executed cell by
cell in a Jupyter kernel by nbclient, in quick mode, with matplotlib's inline backend, as in
JupyterLab. The test then counts the images the notebook displays against the figures the lesson
saved: each saved PNG must appear among the displayed images (``lesson_setup.show`` displays the
file itself, so they match byte for byte), and nothing is displayed that was not saved.

Needs jupytext, nbclient and ipykernel (the ``book`` extra, or the ``lessons`` extra); without them
the tests skip and say so (CI installs the ``book`` extra, so they run there)."""

import base64
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
    for name in ("jupytext", "nbclient", "ipykernel")
    if importlib.util.find_spec(name) is None
]
INLINE = "module://matplotlib_inline.backend_inline"  # what a Jupyter kernel uses by default


def _convert(path, notebook):
    """The README's conversion, for one lesson."""
    subprocess.run(
        [sys.executable, "-m", "jupytext", "--to", "notebook", "--output", str(notebook),
         str(path)],
        check=True, capture_output=True, timeout=120,
    )


def _execute(notebook, figures):
    """Run every cell in a fresh kernel, from lessons/ (as Jupyter does), in quick mode; the
    kernel inherits this environment with figures sent to ``figures``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    env = dict(os.environ, MINIRES_QUICK="1", MINIRES_LESSON_OUT=str(figures), MPLBACKEND=INLINE)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(LESSONS_DIR)}})
    client.execute(env=env)
    return nb


def _displayed_images(nb):
    """The PNGs a notebook displays, in order, as (cell number, bytes)."""
    images = []
    for number, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                images.append((number, base64.b64decode(data["image/png"])))
    return images


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs the book or lessons extra (pip install -e '.[book]'): "
    f"{', '.join(MISSING)} not installed",
)
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_as_a_notebook_and_shows_every_figure_it_saves(path, tmp_path):
    notebook = tmp_path / (path.stem + ".ipynb")
    _convert(path, notebook)
    figures = tmp_path / "figures"
    nb = _execute(notebook, figures)

    saved = sorted(figures.rglob("*.png")) if figures.is_dir() else []
    shown = _displayed_images(nb)
    shown_bytes = {image for _, image in shown}
    not_shown = [p.relative_to(figures).as_posix() for p in saved
                 if p.read_bytes() not in shown_bytes]
    saved_bytes = {p.read_bytes() for p in saved}
    not_saved = [number for number, image in shown if image not in saved_bytes]
    assert not not_shown, (
        f"{path.name} saves {len(saved)} figures and displays {len(shown)} images; these are "
        f"saved but never shown in the notebook: {not_shown}. Show each one with "
        f"lesson_setup.show(fig, name) or show(path_of_the_png)")
    assert not not_saved, (
        f"{path.name} displays images that it does not save (cells {not_saved}): draw them "
        f"through lesson_setup.show(fig, name), which saves and shows")
    assert len(shown) == len(saved), (
        f"{path.name} displays {len(shown)} images for {len(saved)} saved figures")


def test_the_lessons_extra_is_declared_and_notebooks_are_not_committed():
    """The set-up command in the README installs what this file needs, and generated notebooks stay
    out of git."""
    root = LESSONS_DIR.parent
    setup = (root / "setup.cfg").read_text()
    extra = setup.split("lessons =", 1)[1].split("\n\n", 1)[0] if "lessons =" in setup else ""
    for package in ("jupytext", "jupyterlab", "ipywidgets"):
        assert package in extra, f"setup.cfg's lessons extra lacks {package}"
    # CI installs dev and book, neither of which brings JupyterLab
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
