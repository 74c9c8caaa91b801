"""A run folder is one command's while it runs: every command that writes one refuses a folder
another live process holds, in one line naming that process, and takes over the lock a killed
one left. SIGTERM and SIGHUP stop an experiment as Ctrl-C does. In-process where a subprocess is
not needed (the refusal comes before any work)."""
import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from minires import io
from minires.cli import build_parser, main

ENV = dict(os.environ, MINIRES_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
HOLDER = """
import sys, time
from minires import io
lock = io.lock_folder(sys.argv[1]).__enter__()
print("held", flush=True)
time.sleep(120)
"""

def run_folder_commands():
    """{label: argv but --out} for every command that takes --out (from ``build_parser()``, so a
    new command is covered too): ``--quick`` where it has one; a few as a learner starts them."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = {}
    for name, subparser in sub.choices.items():
        flags = {flag for a in subparser._actions for flag in a.option_strings}
        if "--out" in flags:
            commands[name] = [name] + (["--quick"] if "--quick" in flags else [])
    commands.update({"train": ["train", "--epochs", "1"], "flow": ["flow", "--depths", "8"],
                     "identity --merge": ["identity", "--merge", "elsewhere"]})
    return commands


COMMANDS = run_folder_commands()


@pytest.fixture
def held(tmp_path):
    """A folder that another live process holds; yields (folder, that process's id)."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield folder, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_commands_that_write_a_run_folder_are_all_here():
    assert {"train", "flow", "degradation", "responses", "lesion", "paths", "landscape",
            "identity", "shatter"} <= set(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_refuses_a_folder_in_use_naming_the_process(held, name):
    folder, pid = held
    with pytest.raises(SystemExit) as e:
        main(COMMANDS[name] + ["--out", str(folder)])
    assert e.value.code == (f"--out {folder}: in use by another run (process {pid}); wait for it "
                            "to end or choose another --out")
    assert os.listdir(folder) == [io.LOCK_NAME]  # nothing written beside the holder's lock


def test_a_finished_command_leaves_no_lock_and_a_killed_holders_lock_is_taken_over(tmp_path,
                                                                                   capsys):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()  # SIGKILL: the lock file stays, naming a process that is gone
    proc.wait()
    assert (folder / io.LOCK_NAME).exists()
    assert main(["flow", "--depths", "8", "--batch-size", "2", "--out", str(folder)]) == 0
    assert "flow.json" in capsys.readouterr().out
    assert sorted(os.listdir(folder)) == ["flow.json", "flow.png"]


def test_a_command_refused_before_its_work_leaves_no_folder(tmp_path):
    with pytest.raises(SystemExit, match="--batch-size"):
        main(["flow", "--batch-size", "1", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="--data"):  # refused after the folder was locked
        main(["identity", "--data", "cifar10", "--data-dir", str(tmp_path / "none"),
              "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_an_experiment_in_one_line(tmp_path, signum):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "minires", "shatter", "--max-depth", "400",
                             "--width", "32", "--no-progress", "--out", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=tmp_path)
    try:
        assert proc.stdout.readline().startswith("shattered gradients:")  # it has started
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines() == [f"stopped by {signal.Signals(signum).name}: every file "
                                        "written so far is complete (each is written whole)"]
    assert not folder.exists() or io.LOCK_NAME not in os.listdir(folder)
