"""Layer responses (Figure 7): what ``responses.layer_responses`` measures, against the layers
called by hand, the paper's claim on small trained nets, and the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minires as mr
import small_nets
from minires import data, models, nn
from minires.autograd import Tensor
from minires.experiments import nets, responses


def _randomised(model, seed):
    """BN parameters and running statistics far from their initial values, so that eval-mode outputs
    differ from layer to layer."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.2, 2.0, c)
            m.bias.data[...] = rng.normal(0, 0.5, c)
            m.set_buffer("running_mean", rng.normal(0, 0.3, c).astype(np.float32))
            m.set_buffer("running_var", rng.uniform(0.5, 2.0, c).astype(np.float32))
    return model.eval()


@pytest.mark.parametrize("shortcut", ["A", None])
def test_responses_are_the_bn_outputs_before_addition_and_relu(shortcut):
    """The oracle calls each layer by hand: stem bn1(conv1(x)); per block bn1(conv1(x)) and
    bn2(conv2(relu(.))), the latter before the shortcut is added and before the ReLU."""
    mr.manual_seed(0)
    net = models.cifar_resnet(14, num_classes=10, in_channels=1, shortcut=shortcut)
    model = _randomised(net, 1)
    x = np.random.default_rng(2).normal(0, 1, (24, 1, 8, 8)).astype(np.float32)
    got = responses.layer_responses(model, [(x, np.zeros(24, dtype=np.int64))])

    want = {}
    with mr.no_grad():
        t = model.bn1(model.conv1(Tensor(x)))
        want["bn1"] = t.data.astype(np.float64).std()
        h = model.relu(t)
        for s, stage in enumerate(model.stages(), 1):
            for b, block in enumerate(stage):
                r1 = block.bn1(block.conv1(h))
                r2 = block.bn2(block.conv2(block.relu(r1)))
                want[f"layer{s}.{b}.bn1"] = r1.data.astype(np.float64).std()
                want[f"layer{s}.{b}.bn2"] = r2.data.astype(np.float64).std()
                h = block(h)
    assert list(got) == list(want)  # every 3x3 layer, in forward order: 13 for depth 14
    assert len(got) == 13
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-5)


def test_responses_accumulate_over_batches():
    """Two batches give the std over all their images, not the mean of per-batch stds."""
    mr.manual_seed(0)
    model = _randomised(models.cifar_resnet(8, in_channels=1), 3)
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, (8, 1, 8, 8)).astype(np.float32)
    # another distribution: the per-batch stds differ
    b = rng.normal(2, 3, (8, 1, 8, 8)).astype(np.float32)
    y = np.zeros(8, dtype=np.int64)
    both = responses.layer_responses(model, [(np.concatenate([a, b]),
                                              np.zeros(16, dtype=np.int64))])
    split = responses.layer_responses(model, [(a, y), (b, y)])
    np.testing.assert_allclose(list(split.values()), list(both.values()), rtol=1e-5)
    assert model.training is False


def test_resnet_responses_are_smaller_than_the_plain_twins(small_net):
    """Figure 7, first claim, on small trained nets (``small_nets.py``: 3 epochs of the digits
    recipe, seed 0): ResNet-56's largest response (the top of the sorted curve, Fig. 7 bottom) is
    well below plain-56's. A regression that makes the shortcuts useless makes the two nets alike
    and fails it.

    Largest std plain-56 / ResNet-56 on seeds 100-104: 1.479 / 1.069, 2.002 / 1.039, 2.058 /
    1.064, 1.567 / 1.206, 1.433 / 1.057 (seed 0: 1.581 / 1.098); the smallest gap 0.36. Not
    tested, because it fails in some of those seeds: the mean and the median (seed 103: mean
    1.032 / 1.080, median 1.092 / 1.052); depth 20 (max: seed 100 1.094 / 1.126, seed 104 1.056 /
    1.081; the mean and the median lead by as little as 0.002 and 0.014 on seeds 100-104 and
    trail on seed 0, 0.954 / 1.013 and 0.947 / 1.008); and the second claim, that the deeper
    ResNet's responses are smaller still (ResNet-56 / ResNet-20 mean: 1.036 / 1.046, 1.011 /
    0.993, 1.027 / 0.999, 1.080 / 1.013, 0.980 / 1.022; max: 1.069 / 1.126, 1.039 / 1.051, 1.064 /
    1.059, 1.206 / 1.040, 1.057 / 1.081). Even after 30 epochs the mean was 0.995 for ResNet-56
    against 0.998 for ResNet-20 on another CPU (results/responses.md has the reference run)."""
    loader = small_nets.digits_test_loader()
    top = {name: max(responses.layer_responses(small_net(name).model, loader).values())
           for name in ("plain56", "resnet56")}
    assert top["plain56"] > top["resnet56"] + 0.15, top


def _minires(*argv, cwd):
    env = {**os.environ, "MINIRES_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minires", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_responses_command_reuses_degradation_checkpoints(tmp_path):
    """--from DIR loads the nets a degradation run saved; the JSON holds one std per 3x3 layer."""
    train_set, test_set = data.load_digits()
    recipe = nets.Recipe(epochs=1, batch_size=32, lr=0.05, milestones=())
    for name in ("plain8", "resnet8"):
        trained = nets.train_one(name, train_set, test_set, recipe, seed=0, limit=64,
                                 out=str(tmp_path / "run"), progress=False)
        assert trained.model is not None
    proc = _minires("responses", "--from", str(tmp_path / "run"), "--depths", "8",
                    "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r" / "responses.json").read_text())
    assert set(result["std"]) == {"plain8", "resnet8"}
    assert all(len(v) == 7 for v in result["std"].values())
    assert (tmp_path / "r" / "responses.png").read_bytes()[:4] == b"\x89PNG"
    # the same numbers as measuring the loaded net directly
    model = nets.load_trained(tmp_path / "run", "resnet8", 0)
    direct = responses.layer_responses(model, data.DataLoader(test_set, 256))
    np.testing.assert_allclose(result["std"]["resnet8"], list(direct.values()), rtol=1e-6)


def test_responses_command_rejects_a_missing_run_in_one_line(tmp_path):
    proc = _minires("responses", "--from", str(tmp_path), "--out", str(tmp_path / "r"),
                    cwd=tmp_path)
    assert proc.returncode != 0 and "--from" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command, option", [("responses", "--from"),
                                             ("degradation", "--seeds")])
def test_help_lists_the_options(tmp_path, command, option):
    proc = _minires(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and option in proc.stdout and "--quick" in proc.stdout


def test_run_returns_the_report_it_wrote(tmp_path):
    """run(out, ...) trains the nets with the recipe it is given, saves them, and returns exactly
    the report it wrote to responses.json."""
    recipe = nets.Recipe(epochs=1, batch_size=32, lr=0.05, milestones=())
    report = responses.run(str(tmp_path), depths=[8], recipe=recipe, limit=48, progress=False,
                           log=lambda line: None)
    assert report == json.loads((tmp_path / "responses.json").read_text())
    assert report["train"] == recipe.as_dict() and report["test_images"] == 48
    assert (tmp_path / "plain8-seed0.npz").exists() and (tmp_path / "resnet8-seed0.npz").exists()
    assert "resnet8" in responses.table(report)
