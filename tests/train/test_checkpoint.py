"""Checkpoints: they restore a run (generators too), are written atomically, record the run's
settings, and fail with their own exception types: ``CheckpointError`` for a file that is not a
usable checkpoint, ``ResumeError`` for one of a run set up otherwise."""
import numpy as np
import pytest

from minires import backend, io, models, optim, train
from digits_runs import build, run, small_net, temp_files


def test_checkpoint_restores_the_global_generator(tmp_path):
    """Layers that draw at training time (none yet) must draw the same numbers after a resume."""
    model, train_loader, test_loader, opt, sched = build()
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, sched, [train_loader, test_loader], None, [])
    want = backend.default_rng().random(3)
    backend.manual_seed(123)
    train.load_checkpoint(path, model, opt, sched, [train_loader, test_loader])
    np.testing.assert_array_equal(backend.default_rng().random(3), want)


def test_the_warmup_state_round_trips(tmp_path):
    model, train_loader, test_loader, opt, sched = build()
    warm = train.Warmup(0.02)
    warm.active = False
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, sched, [train_loader, test_loader], warm, [])
    loaded = train.Warmup(0.5)
    train.load_checkpoint(path, model, opt, sched, [train_loader, test_loader], loaded)
    assert (loaded.lr, loaded.active) == (0.02, False)


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


def test_a_checkpoint_records_its_config_and_resume_checks_it(tmp_path):
    model, train_loader, test_loader, opt, sched = build(n_train=64)
    settings = {"model": "small", "seed": 0, "lr": 0.1, "epochs": 1}
    train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=1,
              out_dir=tmp_path, progress=False, config=settings)
    assert train.read_checkpoint(tmp_path / "checkpoint.npz")["config"] == settings
    model, train_loader, test_loader, opt, sched = build(n_train=64)
    with pytest.raises(train.ResumeError,
                       match=r"other settings than this run's: lr 0.1 \(asked: 0.5\), "
                             r"seed 0 \(asked: 3\)"):
        train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched, epochs=2,
                  out_dir=tmp_path, resume=True, progress=False,
                  config={**settings, "seed": 3, "lr": 0.5})
    # More epochs is not another run.
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched,
                        epochs=2, out_dir=tmp_path, resume=True, progress=False,
                        config={**settings, "epochs": 2})
    assert len(history) == 2
    assert train.read_checkpoint(tmp_path / "checkpoint.npz")["config"]["epochs"] == 2


def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path):
    model, train_loader, test_loader, opt, sched = build()
    train.save_checkpoint(tmp_path / "checkpoint.npz", model, opt, sched,
                          [train_loader, test_loader], train.Warmup(0.01), [])
    with pytest.raises(train.ResumeError, match="warm-up"):
        run(2, out_dir=tmp_path, resume=True, warmup=None)
    with pytest.raises(train.ResumeError, match="scheduler"):
        model, train_loader, _, opt, _ = build()
        train.fit(model, train_loader, optimizer=opt, epochs=2, out_dir=tmp_path, resume=True,
                  warmup=0.01, progress=False)


def test_a_checkpoint_without_settings_cannot_resume_a_run_that_has_them(tmp_path):
    model, train_loader, _, opt, _ = build()
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, None, [], None, [])  # config=None
    with pytest.raises(train.ResumeError, match="records no run settings") as e:
        train.load_checkpoint(path, model, opt, config={"seed": 0})
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert train.load_checkpoint(path, model, opt) == []  # without settings to check: resumable


def test_a_file_that_is_not_a_usable_checkpoint_is_a_checkpoint_error(tmp_path):
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    weights = tmp_path / "weights.npz"
    io.save(model, weights)  # an .npz of arrays, but no checkpoint metadata
    for path, match in ((empty, "empty"), (weights, "not a minires training checkpoint")):
        for call in (lambda: train.read_checkpoint(path),
                     lambda: train.load_checkpoint(path, model, opt)):
            with pytest.raises(train.CheckpointError, match=match) as e:
                call()
            assert str(path) in str(e.value) and not isinstance(e.value, train.ResumeError)
    # An intact checkpoint of another model cannot be restored into this one.
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, None, [], None, [])
    other = models.ResNet(models.BasicBlock, [1, 1, 1], num_classes=10, stem="cifar",
                          in_channels=1, widths=(4, 8, 8))
    with pytest.raises(train.CheckpointError, match="cannot restore") as e:
        train.load_checkpoint(path, other, optim.SGD(other.parameters(), lr=0.1))
    assert not isinstance(e.value, train.ResumeError)


def test_checkpoint_errors_are_value_errors():
    """Callers that catch ValueError (a bad file or argument) still catch them."""
    assert issubclass(train.ResumeError, train.CheckpointError)
    assert issubclass(train.CheckpointError, ValueError)


@pytest.mark.parametrize("change, field", [
    ({"epoch": "1"}, "epoch"), ({"epoch": True}, "epoch"), ({"history": {"1": {}}}, "history"),
    ({"history": [3.5]}, "history[0]"), ({"config": [["seed", 0]]}, "config"),
    ({"scheduler": "multistep"}, "scheduler"), ({"loaders": [1]}, "loaders"),
    ({"global_rng": None}, "global_rng")])
def test_metadata_of_the_wrong_type_is_one_error_naming_file_and_field(tmp_path, change, field):
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, None, [], None, [], config={"seed": 0})
    arrays, meta = io.load_arrays(path)
    io.save_arrays(path, arrays, {**meta, **change})
    with pytest.raises(train.CheckpointError) as e:
        train.read_checkpoint(path)
    assert str(e.value).startswith(f"{path}: the checkpoint's {field} is ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("config, field", [
    ({"epochs": "abc"}, "config.epochs"), ({"lr": "0.1"}, "config.lr"),
    ({"batch_size": 0}, "config.batch_size"), ({"momentum": 1.0}, "config.momentum"),
    ({"milestones": [0]}, "config.milestones"), ({"ten_crop": 1}, "config.ten_crop"),
    ({"model": "resnet21"}, "config.model"), ({"warmup": float("inf")}, "config.warmup")])
def test_run_settings_of_the_wrong_type_are_one_error_naming_the_field(config, field):
    good = {"model": "resnet20", "data": "digits", "epochs": 15, "batch_size": 64, "lr": 0.1,
            "momentum": 0.9, "weight_decay": 1e-4, "milestones": [8, 11], "warmup": None,
            "seed": 0, "schedule": "multistep", "patience": 5, "image_size": None,
            "ten_crop": False}
    assert train.check_run_settings("c.npz", good) == good
    with pytest.raises(train.CheckpointError, match=rf"^c\.npz: the checkpoint's {field} is "):
        train.check_run_settings("c.npz", {**good, **config})
