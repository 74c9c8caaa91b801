"""Training: short digits runs that learn, repeat bit for bit, resume exactly and stop cleanly on NaN;
atomic checkpoints; the warm-up; the ``train`` command and its errors."""
import csv
import json
import math
import os

import numpy as np
import pytest

import minires as mr
from minires import backend, data, models, optim, train
from minires.cli import main

DIGITS = data.load_digits()


def small_net():
    """ResNet-8 at half width (8/16/32 channels): trains a digits epoch in a fraction of a second."""
    return models.ResNet(models.BasicBlock, [1, 1, 1], num_classes=10, stem="cifar", shortcut="A",
                         in_channels=1, widths=(8, 16, 32))


def subsets(n_train, n_test):
    rng = np.random.default_rng(0)
    train_set, test_set = DIGITS
    return (train_set.subset(rng.permutation(len(train_set))[:n_train]),
            test_set.subset(rng.permutation(len(test_set))[:n_test]))


def build(seed=0, n_train=256, n_test=128, lr=0.1, augment=True, milestones=(3,)):
    """Model, loaders, optimizer and schedule, all built from ``seed``."""
    train_set, test_set = subsets(n_train, n_test)
    backend.manual_seed(seed)
    model = small_net()
    train_loader = data.DataLoader(train_set, 32, shuffle=True, seed=seed,
                                   augment=data.paper_augment(train_set) if augment else None)
    test_loader = data.DataLoader(test_set, 128)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return model, train_loader, test_loader, opt, optim.MultiStepLR(opt, list(milestones))


def run(epochs, seed=0, out_dir=None, resume=False, warmup=0.01, **kw):
    """fit from ``seed``; returns (history, model's state dict)."""
    model, train_loader, test_loader, opt, sched = build(seed, **kw)
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=epochs,
                        out_dir=out_dir, resume=resume, warmup=warmup, progress=False)
    return history, model.state_dict()


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def temp_files(folder):
    return [f for f in os.listdir(folder) if f.startswith(".tmp")]


# -- learning ------------------------------------------------------------------------------------

def test_short_digits_run_lowers_the_loss_and_beats_chance():
    history, _ = run(3, n_train=384, n_test=200, lr=0.05, augment=False, warmup=None, milestones=())
    losses = [row["train_loss"] for row in history]
    assert losses[0] > losses[1] > losses[2]
    assert losses[0] < 1.1 * math.log(10)  # the first epoch starts near chance, ln 10
    assert history[-1]["test_error"] < 0.5  # chance is 0.9
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert set(row) == set(train.HISTORY_KEYS)
        assert 0 <= row["train_error"] <= 1 and 0 <= row["test_error"] <= 1 and row["seconds"] >= 0


def test_evaluate_counts_errors_and_averages_the_loss():
    """A model that always answers class 3: error = share of other labels, loss = mean CE of its logits."""
    class Constant(mr.nn.Module):
        def forward(self, x):
            logits = np.zeros((x.shape[0], 10), dtype=np.float32)
            logits[:, 3] = 2.0
            return mr.Tensor(logits)

    _, test_set = subsets(1, 100)
    loss, error = train.evaluate(Constant(), data.DataLoader(test_set, 30))
    assert error == pytest.approx(np.mean(test_set.labels != 3))
    p3 = math.exp(2) / (math.exp(2) + 9)
    want = np.mean(np.where(test_set.labels == 3, -math.log(p3), -math.log((1 - p3) / 9)))
    assert loss == pytest.approx(want, rel=1e-5)


def test_history_follows_the_lr_schedule():
    history, _ = run(4, n_train=64, warmup=None, milestones=(1, 3))
    assert [row["lr"] for row in history] == pytest.approx([0.1, 0.01, 0.01, 0.001])


# -- reproducibility and resume --------------------------------------------------------------------

def test_same_seed_gives_identical_history_and_parameters():
    h1, s1 = run(2, n_train=128)
    h2, s2 = run(2, n_train=128)
    assert without_time(h1) == without_time(h2)
    assert_same_state(s1, s2)
    h3, _ = run(2, n_train=128, seed=1)
    assert without_time(h3) != without_time(h1)


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path):
    """2 epochs, stop, resume to 4 with freshly built objects (another seed: everything must come
    from the checkpoint) == 4 epochs in one go, bit for bit. 10 steps an epoch and warm-up windows
    of 8 steps: the stop falls inside a window, before a milestone and (with this seed) before the
    warm-up ends."""
    want_history, want_state = run(4, n_train=320)
    run(2, out_dir=tmp_path, n_train=320)
    got_history, got_state = run(4, seed=99, out_dir=tmp_path, resume=True, n_train=320)
    assert without_time(got_history) == without_time(want_history)
    assert_same_state(got_state, want_state)
    assert without_time(json.loads((tmp_path / "history.json").read_text())) == without_time(want_history)


def test_resume_needs_a_checkpoint(tmp_path):
    model, train_loader, _, opt, _ = build()
    with pytest.raises(FileNotFoundError, match="checkpoint.npz"):
        train.fit(model, train_loader, optimizer=opt, epochs=2, out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="out_dir"):
        train.fit(model, train_loader, optimizer=opt, epochs=2, resume=True, progress=False)


def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path):
    model, train_loader, test_loader, opt, sched = build()
    train.save_checkpoint(tmp_path / "checkpoint.npz", model, opt, sched, [train_loader, test_loader],
                          train.Warmup(0.01), [])
    with pytest.raises(ValueError, match="warm-up"):
        run(2, out_dir=tmp_path, resume=True, warmup=None)


# -- outputs and checkpoints -----------------------------------------------------------------------

def test_fit_writes_history_curves_and_checkpoint_atomically(tmp_path):
    history, state = run(2, n_train=64, out_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "curves.png", "history.csv", "history.json"]
    assert json.loads((tmp_path / "history.json").read_text()) == history
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(train.HISTORY_KEYS)
    for row, want in zip(rows, history):
        assert float(row["train_loss"]) == want["train_loss"] and int(row["epoch"]) == want["epoch"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, train_loader, test_loader, opt, sched = build(seed=5)
    loaded = train.load_checkpoint(tmp_path / "checkpoint.npz", model, opt, sched, [train_loader, test_loader],
                                   train.Warmup(0.01))
    assert loaded == history
    assert_same_state(model.state_dict(), state)


def test_checkpoint_restores_the_global_generator(tmp_path):
    """Layers that draw at training time (none yet) must draw the same numbers after a resume."""
    model, train_loader, test_loader, opt, sched = build()
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, sched, [train_loader, test_loader], None, [])
    want = backend.default_rng().random(3)
    backend.manual_seed(123)
    train.load_checkpoint(path, model, opt, sched, [train_loader, test_loader])
    np.testing.assert_array_equal(backend.default_rng().random(3), want)


def test_a_failed_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    model, train_loader, test_loader, opt, sched = build()
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, sched, [train_loader, test_loader], None, [])
    before = path.read_bytes()

    def disk_full(f, **arrays):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        train.save_checkpoint(path, model, opt, sched, [train_loader, test_loader], None, [])
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


# -- divergence ------------------------------------------------------------------------------------

def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model, train_loader, test_loader, opt, sched = build(n_train=128)
    steps = len(train_loader)
    calls = []

    def poison(module, inputs, out):
        if module.training:
            calls.append(1)
            if len(calls) == steps + 3:  # epoch 2, step 3
                return out * float("nan")

    model.register_forward_hook(poison)
    with pytest.raises(train.TrainingDiverged) as e:
        train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=3, out_dir=tmp_path,
                  warmup=0.01, progress=False)
    assert (e.value.epoch, e.value.step) == (2, 3)
    message = str(e.value)
    assert "diverged" in message and "nan" in message and "epoch 2" in message and "step 3" in message
    assert str(tmp_path / "checkpoint.npz") in message and "from epoch 1" in message

    # The checkpoint on disk is the clean state after epoch 1, the same as a run that stops there.
    clean_history, clean_state = run(1, n_train=128)
    fresh, train_loader, test_loader, opt, sched = build(seed=7, n_train=128)
    history = train.load_checkpoint(tmp_path / "checkpoint.npz", fresh, opt, sched, [train_loader, test_loader],
                                    train.Warmup(0.01))
    assert without_time(history) == without_time(clean_history)
    assert_same_state(fresh.state_dict(), clean_state)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    assert temp_files(tmp_path) == []


def test_divergence_in_epoch_1_does_not_vouch_for_an_older_runs_checkpoint(tmp_path):
    model, train_loader, _, opt, _ = build()
    train.save_checkpoint(tmp_path / "checkpoint.npz", model, opt, None, [], None, [])  # an earlier run's
    model.register_forward_hook(lambda m, i, out: out * float("nan"))
    with pytest.raises(train.TrainingDiverged, match="no checkpoint was written"):
        train.fit(model, train_loader, optimizer=opt, epochs=1, out_dir=tmp_path, progress=False)


def test_huge_learning_rate_diverges_with_advice():
    model, train_loader, _, opt, _ = build(lr=1e6)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(train.TrainingDiverged) as e:
        train.fit(model, train_loader, optimizer=opt, epochs=3, progress=False)
    assert "lr 1e+06" in str(e.value) and "lower --lr" in str(e.value) and "no checkpoint" in str(e.value)
    assert e.value.epoch >= 1 and e.value.step >= 1


def test_fit_rejects_bad_epochs():
    model, train_loader, _, opt, _ = build()
    for epochs in (0, -1, 2.5):
        with pytest.raises(ValueError, match="epochs"):
            train.fit(model, train_loader, optimizer=opt, epochs=epochs, progress=False)


# -- warm-up ---------------------------------------------------------------------------------------

def test_warmup_ends_at_the_first_window_below_80_percent_error():
    warm = train.Warmup(lr=0.01, window=100)
    assert not warm.observe(correct=10, seen=50)  # half a window: no verdict yet
    assert not warm.observe(correct=10, seen=50)  # 80% error is not below 80%
    assert warm.active
    assert warm.observe(correct=21, seen=100)  # 79%
    assert not warm.active


def test_warmup_trains_at_its_lr_until_the_training_error_drops_below_80_percent():
    """Per step: lr 0.01 while every window of >= 256 training images so far had >= 80% error; 0.1 from
    the step that completes the first window below 80% (the paper's ResNet-110 recipe). No schedule,
    10 steps an epoch: the warm-up outlasts epoch 1 and must still hand back 0.1, not keep 0.01."""
    model, train_loader, _, opt, _ = build(n_train=320, augment=False)
    lrs, predictions, labels = [], [], []

    class RecordingLoader:
        def __len__(self):
            return len(train_loader)

        def __iter__(self):
            for x, y in train_loader:
                labels.append(y)
                yield x, y

    def record_lr():
        lrs.append(opt.lr)
        optim.SGD.step(opt)

    opt.step = record_lr
    model.register_forward_hook(lambda m, i, out: predictions.append(out.data.argmax(axis=1)) if m.training else None)
    history = train.fit(model, RecordingLoader(), optimizer=opt, epochs=2, warmup=0.01, progress=False)

    correct = [int((p == y).sum()) for p, y in zip(predictions, labels)]
    switch, window_correct, window_seen = None, 0, 0
    for step, (c, y) in enumerate(zip(correct, labels)):
        window_correct, window_seen = window_correct + c, window_seen + len(y)
        if window_seen >= 256:
            if 1 - window_correct / window_seen < 0.8:
                switch = step
                break
            window_correct = window_seen = 0
    assert switch is not None, "the warm-up never ended: make the run longer"
    assert switch >= len(train_loader)  # a first window (from initialisation) below 80% error would skip the point
    assert lrs[:switch] == [0.01] * switch and lrs[switch:] == [0.1] * (len(lrs) - switch)
    assert history[-1]["lr"] == 0.1


def test_warmup_rejects_a_bad_lr():
    with pytest.raises(ValueError, match="warm-up lr"):
        train.Warmup(0)


# -- the train command -------------------------------------------------------------------------------

@pytest.fixture
def few_digits(monkeypatch):
    """``load_digits`` cut to 64 training and 32 test images, so the command runs in seconds."""
    small = subsets(64, 32)
    monkeypatch.setattr(data, "load_digits", lambda: small)
    return small


def test_train_command_writes_its_outputs_resumes_and_refuses_changes(tmp_path, capsys, few_digits):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--batch-size", "32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet20" in printed and str(out) in printed and "test accuracy" in printed
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1] and set(history[0]) == set(train.HISTORY_KEYS)
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "history.csv").read_text().startswith(",".join(train.HISTORY_KEYS))
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "resnet20" and config["batch_size"] == 32 and config["epochs"] == 1
    model = models.resnet20(in_channels=1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert train.load_checkpoint(out / "checkpoint.npz", model, opt, optim.MultiStepLR(opt, [1])) == history

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
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"), (["--epochs", "2.5"], "--epochs"),
    (["--lr", "-1"], "--lr"), (["--lr", "0"], "--lr"), (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--momentum", "1.5"], "--momentum"), (["--momentum", "nan"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--weight-decay", "inf"], "--weight-decay"),
    (["--milestones", "5", "2"], "--milestones"), (["--milestones", "3", "3"], "--milestones"),
    (["--milestones", "-5", "0"], "--milestones"), (["--milestones", "0"], "--milestones"),
    (["--epochs", "10", "--milestones", "5", "10"], "--milestones"),  # the lr would never change at 10
    (["--milestones", "20"], "--milestones"),  # beyond the default 15 epochs
    (["--warmup", "0"], "--warmup"), (["--warmup", "inf"], "--warmup"), (["--seed", "-1"], "--seed")])
def test_train_command_bad_values_fail_before_anything_is_written(tmp_path, capsys, few_digits, argv, option):
    message = command_error(capsys, ["train", *argv, "--out", str(tmp_path / "run")])
    assert option in message and "Traceback" not in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, option", [
    (["--data", "mnist"], "--data"), (["--model", "resnet21"], "--model"), (["--batch-size", "many"], "--batch-size"),
    (["--device", "tpu"], "--device")])
def test_train_command_unknown_choices_are_usage_errors(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        main(["train", *argv, "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and option in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_command_without_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(SystemExit, match="--download") as e:
        main(["train", "--data", "cifar10", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "run")])
    assert str(tmp_path / "none") in str(e.value)


@pytest.mark.parametrize("epochs, expected", [
    (164, [82, 123]),  # the paper's CIFAR-10 schedule: 32k and 48k of 64k iterations at batch 128
    (15, [8, 11]), (3, [2]), (1, [])])
def test_default_milestones_are_half_and_three_quarters_of_the_run(epochs, expected):
    assert train.default_milestones(epochs) == expected


def test_resume_with_epochs_0_is_refused_not_ignored(tmp_path, capsys, few_digits):
    out = str(tmp_path / "run")
    main(["train", "--epochs", "2", "--batch-size", "32", "--out", out])
    assert "--epochs: must be >= 1" in command_error(capsys, ["train", "--resume", "--epochs", "0", "--out", out])
    # Fewer epochs than the run has trained cannot be continued either.
    assert "already trained 2 epochs" in command_error(capsys, ["train", "--resume", "--epochs", "1", "--out", out])


# -- a run folder after a kill ------------------------------------------------------------------------

def test_resume_rebuilds_history_that_a_kill_after_the_checkpoint_lost(tmp_path, monkeypatch):
    """The kill comes after epoch 2's checkpoint, before its history: resume (nothing left to
    train) must still leave history.json, .csv and curves.png with both epochs."""
    writes = []
    real = train.write_history

    def killed_at_epoch_2(history, out_dir):
        writes.append(len(history))
        if len(history) == 2:
            raise KeyboardInterrupt  # stands in for the kill: the checkpoint is on disk, the history not
        real(history, out_dir)

    monkeypatch.setattr(train, "write_history", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(2, n_train=64, out_dir=tmp_path)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    monkeypatch.setattr(train, "write_history", real)
    (tmp_path / "curves.png").unlink()
    history, _ = run(2, n_train=64, out_dir=tmp_path, resume=True)
    assert [row["epoch"] for row in history] == [1, 2]
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3
    assert (tmp_path / "curves.png").exists()


def test_a_start_removes_the_temporary_files_of_a_killed_write(tmp_path):
    stale = [".tmp-checkpoint.npz-k1ll3d", ".tmp-history.json-abc", ".tmp-curves.png-x"]
    for name in stale:
        (tmp_path / name).write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("mine")
    run(1, n_train=64, out_dir=tmp_path)
    assert temp_files(tmp_path) == [] and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_checkpoint_records_its_config_and_resume_checks_it(tmp_path):
    model, train_loader, test_loader, opt, sched = build(n_train=64)
    settings = {"model": "small", "seed": 0, "lr": 0.1, "epochs": 1}
    train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=1, out_dir=tmp_path,
              progress=False, config=settings)
    assert train.read_checkpoint(tmp_path / "checkpoint.npz")["config"] == settings
    model, train_loader, test_loader, opt, sched = build(n_train=64)
    with pytest.raises(ValueError, match=r"other settings than this run's: lr 0.1 \(asked: 0.5\), seed 0 \(asked: 3\)"):
        train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=2, out_dir=tmp_path,
                  resume=True, progress=False, config={**settings, "seed": 3, "lr": 0.5})
    # More epochs is not another run.
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=2, out_dir=tmp_path,
                        resume=True, progress=False, config={**settings, "epochs": 2})
    assert len(history) == 2
    assert train.read_checkpoint(tmp_path / "checkpoint.npz")["config"]["epochs"] == 2


def test_curves_use_a_log_axis_for_the_loss(tmp_path, monkeypatch):
    """Epoch 1's test loss can be hundreds of times the later ones': on a linear axis they would be flat."""
    figures = []
    monkeypatch.setattr(mr.io, "save_figure", lambda fig, path, **kw: figures.append(fig))
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_error": 0.5 / e, "test_loss": 55.0 if e == 1 else 0.1,
                "test_error": 0.9 if e == 1 else 0.05} for e in (1, 2, 3)]
    train.plot_history(history, tmp_path / "curves.png")
    loss_axis, error_axis = figures[0].axes
    assert loss_axis.get_ylabel() == "cross-entropy loss" and loss_axis.get_yscale() == "log"
    assert error_axis.get_yscale() == "linear"


def test_the_train_command_refuses_an_out_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert "exists and is not a folder" in command_error(capsys, ["train", "--out", str(path)])
    assert path.read_text() == "x"


def test_the_train_command_names_an_out_it_cannot_write(tmp_path, capsys, few_digits):
    """A folder inside a file cannot be made (as a read-only --out cannot be written): one line naming it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    message = command_error(capsys, ["train", "--epochs", "1", "--out", str(blocker / "run")])
    assert f"--out {blocker / 'run'}: cannot write" in message and "Not a directory" in message
