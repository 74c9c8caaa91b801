"""The lesion study (Veit et al. 2016, sec. 4): deleting blocks through ``lesion.Lesioned`` /
``lesion.lesioned``, checked on constructed nets whose answer is known, and the claim on small
nets trained briefly (``minires.experiments.lesion``)."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import small_nets
from minires import backend, data, models, nn
from minires.autograd import Tensor, no_grad
from minires.experiments import lesion, nets, surgery


def _net(depth, shortcut="A", seed=0):
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth, in_channels=1, shortcut=shortcut).to(dtype=np.float64)
    model.eval()
    # Non-trivial BN statistics and affine parameters, so a branch is far from zero unless zeroed.
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape)
            m.bias.data = rng.uniform(-0.2, 0.2, m.bias.shape)
    return model


def _images(n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8))


def _out(model, x):
    with no_grad():
        return model(Tensor(x)).data.copy()


def test_lesioned_block_is_its_shortcut_oracle():
    """A deleted ResNet block outputs x where the shape is kept, and the option-A shortcut
    (every 2nd pixel, zero channels appended; written out here) where it changes."""
    model = _net(14)
    blocks = dict(surgery.blocks(model))
    x = np.abs(np.random.default_rng(1).standard_normal((3, 16, 8, 8)))
    same = lesion.Lesioned(blocks["layer1.1"])(Tensor(x)).data
    np.testing.assert_array_equal(same, x)
    down = lesion.Lesioned(blocks["layer2.0"])(Tensor(x)).data
    expected = np.zeros((3, 32, 4, 4))
    for n, c, i, j in itertools.product(range(3), range(16), range(4), range(4)):
        expected[n, c, i, j] = x[n, c, 2 * i, 2 * j]
    np.testing.assert_array_equal(down, expected)


def test_zero_branches_are_unchanged_by_any_lesion():
    """With every residual function zero (last BN weight and bias 0), y = ReLU(0 + shortcut(x)) =
    shortcut(x): deleting any set of blocks leaves the output exactly as it was. With the
    branches left on, a single lesion does change it (so the comparison can fail)."""
    model = _net(14)
    x = _images()
    names = [n for n, _ in surgery.blocks(model)]
    before = _out(model, x)
    with lesion.lesioned(model, ["layer1.1"]):
        assert np.abs(_out(model, x) - before).max() > 1e-3
    for _, block in surgery.blocks(model):
        block.last_bn().weight.data[:] = 0
        block.last_bn().bias.data[:] = 0
    intact = _out(model, x)
    for k in range(1, len(names) + 1):
        for chosen in itertools.combinations(names, k):
            with lesion.lesioned(model, chosen):
                np.testing.assert_allclose(_out(model, x), intact, rtol=0, atol=1e-12)


def test_plain_lesion_is_the_identity_and_only_where_the_shape_is_kept():
    model = _net(14, shortcut=None)
    blocks = dict(surgery.blocks(model))
    assert lesion.deletable(model) == ["layer1.0", "layer1.1", "layer2.1", "layer3.1"]
    x = _images(2)
    y = Tensor(np.random.default_rng(2).standard_normal((2, 16, 8, 8)))
    assert lesion.Lesioned(blocks["layer1.1"])(y) is y
    with pytest.raises(ValueError, match="changes the shape"):
        lesion.Lesioned(blocks["layer2.0"])
    # In a plain net a lesion changes the function (there is no other path).
    before = _out(model, x)
    with lesion.lesioned(model, ["layer2.1"]):
        assert np.abs(_out(model, x) - before).max() > 1e-3


def test_lesioned_puts_the_blocks_back():
    """After the with block (also when it raises) the model is the same object graph as before."""
    model = _net(8)
    x = _images(2)
    before, modules = _out(model, x), [id(m) for m in model.modules()]
    with pytest.raises(RuntimeError):
        with lesion.lesioned(model, ["layer1.0", "layer3.0"]):
            assert isinstance(model.layer3[0], lesion.Lesioned)
            raise RuntimeError("inside")
    assert [id(m) for m in model.modules()] == modules
    np.testing.assert_array_equal(_out(model, x), before)
    with pytest.raises(ValueError, match="no block named"):
        with lesion.lesioned(model, ["layer9.0"]):
            pass


def test_random_lesions_draw_distinct_blocks_and_are_seeded(monkeypatch):
    model = _net(14).to(dtype=np.float32)
    loader = data.DataLoader(data.load_digits()[1].subset(np.arange(32)), 32)
    seen = []
    real = lesion.error_without

    def spy(model, loader, deleted=(), device="cpu"):
        seen.append(list(deleted))
        return real(model, loader, deleted, device)

    monkeypatch.setattr(lesion, "error_without", spy)
    a = lesion.random_lesions(model, loader, ks=[1, 2, 4], draws=3, seed=5)
    first = list(seen)
    seen.clear()
    b = lesion.random_lesions(model, loader, ks=[1, 2, 4], draws=3, seed=5)
    assert a == b and seen == first
    assert [len(d) for d in first] == [1] * 3 + [2] * 3 + [4] * 3
    assert all(len(set(d)) == len(d) and set(d) <= set(lesion.deletable(model)) for d in first)
    assert len({tuple(d) for d in first[3:6]}) > 1  # the draws differ
    with pytest.raises(ValueError, match="k must be in 1..4"):
        lesion.random_lesions(model, loader, ks=[5], draws=1)


def test_a_late_block_costs_a_resnet_little_and_any_block_breaks_its_plain_twin(small_net):
    """Veit's lesion claim on small trained nets (``small_nets.py``: 3 epochs of the digits
    recipe, seed 0), depth 20. ResNet-20: deleting either shape-preserving block of the last stage
    raises the test error by a few points at most. Plain-20: deleting any one shape-preserving
    block sends it toward chance (90%). Not *any* block of the ResNet: as in the full run
    (results/lesion.md), its first blocks after the stem matter, so the test claims the last
    stage only.

    Seeds 100-104, test error (%) intact, and the rise (points) when each of layer1.0, 1.1, 1.2,
    2.1, 2.2, 3.1, 3.2 is deleted. ResNet-20: 6.1 (+63, +36, +10, +6.1, +1.9, +1.9, +1.7); 6.1
    (+67, +29, +15, +3.9, +2.8, +1.9, +2.2); 6.1 (+44, +42, +14, +6.4, +1.4, +1.1, -0.6); 4.7 (+71,
    +38, +25, +12.5, +3.6, +0.8, +3.9); 5.0 (+71, +48, +28, +6.4, +3.9, +0.0, +2.2); seed 0: 5.8
    (+76, +69, +35, +8.9, +3.9, +1.4, +1.7). Plain-20 (degraded at 3 epochs), intact and the
    lowest error after one deletion: 44.0 and 76.3, 37.6 and 83.8, 60.7 and 76.3, 68.0 and 81.6,
    53.2 and 79.1; seed 0: 40.7 and 85.5."""
    loader = small_nets.digits_test_loader()
    resnet, plain = small_net("resnet20").model, small_net("plain20").model
    intact = lesion.error_without(resnet, loader)
    assert intact < 0.15
    last_stage = [name for name in lesion.deletable(resnet) if name.startswith("layer3.")]
    assert last_stage == ["layer3.1", "layer3.2"]
    for name in last_stage:
        assert lesion.error_without(resnet, loader, [name]) <= intact + 0.08, name
    lesioned = lesion.single_lesions(plain, loader)
    assert list(lesioned) == lesion.deletable(plain) and len(lesioned) == 7
    for name, error in lesioned.items():
        assert error >= 0.65, (name, error)


def _command(*argv):
    return subprocess.run([sys.executable, "-m", "minires", *argv], capture_output=True, text=True,
                          env={**os.environ, "MINIRES_NUM_THREADS": "1"})


def test_lesion_command_help_bad_option_and_quick_run(tmp_path):
    """--help lists the options; a bad --draws is one line naming it (no traceback); --quick writes
    the figure, a JSON whose numbers are error rates, and the trained nets, which --from reuses."""
    help_ = _command("lesion", "--help")
    assert help_.returncode == 0
    assert all(o in help_.stdout for o in ("--from", "--quick", "--out", "--seed", "--device"))
    bad = _command("lesion", "--draws", "0", "--out", str(tmp_path / "bad"))
    assert bad.returncode != 0 and "--draws" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
    missing = _command("lesion", "--from", str(tmp_path), "--out", str(tmp_path / "bad"))
    assert missing.returncode != 0 and "--from" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    out = tmp_path / "run"
    run = _command("lesion", "--quick", "--no-progress", "--out", str(out))
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "lesion.json").read_text())
    assert (out / "lesion.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("resnet14", "plain14"):
        r = report["nets"][name]
        assert 0 <= r["intact"] <= 1 and all(0 <= e <= 1 for e in r["single"].values())
        can_go = r["all_blocks"] if name.startswith("resnet") else r["deletable"]
        assert set(r["single"]) == set(can_go)
        assert (out / f"{name}-seed0.npz").exists()
    # the shared recipe, as --quick changes it (one epoch)
    assert report["settings"]["recipe"] == nets.RECIPES["digits"].replace(epochs=1).as_dict()
    again = _command("lesion", "--quick", "--no-progress", "--from", str(out),
                     "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    reloaded = json.loads((tmp_path / "again" / "lesion.json").read_text())
    assert reloaded["nets"]["resnet14"]["single"] == report["nets"]["resnet14"]["single"]
