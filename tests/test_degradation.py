"""``python -m minires degradation``: a smoke test of the command on a tiny setting, and a check that
recording gradient flow between epochs leaves training exactly as it would have been."""
import json

import numpy as np
import pytest

from minires import backend, data, degradation, models, optim, train
from minires.cli import main


def test_degradation_command_writes_history_and_figures(tmp_path, capsys):
    """depth 8 (one block per stage), 1 epoch, 64 digits: every output is written and well formed."""
    rc = main(["degradation", "--depths", "8", "--epochs", "1", "--limit", "64", "--no-progress",
               "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "plain8" in out and "resnet8" in out and str(tmp_path) in out
    result = json.loads((tmp_path / "degradation.json").read_text())
    assert result["settings"]["nets"] == ["plain8", "resnet8"]
    for name in ("plain8", "resnet8"):
        (row,) = result["histories"][name]
        assert set(train.HISTORY_KEYS) <= set(row) and row["epoch"] == 1
        assert 0 <= row["train_error"] <= 1 and 0 <= row["test_error"] <= 1
        assert [r["epoch"] for r in result["flow"][name]] == [0, 1]  # at init, after epoch 1
        assert len(result["flow"][name][1]["weights"]) == 7  # the 7 convs of a depth-8 net
    for png in ("degradation.png", "flow_over_training.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, option", [(["--depths", "21"], "--depths"), (["--epochs", "0"], "--epochs"),
                                          (["--lr", "-1"], "--lr"), (["--batch-size", "1"], "--batch-size")])
def test_degradation_bad_options_fail_before_training(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        main(["degradation", *argv, "--out", str(tmp_path)])
    # Either argparse's usage error (exit 2, the option on stderr) or a check's one-line message.
    assert option in (capsys.readouterr().err if e.value.code == 2 else str(e.value))
    assert not (tmp_path / "degradation.json").exists()


def test_degradation_missing_cifar10_fails_with_a_message(tmp_path):
    """No CIFAR-10 in --data-dir and no --download: a one-line error naming the option, no traceback."""
    with pytest.raises(SystemExit, match="--data cifar10.*--download"):
        main(["degradation", "--data", "cifar10", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert not (tmp_path / "degradation.json").exists()


def test_epochwise_training_with_flow_probe_equals_one_fit():
    """train_one runs fit one epoch at a time and measures gradients in between; on the CPU that must
    give the same history, bit for bit, as a single fit(epochs=2) with the same seed."""
    train_set, test_set = data.load_digits()
    kw = dict(epochs=2, batch_size=32, lr=0.1, milestones=[1, 2], seed=3, device="cpu", limit=96)
    history, records = degradation.train_one("plain8", train_set, test_set, progress=False, **kw)
    assert [r["epoch"] for r in records] == [0, 1, 2]

    backend.manual_seed(3)
    model = models.cifar_resnet(8, num_classes=10, in_channels=1, shortcut=None)
    train_loader, test_loader, _ = degradation.build_loaders(train_set, test_set, 32, 3, 96)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    reference = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=optim.MultiStepLR(opt, [1, 2]),
                          epochs=2, progress=False)
    for got, want in zip(history, reference):
        for key in ("epoch", "train_loss", "train_error", "test_loss", "test_error", "lr"):
            assert got[key] == want[key], key
