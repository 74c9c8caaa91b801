"""Training without normalisation (``minires.experiments.normfree``): what the signal propagation
plot predicts, on a few SGD steps of ResNet-56 (the net without normalisation diverges, the others
do not), the bookkeeping of outcomes and claims on constructed histories, and the command."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from minires.experiments import nets, normfree


@pytest.fixture(scope="module")
def digits():
    return nets.datasets()


def test_without_normalisation_resnet56_diverges_and_the_others_do_not(digits):
    """ResNet-56 on 128 digits, one epoch (4 steps) of the recipe. Without normalisation the
    stream has grown so much by the classifier that the loss at initialisation is far above
    chance (log 10 = 2.30; 21 to 480 on seeds 0-4) and SGD diverges within the epoch (at step 2
    to 4 on seeds 0-4). With batch norm, SkipInit or Fixup, the same convs, batches and steps
    start near chance and stay finite; Fixup's logits are exactly 0 at initialisation."""
    train_set, test_set = digits
    recipe = normfree.RECIPE.replace(epochs=1)
    runs = {v: normfree.train_variant(v, 56, train_set, test_set, recipe, seed=0, limit=128,
                                      progress=False) for v in normfree.VARIANTS}
    bare = runs["no_norm"]
    assert bare["diverged"] is not None and bare["diverged"]["epoch"] == 1 and not bare["history"]
    assert bare["init"]["loss"] > 10 * math.log(10)
    for v in ("batch_norm", "skipinit", "fixup"):
        r = runs[v]
        assert r["diverged"] is None and len(r["history"]) == 1, v
        assert math.isfinite(r["history"][0]["train_loss"]) and r["init"]["loss"] < 3, (v, r)
    assert runs["fixup"]["init"] == {"loss": pytest.approx(math.log(10)), "logit_std": 0.0}


def test_at_init_leaves_the_model_as_it_was(digits):
    model = normfree.build_net("batch_norm", 8, seed=1)
    model.eval()
    x, y = nets.build_loaders(*digits, 16, 0)[2]
    before = {k: v.copy() for k, v in model.state_dict().items()}
    normfree.at_init(model, x, y)
    assert not model.training
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# -- outcomes and claims, on histories written by hand ---------------------------------------------

def _history(errors):
    return [{"epoch": i + 1, "train_error": e, "test_error": e / 2, "train_loss": 1.0}
            for i, e in enumerate(errors)]


def _run(errors, diverged=None, loss=2.3):
    return {"history": _history(errors), "diverged": diverged,
            "init": {"loss": loss, "logit_std": 0.1}, "seconds": 1.0}


def test_outcome_reads_the_first_epochs_below_the_thresholds_and_a_divergence_as_chance():
    o = normfree.outcome(_run([0.9, 0.6, 0.45, 0.2, 0.08]))
    assert (o["epoch_half"], o["epoch_trained"], o["trains"]) == (3, 5, True)
    assert o["final_train_error"] == 0.08 and o["best_test_error"] == 0.04
    d = normfree.outcome(_run([0.4], diverged={"epoch": 2, "step": 7}))
    assert d["final_train_error"] == 0.9 and not d["trains"] and d["epoch_half"] == 1


def test_claims_hold_and_fail_where_the_numbers_say():
    runs = {56: {"batch_norm": {0: _run([0.5, 0.2, 0.05]), 1: _run([0.6, 0.3, 0.09])},
                 "no_norm": {0: _run([], {"epoch": 1, "step": 3}), 1: _run([0.9, 0.85, 0.88])},
                 "skipinit": {0: _run([0.9, 0.7, 0.45]), 1: _run([0.9, 0.8, 0.79])},
                 "fixup": {0: _run([0.9, 0.5, 0.3]), 1: _run([0.5, 0.2, 0.1])}}}
    claims = normfree.measure(runs)["claims"]
    holds = {k: c["holds"] for k, c in claims.items()}
    assert holds == {"batch_norm-56": True, "no_norm-56": True,
                     "skipinit-56": True, "skipinit-56-as-bn": False, "skipinit-56-slower": True,
                     "fixup-56": True, "fixup-56-as-bn": False,
                     # seed 1: Fixup reaches 50% in epoch 1, batch norm in epoch 2
                     "fixup-56-slower": False}
    assert "seed 0: diverged in epoch 1; seed 1: 88.0%" in claims["no_norm-56"]["detail"]
    runs[56]["no_norm"][1] = _run([0.9, 0.5])  # it learned: the prediction fails
    assert not normfree.measure(runs)["claims"]["no_norm-56"]["holds"]


def test_table_and_csv_rows():
    runs = {8: {"batch_norm": {0: _run([0.6, 0.4]), 1: _run([0.7, 0.5])},
                "no_norm": {0: _run([], {"epoch": 1, "step": 1}), 1: _run([], {"epoch": 1,
                                                                               "step": 2})}}}
    text = normfree.table(normfree.measure(runs)["outcomes"])
    assert "| ResNet-8, batch norm | 45.0% [40.0%, 50.0%] |" in text
    assert "| never |" in text and "| 2 of 2 |" in text
    rows = normfree.csv_rows(runs)
    assert len(rows) == 4 and rows[0] == {"depth": 8, "variant": "batch_norm", "seed": 0,
                                          **_history([0.6, 0.4])[0]}


# -- the command -----------------------------------------------------------------------------------

def _command(*argv):
    return subprocess.run([sys.executable, "-m", "minires", *argv], capture_output=True, text=True,
                          env={**os.environ, "MINIRES_NUM_THREADS": "1"})


def test_normfree_command_help_bad_options_and_quick_run(tmp_path):
    help_ = _command("normfree", "--help")
    assert help_.returncode == 0, help_.stderr
    assert all(o in help_.stdout for o in ("--quick", "--depths", "--variants", "--seeds",
                                            "--epochs", "--lr", "--warmup", "--out", "--device"))
    for bad in (["--epochs", "0"], ["--lr", "-1"], ["--limit", "1"], ["--variants", "layer"]):
        done = _command("normfree", *bad, "--out", str(tmp_path / "bad"))
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert bad[0] in done.stderr and not (tmp_path / "bad").exists()
    out = tmp_path / "run"
    done = _command("normfree", "--quick", "--epochs", "2", "--variants", "no_norm", "fixup",
                    "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "normfree.json").read_text())
    assert report["recipe"] == normfree.RECIPE.replace(epochs=2, batch_size=32).as_dict()
    assert report["seeds"] == [0, 1] and report["depths"] == [8]  # --quick's, --epochs given
    assert report["variants"] == ["no_norm", "fixup"] and report["images"]["train"] == 64
    assert set(report["claims"]) == {"no_norm-8", "fixup-8", "fixup-8-as-bn"}
    assert report["command"].startswith("python -m minires normfree --quick")
    assert (out / "normfree.png").read_bytes()[:4] == b"\x89PNG"
    lines = (out / "normfree.csv").read_text().splitlines()
    assert lines[0].startswith("depth,variant,seed,epoch") and len(lines) == 1 + 2 * 2 * 2
