"""Every command behaves alike at its edges, run as a learner runs it (a subprocess): a closed pipe
ends quietly, ``--device gpu`` without a GPU is one line; and what a learner reads (``--help``, the
README, the lessons, the results pages, the book) speaks of the project only."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minires import backend
from minires.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, MINIRES_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")


def minires(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "minires", *argv], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=ROOT, **kw)


def test_output_into_a_closed_pipe_ends_quietly():
    """``python -m minires summary resnet20 | head -1``, where head has gone before the first
    write (with ``head -1`` itself whether it has gone in time is a race)."""
    proc = subprocess.Popen([sys.executable, "-m", "minires", "summary", "resnet20", "--depth",
                             "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                            cwd=ROOT)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == "", err


@pytest.mark.skipif(backend.gpu_available(),
                    reason="this machine has a GPU: --device gpu works here")
def test_every_command_without_a_gpu_says_so_in_one_line(tmp_path):
    for command in ("flow", "train", "degradation"):
        proc = minires(command, "--device", "gpu", "--out", str(tmp_path / command))
        assert proc.returncode not in (0, 2) and proc.stderr.strip().splitlines() == [
            f"--device gpu: {backend.gpu_problem()}"], \
            (command, proc.stderr)
        assert "pip install 'minires[gpu]'" in proc.stderr, proc.stderr
        assert not (tmp_path / command).exists()


def test_summary_paper_layout_says_when_it_changes_nothing():
    proc = minires("summary", "resnet20", "--paper-layout")
    assert proc.returncode == 0 and "changes nothing" in proc.stdout.splitlines()[0]
    assert "bottleneck layout" not in proc.stdout


# -- what a learner reads -------------------------------------------------------------------------

# How the project was built does not belong there: issue numbers, "the issue's ...", "quoted in the
# issue", sessions, commit ids (ordinary English, "the issue is", passes).
BUILD_TALK = re.compile(r"\bissues?\s*#?\d+|\bthe issue's|\b(in|by|from) the issue\b"
                        r"|\bsessions?\b|\bcommits?\b"
                        r"|\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", re.IGNORECASE)


def learner_texts():
    files = [ROOT / "README.md", *sorted((ROOT / "lessons").glob("*.py")),
             *sorted((ROOT / "lessons").glob("*.md")),
             *sorted((ROOT / "results").glob("*.md")), ROOT / "book" / "index.md"]
    texts = {str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files}
    parser = build_parser()
    texts["python -m minires --help"] = parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        texts[f"python -m minires {name} --help"] = sub.choices[name].format_help()
    return texts


def test_learner_facing_text_speaks_of_the_project_only():
    texts = learner_texts()
    bench = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], capture_output=True,
                           text=True, env=ENV, cwd=ROOT, timeout=120)
    texts["python -m benchmarks --help"] = bench.stdout
    found = {where: sorted({m.group(0) for m in BUILD_TALK.finditer(text)})
             for where, text in texts.items()}
    assert not {where: words for where, words in found.items() if words}


def test_build_talk_pattern_catches_what_it_should():
    for text in ("see issue 8", "Goals (issue 8)", "the issue's goals", "quoted in the issue",
                 "the session that built it", "at f962fb6 plus", "a commit"):
        assert BUILD_TALK.search(text), text
    for text in ("ResNet-1202", "3,857,973,248", "deadbeef-free", "reissued",
                 "the issue is the batch size"):
        assert not BUILD_TALK.search(text), text


def test_the_readme_says_how_to_control_threads_and_what_a_run_folder_holds():
    readme = (ROOT / "README.md").read_text()
    assert "MINIRES_NUM_THREADS" in readme and "OPENBLAS_NUM_THREADS" in readme
    assert "config.json" in readme and "--overwrite" in readme
    # One statement of the train command's run time.
    assert "well under a minute" not in readme and readme.count("about a minute") >= 1
