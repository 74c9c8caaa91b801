"""The history files: JSON and CSV rows with ``HISTORY_KEYS`` first, and the curves."""
import csv
import json

import minires as mr
from minires import train


def rows(top5=False):
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_error": 0.5 / e,
                "test_loss": 55.0 if e == 1 else 0.1, "test_error": 0.9 if e == 1 else 0.05,
                "lr": 0.1, "seconds": 1.5} for e in (1, 2, 3)]
    if top5:
        for row in history:
            row["test_top5_error"] = row["test_error"] / 2
    return history


def test_history_files_hold_every_row(tmp_path):
    history = rows(top5=True)
    train.write_history(history, tmp_path)
    assert json.loads((tmp_path / "history.json").read_text()) == history
    with open(tmp_path / "history.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(train.HISTORY_KEYS) + ["test_top5_error"]
    assert [float(r["test_top5_error"]) for r in written] == [0.45, 0.025, 0.025]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_use_a_log_axis_for_the_loss(tmp_path, monkeypatch):
    """Epoch 1's test loss can be hundreds of times the later ones': on a linear axis they would
    be flat."""
    figures = []
    monkeypatch.setattr(mr.io, "save_figure", lambda fig, path, **kw: figures.append(fig))
    train.plot_history(rows(), tmp_path / "curves.png")
    loss_axis, error_axis = figures[0].axes
    assert loss_axis.get_ylabel() == "cross-entropy loss" and loss_axis.get_yscale() == "log"
    assert error_axis.get_yscale() == "linear"
