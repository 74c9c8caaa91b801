"""The training loop: short digits runs that learn, repeat bit for bit, resume exactly, report each
epoch, and stop cleanly on NaN; the warm-up."""
import csv
import json
import math

import numpy as np
import pytest

from minires import optim, train
from digits_runs import assert_same_state, build, run, temp_files, without_time


# -- learning ------------------------------------------------------------------------------------

def test_short_digits_run_lowers_the_loss_and_beats_chance():
    history, _ = run(3, n_train=384, n_test=200, lr=0.05, augment=False, warmup=None,
                     milestones=())
    losses = [row["train_loss"] for row in history]
    assert losses[0] > losses[1] > losses[2]
    assert losses[0] < 1.1 * math.log(10)  # the first epoch starts near chance, ln 10
    assert history[-1]["test_error"] < 0.5  # chance is 0.9
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert set(row) == set(train.HISTORY_KEYS)
        assert 0 <= row["train_error"] <= 1 and 0 <= row["test_error"] <= 1
        assert row["seconds"] >= 0


def test_history_follows_the_lr_schedule():
    history, _ = run(4, n_train=64, warmup=None, milestones=(1, 3))
    assert [row["lr"] for row in history] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_the_test_columns_are_evaluate_of_the_trained_net():
    model, train_loader, test_loader, opt, sched = build(n_train=64)
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched,
                        epochs=1, progress=False, top5=True)
    result = train.evaluate(model, test_loader)
    assert (history[0]["test_loss"], history[0]["test_error"], history[0]["test_top5_error"]) \
        == (result.loss, result.error, result.top5_error)


# -- one call per run: on_epoch ------------------------------------------------------------------

def test_on_epoch_is_called_once_per_epoch_with_its_row_once_it_is_on_disk(tmp_path):
    calls = []

    def on_epoch(row):
        checkpoint = train.read_checkpoint(tmp_path / "checkpoint.npz")["history"]
        files = json.loads((tmp_path / "history.json").read_text())
        calls.append((row, checkpoint, files))

    history, _ = run(3, n_train=64, out_dir=tmp_path, on_epoch=on_epoch)
    assert len(calls) == 3
    for i, (row, checkpoint, files) in enumerate(calls):
        assert row is history[i]  # the history's own row, not a copy
        assert checkpoint == files == history[:i + 1]  # recorded before the call
    # A resume reports the epochs it trains, not those it found in the checkpoint.
    resumed = []
    history, _ = run(5, n_train=64, out_dir=tmp_path, resume=True, on_epoch=resumed.append)
    assert [row["epoch"] for row in resumed] == [4, 5] and resumed == history[3:]


def test_one_fit_with_a_warmup_equals_one_fit_per_epoch_with_a_fresh_warmup():
    """The experiments' old loop: ``fit(epochs=1)`` once per epoch, with a new warm-up while the
    last epoch ended in one. One ``fit(epochs=3)`` must give the same bits, so the warm-up's
    error window restarts each epoch. 10 steps an epoch and windows of 8 (256 images): epoch 1
    ends 2 steps into a window, which epoch 2 must not finish; the warm-up ends in epoch 2."""
    kw = dict(n_train=320, augment=False, milestones=(2,))
    model, train_loader, test_loader, opt, sched = build(**kw)
    assert len(train_loader) * 32 % 256 != 0  # an epoch is not a whole number of windows
    per_epoch, warming = [], True
    for epoch in (1, 2, 3):
        row = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched,
                        epochs=1, warmup=0.01 if warming else None, progress=False)[0]
        warming = warming and row["lr"] == 0.01
        per_epoch.append({**row, "epoch": epoch})
    want_state = model.state_dict()
    # Epoch 1 ends in the warm-up and epoch 2 does not: the case where the window matters.
    assert [row["lr"] for row in per_epoch[:2]] == [0.01, 0.1]

    model, train_loader, test_loader, opt, sched = build(**kw)
    rows = []
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched,
                        epochs=3, warmup=0.01, progress=False, on_epoch=rows.append)
    assert rows == history
    assert without_time(history) == without_time(per_epoch)
    assert_same_state(model.state_dict(), want_state)


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
    from the checkpoint) == 4 epochs in one go, bit for bit. The stop falls before a milestone
    and, with this seed, inside the warm-up."""
    want_history, want_state = run(4, n_train=320)
    assert want_history[1]["lr"] == 0.01  # epoch 2 ended in the warm-up
    run(2, out_dir=tmp_path, n_train=320)
    got_history, got_state = run(4, seed=99, out_dir=tmp_path, resume=True, n_train=320)
    assert without_time(got_history) == without_time(want_history)
    assert_same_state(got_state, want_state)
    written = json.loads((tmp_path / "history.json").read_text())
    assert without_time(written) == without_time(want_history)


def test_resume_needs_a_checkpoint(tmp_path):
    model, train_loader, _, opt, _ = build()
    with pytest.raises(FileNotFoundError, match="checkpoint.npz"):
        train.fit(model, train_loader, optimizer=opt, epochs=2, out_dir=tmp_path, resume=True,
                  progress=False)
    with pytest.raises(ValueError, match="out_dir"):
        train.fit(model, train_loader, optimizer=opt, epochs=2, resume=True, progress=False)


# -- outputs ---------------------------------------------------------------------------------------

def test_fit_writes_history_curves_and_checkpoint_atomically(tmp_path):
    history, state = run(2, n_train=64, out_dir=tmp_path)
    assert sorted(tmp_path.iterdir()) == [tmp_path / name for name in
                                          ("checkpoint.npz", "curves.png", "history.csv",
                                           "history.json")]
    assert json.loads((tmp_path / "history.json").read_text()) == history
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(train.HISTORY_KEYS)
    for row, want in zip(rows, history):
        assert float(row["train_loss"]) == want["train_loss"]
        assert int(row["epoch"]) == want["epoch"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, train_loader, test_loader, opt, sched = build(seed=5)
    loaded = train.load_checkpoint(tmp_path / "checkpoint.npz", model, opt, sched,
                                   [train_loader, test_loader], train.Warmup(0.01))
    assert loaded == history
    assert_same_state(model.state_dict(), state)


# -- a run folder after a kill ---------------------------------------------------------------------

def test_resume_rebuilds_history_that_a_kill_after_the_checkpoint_lost(tmp_path, monkeypatch):
    """The kill comes after epoch 2's checkpoint, before its history: resume (nothing left to
    train) must still leave history.json, .csv and curves.png with both epochs."""
    writes = []
    real = train.loop.write_history

    def killed_at_epoch_2(history, out_dir):
        writes.append(len(history))
        if len(history) == 2:
            raise KeyboardInterrupt  # stands in for the kill: the checkpoint is on disk
        real(history, out_dir)

    monkeypatch.setattr(train.loop, "write_history", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(2, n_train=64, out_dir=tmp_path)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    monkeypatch.setattr(train.loop, "write_history", real)
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
        train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=3,
                  out_dir=tmp_path, warmup=0.01, progress=False)
    assert (e.value.epoch, e.value.step) == (2, 3)
    message = str(e.value)
    assert "diverged" in message and "nan" in message
    assert "epoch 2" in message and "step 3" in message
    assert str(tmp_path / "checkpoint.npz") in message and "from epoch 1" in message

    # The checkpoint on disk is the clean state after epoch 1, the same as a run that stops there.
    clean_history, clean_state = run(1, n_train=128)
    fresh, train_loader, test_loader, opt, sched = build(seed=7, n_train=128)
    history = train.load_checkpoint(tmp_path / "checkpoint.npz", fresh, opt, sched,
                                    [train_loader, test_loader], train.Warmup(0.01))
    assert without_time(history) == without_time(clean_history)
    assert_same_state(fresh.state_dict(), clean_state)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    assert temp_files(tmp_path) == []


def test_divergence_in_epoch_1_does_not_vouch_for_an_older_runs_checkpoint(tmp_path):
    model, train_loader, _, opt, _ = build()
    # an earlier run's checkpoint
    train.save_checkpoint(tmp_path / "checkpoint.npz", model, opt, None, [], None, [])
    model.register_forward_hook(lambda m, i, out: out * float("nan"))
    with pytest.raises(train.TrainingDiverged, match="no checkpoint was written"):
        train.fit(model, train_loader, optimizer=opt, epochs=1, out_dir=tmp_path, progress=False)


def test_huge_learning_rate_diverges_with_advice():
    model, train_loader, _, opt, _ = build(lr=1e6)
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(train.TrainingDiverged) as e:
        train.fit(model, train_loader, optimizer=opt, epochs=3, progress=False)
    message = str(e.value)
    assert "lr 1e+06" in message and "lower --lr" in message and "no checkpoint" in message
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


def test_a_new_epoch_drops_the_unfinished_window():
    warm = train.Warmup(lr=0.01, window=100)
    assert not warm.observe(correct=50, seen=60)  # 17% error, but only 60 images
    warm.start_epoch()
    assert not warm.observe(correct=0, seen=40)  # 100% error over a window of 40: no verdict
    assert not warm.observe(correct=0, seen=60)  # a window of 100 at 100% error
    assert warm.active


def test_warmup_trains_at_its_lr_until_the_training_error_drops_below_80_percent():
    """Per step: lr 0.01 while every window of >= 256 training images of an epoch so far had >= 80%
    error; 0.1 from the step that completes the first window below 80% (the paper's ResNet-110
    recipe). Each epoch starts a new window. No schedule, 10 steps an epoch: the warm-up
    outlasts epoch 1 and must still hand back 0.1, not keep 0.01."""
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
    model.register_forward_hook(
        lambda m, i, out: predictions.append(out.data.argmax(axis=1)) if m.training else None)
    history = train.fit(model, RecordingLoader(), optimizer=opt, epochs=2, warmup=0.01,
                        progress=False)

    correct = [int((p == y).sum()) for p, y in zip(predictions, labels)]
    switch, window_correct, window_seen = None, 0, 0
    for step, (c, y) in enumerate(zip(correct, labels)):
        if step % len(train_loader) == 0:  # an epoch starts: a new window
            window_correct = window_seen = 0
        window_correct, window_seen = window_correct + c, window_seen + len(y)
        if window_seen >= 256:
            if 1 - window_correct / window_seen < 0.8:
                switch = step
                break
            window_correct = window_seen = 0
    assert switch is not None, "the warm-up never ended: make the run longer"
    # A first window (from initialisation) below 80% error would skip the point.
    assert switch >= len(train_loader)
    assert lrs[:switch] == [0.01] * switch and lrs[switch:] == [0.1] * (len(lrs) - switch)
    assert history[-1]["lr"] == 0.1


def test_warmup_rejects_a_bad_lr():
    with pytest.raises(ValueError, match="warm-up lr"):
        train.Warmup(0)
