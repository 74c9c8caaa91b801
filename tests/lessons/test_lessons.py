"""Every lesson runs from top to bottom as a plain script, in quick mode, and draws its figures.

Each lesson runs in a fresh interpreter, the way a learner runs it
(`MINIRES_QUICK=1 python lessons/NN_name.py`), with figures sent to a temporary folder.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS_DIR = Path(__file__).resolve().parents[2] / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]*_*.py"))  # 03b_...: after 03


def _plots(path):
    return re.search(r"\.savefig\(|\bshow\(fig", path.read_text(encoding="utf-8")) is not None


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_quick_mode(path, tmp_path):
    figures = tmp_path / "figures"
    env = dict(os.environ, MINIRES_QUICK="1", MINIRES_LESSON_OUT=str(figures), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"{path.name} exited with code {proc.returncode}\n"
        f"--- stdout (last 2000 chars) ---\n{proc.stdout[-2000:]}\n"
        f"--- stderr ---\n{proc.stderr[-6000:]}"
    )
    if _plots(path):
        assert figures.is_dir() and any(figures.iterdir()), (
            f"{path.name} plots but saved no figure in {figures}"
        )


def test_lessons_are_numbered_from_01_without_gaps():
    numbers = [p.name[:2] for p in LESSONS if p.name[2] == "_"]  # 03b_ follows 03_, unnumbered
    assert len(numbers) >= 8 and numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)], (
        f"expected lessons numbered 01, 02, ... with no gap or repeat in {LESSONS_DIR}, "
        f"found {[p.name for p in LESSONS]}"
    )
