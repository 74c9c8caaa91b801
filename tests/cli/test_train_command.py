"""The ``train`` command run as a learner runs it, in a subprocess: a run folder never mixes two
runs, nothing changes before training starts, and Ctrl-C, a full disk, a diverging loss or a
checkpoint that cannot be resumed end in one line that says what was kept. The data are the
bundled digits cut to a few images (see RUNNER), so each run takes a second or two. At the end,
the same command called in-process (``main``), for its outputs and its checks of the options."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minires import data, io, models, optim, train
from minires.cli import main

# ``python -m minires`` with the digits cut to N training and 32 test images (the first argument).
# FAIL_SAVEZ_AFTER=K makes every np.savez after the K-th write half a file and fail as a full disk
# does.
RUNNER = r"""
import errno, os, signal, sys
# Ctrl-C raises KeyboardInterrupt, as in a terminal, even if this test runs where SIGINT is
# ignored (a background job of a script: its children start with SIGINT ignored, and Python then
# leaves it ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from minires import data
n_train = int(sys.argv[1])
train_set, test_set = data.load_digits()
rng = np.random.default_rng(0)
small = (train_set.subset(rng.permutation(len(train_set))[:n_train]),
         test_set.subset(rng.permutation(len(test_set))[:32]))
data.load_digits = lambda: small
fail_after = int(os.environ.get("FAIL_SAVEZ_AFTER", "0"))
if fail_after:
    real_savez, calls = np.savez, []
    def savez(f, **arrays):
        calls.append(1)
        if len(calls) > fail_after:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(f, **arrays)
    np.savez = savez
from minires.cli import main
sys.exit(main(sys.argv[2:]))
"""
ENV = dict(os.environ, MINIRES_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")


def command(*argv, n_train=64, env=None, timeout=120):
    """Run ``python -m minires train ...`` on ``n_train`` digits; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", RUNNER, str(n_train), "train", "--no-progress",
                           *argv], capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


def one_line_error(proc):
    """The command failed with one line on stderr and no traceback; returns that line."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def config(folder):
    return json.loads((folder / "config.json").read_text())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One finished 1-epoch run (seed 0, batch 32): its folder and stdout. Tests work on copies."""
    folder = tmp_path_factory.mktemp("first") / "run"
    proc = command("--epochs", "1", "--batch-size", "32", "--out", str(folder))
    assert proc.returncode == 0, proc.stderr
    return folder, proc.stdout


@pytest.fixture
def run_folder(first_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(first_run[0], folder)
    return folder


def test_the_header_explains_the_parameter_count_and_an_early_test_accuracy(first_run):
    printed = first_run[1]
    grey = sum(p.size for p in models.resnet20(in_channels=1).parameters())
    rgb = sum(p.size for p in models.resnet20().parameters())
    assert f"{grey:,} parameters" in printed and f"{rgb:,} on 3-channel images" in printed
    assert "running statistics" in printed and "epoch 1" in printed


def test_a_new_run_does_not_start_over_another_runs_checkpoint(run_folder):
    before = (run_folder / "checkpoint.npz").read_bytes(), config(run_folder)
    line = one_line_error(command("--epochs", "1", "--seed", "1", "--out", str(run_folder)))
    assert "--resume" in line and "--overwrite" in line and str(run_folder) in line
    assert ((run_folder / "checkpoint.npz").read_bytes(), config(run_folder)) == before

    proc = command("--epochs", "1", "--batch-size", "16", "--seed", "1", "--overwrite", "--out",
                   str(run_folder))
    assert proc.returncode == 0, proc.stderr
    assert config(run_folder)["seed"] == 1 and config(run_folder)["batch_size"] == 16
    meta = train.read_checkpoint(run_folder / "checkpoint.npz")
    assert meta["config"] == config(run_folder) and meta["epoch"] == 1
    assert len(json.loads((run_folder / "history.json").read_text())) == 1


def test_resume_refuses_a_checkpoint_that_config_json_does_not_describe(run_folder):
    """The folder an interrupted start used to leave: a new run's config.json beside an old run's
    checkpoint."""
    settings = config(run_folder)
    (run_folder / "config.json").write_text(json.dumps({**settings, "seed": 5, "lr": 0.5}))
    line = one_line_error(command("--resume", "--epochs", "2", "--out", str(run_folder)))
    assert "seed 5 vs 0" in line and "lr 0.5 vs 0.1" in line and "different runs" in line
    assert train.read_checkpoint(run_folder / "checkpoint.npz")["epoch"] == 1


def test_a_command_that_fails_before_training_writes_nothing(tmp_path):
    folder = tmp_path / "run"
    line = one_line_error(command("--data", "cifar10", "--data-dir", str(tmp_path / "none"),
                                  "--out", str(folder)))
    assert "--download" in line
    assert not folder.exists()


def test_resume_with_more_epochs_updates_config_json(run_folder):
    proc = command("--resume", "--epochs", "2", "--out", str(run_folder))
    assert proc.returncode == 0, proc.stderr
    assert config(run_folder)["epochs"] == 2
    assert train.read_checkpoint(run_folder / "checkpoint.npz")["config"] == config(run_folder)
    assert [row["epoch"] for row in json.loads((run_folder / "history.json").read_text())] == [1, 2]


def test_ctrl_c_stops_with_one_line_naming_the_kept_epoch(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, "64", "train", "--no-progress",
                             "--epochs", "1000", "--batch-size", "32", "--out", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 90
        while (not (folder / "checkpoint.npz").exists() and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert (folder / "checkpoint.npz").exists(), "no checkpoint within 90 s"
        time.sleep(0.3)  # into a later epoch, or into a checkpoint write: either way one line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    line = err.strip().splitlines()[-1]
    epoch = train.read_checkpoint(folder / "checkpoint.npz")["epoch"]
    assert line.startswith("interrupted:") and f"holds epoch {epoch} " in line
    assert f"python -m minires train --resume --out {folder}" in line
    assert not [f for f in os.listdir(folder) if f.startswith(".tmp")]


def start_training(folder, *argv):
    """A train run of 1000 epochs in ``folder``, once its first checkpoint is written (its lr
    steps down after epoch 1 only, so that it can be resumed for any number of epochs)."""
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, "64", "train", "--no-progress",
                             "--epochs", "1000", "--milestones", "1", "--batch-size", "32",
                             "--out", str(folder), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 90
    while (not (folder / "checkpoint.npz").exists() and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    if not (folder / "checkpoint.npz").exists():
        proc.kill()
        raise AssertionError(f"no checkpoint within 90 s: {proc.communicate()[1]}")
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_as_ctrl_c_does(tmp_path, signum):
    """What ``kill``, a closed terminal or a batch scheduler sends: the same one line as Ctrl-C,
    exit status 128 + the signal's number, and the folder free for --resume."""
    folder = tmp_path / "run"
    proc = start_training(folder)
    try:
        time.sleep(0.3)  # into a later epoch, or into a checkpoint write: either way one line
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    line = err.strip().splitlines()[-1]
    epoch = train.read_checkpoint(folder / "checkpoint.npz")["epoch"]
    assert line.startswith(f"stopped by {signal.Signals(signum).name}: "), line
    assert f"holds epoch {epoch} " in line and f"train --resume --out {folder}" in line
    assert not [f for f in os.listdir(folder) if f.startswith(".")]  # no temporary, no lock
    proc = command("--resume", "--epochs", str(epoch + 1), "--out", str(folder))
    assert proc.returncode == 0, proc.stderr


def test_a_second_run_in_a_folder_in_use_is_refused_naming_the_first(tmp_path):
    """Two runs at once in one --out: the second is refused, whatever it asks, before it changes
    anything; once the first is killed (kill -9: no clean-up), its lock is taken over."""
    folder = tmp_path / "run"
    first = start_training(folder)
    try:
        for argv in (["--seed", "1"], ["--seed", "1", "--overwrite"], ["--resume"]):
            before = config(folder)
            line = one_line_error(command("--epochs", "2000", *argv, "--out", str(folder)))
            assert line == (f"--out {folder}: in use by another run (process {first.pid}); wait "
                            "for it to end or choose another --out"), line
            assert config(folder) == before
    finally:
        first.kill()  # SIGKILL
        first.communicate(timeout=60)
    epoch = train.read_checkpoint(folder / "checkpoint.npz")["epoch"]
    proc = command("--resume", "--epochs", str(epoch + 1), "--out", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert train.read_checkpoint(folder / "checkpoint.npz")["epoch"] == epoch + 1


def test_a_full_disk_stops_with_one_line_and_keeps_the_checkpoint(tmp_path):
    folder = tmp_path / "run"
    proc = command("--epochs", "2", "--batch-size", "32", "--out", str(folder),
                   env={"FAIL_SAVEZ_AFTER": "1"})
    line = one_line_error(proc)
    path = folder / "checkpoint.npz"
    assert f"cannot write {path}" in line and "No space left on device" in line
    assert "holds epoch 1 and is intact" in line and "--resume" in line
    assert train.read_checkpoint(path)["epoch"] == 1
    assert not [f for f in os.listdir(folder) if f.startswith(".tmp")]


def test_a_diverging_run_says_so_once_without_numpy_warnings(tmp_path):
    proc = command("--epochs", "2", "--lr", "1e6", "--out", str(tmp_path / "run"))
    assert proc.returncode == 1
    assert "RuntimeWarning" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "training diverged" in proc.stderr


def test_a_last_batch_of_one_image_is_skipped(tmp_path):
    """65 images in batches of 64 would end each epoch with a batch of one image, which ResNet-18's
    1x1 last stage (on 8x8 digits) cannot batch-normalise in training."""
    proc = command("--model", "resnet18", "--epochs", "1", "--batch-size", "64",
                   "--out", str(tmp_path / "run"), n_train=65)
    assert proc.returncode == 0, proc.stderr
    assert "skips its last batch" in proc.stdout


def test_a_bad_option_is_a_usage_error_before_anything_is_written(tmp_path):
    proc = command("--lr", "inf", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "error: argument --lr: must be a finite number, got inf")
    assert not (tmp_path / "run").exists()


# -- a checkpoint that --resume cannot continue: one line, and the folder as it was ----------------

def rewrite_checkpoint(folder, change):
    """Rewrite the run's checkpoint with ``change(arrays, meta)`` applied."""
    path = folder / "checkpoint.npz"
    arrays, meta = io.load_arrays(path)
    change(arrays, meta)
    io.save_arrays(path, arrays, meta)
    return path


def assert_resume_refused(folder, *wanted):
    before = (folder / "checkpoint.npz").read_bytes()
    line = one_line_error(command("--resume", "--epochs", "2", "--out", str(folder)))
    assert line.startswith("--resume: ") and str(folder / "checkpoint.npz") in line, line
    for text in wanted:
        assert text in line, line
    assert (folder / "checkpoint.npz").read_bytes() == before
    assert len(json.loads((folder / "history.json").read_text())) == 1


def test_resume_refuses_a_damaged_checkpoint(run_folder):
    (run_folder / "checkpoint.npz").write_bytes(b"PK\x03\x04 half a zip file")
    assert_resume_refused(run_folder, "corrupt")


def test_resume_refuses_a_checkpoint_without_recorded_settings(run_folder):
    rewrite_checkpoint(run_folder, lambda arrays, meta: meta.update(config=None))
    assert_resume_refused(run_folder, "records no run settings")


def test_resume_refuses_a_checkpoint_whose_settings_are_not_the_commands(run_folder):
    rewrite_checkpoint(run_folder, lambda arrays, meta: meta["config"].pop("schedule"))
    assert_resume_refused(run_folder, "not written by the train command", "schedule")


def test_resume_refuses_a_checkpoint_the_model_cannot_be_restored_from(run_folder):
    """The settings agree, so the refusal comes from restoring the weights, inside training."""
    rewrite_checkpoint(run_folder, lambda arrays, meta: arrays.pop("model.fc.weight"))
    assert_resume_refused(run_folder, "cannot restore", "fc.weight")


# -- the command in-process ------------------------------------------------------------------------

def digits_subsets(n_train, n_test):
    rng = np.random.default_rng(0)
    train_set, test_set = data.load_digits()
    return (train_set.subset(rng.permutation(len(train_set))[:n_train]),
            test_set.subset(rng.permutation(len(test_set))[:n_test]))


@pytest.fixture
def few_digits(monkeypatch):
    """``load_digits`` cut to 64 training and 32 test images, so the command runs in seconds."""
    small = digits_subsets(64, 32)
    monkeypatch.setattr(data, "load_digits", lambda: small)
    return small


def temp_files(folder):
    return [f for f in os.listdir(folder) if f.startswith(".tmp")]


def test_train_command_writes_its_outputs_resumes_and_refuses_changes(tmp_path, capsys,
                                                                       few_digits):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--batch-size", "32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet20" in printed and str(out) in printed and "test accuracy" in printed
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1] and set(history[0]) == set(train.HISTORY_KEYS)
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "history.csv").read_text().startswith(",".join(train.HISTORY_KEYS))
    settings = json.loads((out / "config.json").read_text())
    assert settings["model"] == "resnet20" and settings["batch_size"] == 32
    assert settings["epochs"] == 1
    model = models.resnet20(in_channels=1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    checkpoint = out / "checkpoint.npz"
    assert train.load_checkpoint(checkpoint, model, opt, optim.MultiStepLR(opt, [1])) == history

    assert main(["train", "--epochs", "2", "--resume", "--out", str(out)]) == 0
    resumed = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in resumed] == [1, 2] and resumed[0] == history[0]
    assert temp_files(out) == []

    # --resume continues the run as it was set up, or not at all.
    with pytest.raises(SystemExit, match="--lr"):
        main(["train", "--epochs", "2", "--lr", "0.5", "--resume", "--out", str(out)])
    with pytest.raises(SystemExit, match="--resume"):
        main(["train", "--resume", "--out", str(tmp_path / "elsewhere")])


def command_error(capsys, argv):
    """The one-line message a command fails with (argparse's on stderr, or the SystemExit's)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code != 0
    return capsys.readouterr().err + (e.value.code if isinstance(e.value.code, str) else "")


@pytest.mark.parametrize("argv, option", [
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"),
    (["--epochs", "2.5"], "--epochs"), (["--lr", "-1"], "--lr"), (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--momentum", "1.5"], "--momentum"), (["--momentum", "nan"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--weight-decay", "inf"], "--weight-decay"),
    (["--milestones", "5", "2"], "--milestones"), (["--milestones", "3", "3"], "--milestones"),
    (["--milestones", "-5", "0"], "--milestones"), (["--milestones", "0"], "--milestones"),
    # the lr would never change at 10
    (["--epochs", "10", "--milestones", "5", "10"], "--milestones"),
    (["--milestones", "20"], "--milestones"),  # beyond the default 15 epochs
    (["--warmup", "0"], "--warmup"), (["--warmup", "inf"], "--warmup"),
    (["--seed", "-1"], "--seed")])
def test_train_command_bad_values_fail_before_anything_is_written(tmp_path, capsys, few_digits,
                                                                  argv, option):
    message = command_error(capsys, ["train", *argv, "--out", str(tmp_path / "run")])
    assert option in message and "Traceback" not in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, option", [
    (["--data", "mnist"], "--data"), (["--model", "resnet21"], "--model"),
    (["--batch-size", "many"], "--batch-size"), (["--device", "tpu"], "--device")])
def test_train_command_unknown_choices_are_usage_errors(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        main(["train", *argv, "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and option in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_command_without_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(SystemExit, match="--download") as e:
        main(["train", "--data", "cifar10", "--data-dir", str(tmp_path / "none"),
              "--out", str(tmp_path / "run")])
    assert str(tmp_path / "none") in str(e.value)


def test_resume_with_epochs_0_is_refused_not_ignored(tmp_path, capsys, few_digits):
    out = str(tmp_path / "run")
    main(["train", "--epochs", "2", "--batch-size", "32", "--out", out])
    message = command_error(capsys, ["train", "--resume", "--epochs", "0", "--out", out])
    assert "--epochs: must be >= 1" in message
    # Fewer epochs than the run has trained cannot be continued either.
    message = command_error(capsys, ["train", "--resume", "--epochs", "1", "--out", out])
    assert "already trained 2 epochs" in message


def test_the_train_command_refuses_an_out_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert "exists and is not a folder" in command_error(capsys, ["train", "--out", str(path)])
    assert path.read_text() == "x"


def test_the_train_command_names_an_out_it_cannot_write(tmp_path, capsys, few_digits):
    """A folder inside a file cannot be made (as a read-only --out cannot be written): one line
    naming it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    message = command_error(capsys, ["train", "--epochs", "1", "--out", str(blocker / "run")])
    assert f"--out {blocker / 'run'}: cannot write" in message and "Not a directory" in message


# -- checkpoint metadata that is not what save_checkpoint writes: one line naming file and field --

def deep_metadata(arrays, meta):
    """The checkpoint's metadata with a value nested 200,000 lists deep (json's decoder overflows
    the stack on it); returned as the text to store, since json.dumps would overflow too."""
    return json.dumps(meta)[:-1] + ', "extra": ' + "[" * 200_000 + "]" * 200_000 + "}"


def store(path, arrays, meta_text):
    np.savez(path, **arrays, __meta__=np.array(meta_text))


@pytest.mark.parametrize("damage, wanted", [
    (lambda a, m: m.update(config=list(m["config"].items())), "config"),
    (lambda a, m: m["config"].pop("data") and None, "lack data"),
    (lambda a, m: m["config"].update(epochs="abc"), "config.epochs"),
    (lambda a, m: m["config"].update(lr="0.1"), "config.lr"),
    (lambda a, m: m["config"].update(batch_size=0), "config.batch_size"),
    (lambda a, m: m["config"].update(milestones="8"), "config.milestones"),
    (lambda a, m: m["config"].update(model="resnet21"), "config.model"),
    (lambda a, m: m.update(epoch="abc"), "epoch"),
    (lambda a, m: m.update(history=[5]), "history[0]"),
    (lambda a, m: m["history"][0].update(train_loss="low"), "history[0].train_loss"),
    (lambda a, m: m.update(loaders=7), "loaders"),
    (lambda a, m: m.update(global_rng=[1, 2]), "global_rng"),
    (lambda a, m: m["loaders"][0].update(rng=[1, 2]), "cannot restore"),
    (lambda a, m: m.update(scheduler={"milestones": "x"}), "cannot restore"),
    (deep_metadata, "nested too deep"),
])
def test_resume_refuses_checkpoint_metadata_of_the_wrong_shape_in_one_line(
        run_folder, capsys, few_digits, damage, wanted):
    path = run_folder / "checkpoint.npz"
    arrays, meta = io.load_arrays(path)
    text = damage(arrays, meta)
    store(path, arrays, text if isinstance(text, str) else json.dumps(meta))
    before = path.read_bytes()
    message = command_error(capsys, ["train", "--resume", "--epochs", "2", "--no-progress",
                                     "--out", str(run_folder)])
    lines = message.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("--resume: "), message
    assert str(path) in message and wanted in message, message
    assert path.read_bytes() == before


def test_resume_refuses_a_folder_where_the_checkpoint_should_be(run_folder, capsys, few_digits):
    path = run_folder / "checkpoint.npz"
    path.unlink()
    path.mkdir()
    message = command_error(capsys, ["train", "--resume", "--epochs", "2", "--out",
                                     str(run_folder)])
    assert message.startswith(f"--resume: {path}") and "folder" in message, message
    assert message.count("\n") == 0
