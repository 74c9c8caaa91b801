"""Shortcut and activation variants ("Identity Mappings", Fig. 2 and Fig. 4): each unit's formula
on constructed cases, gradients, and a tiny training run of the experiment."""
import json
import os

import numpy as np
import pytest

import minires as mr
from minires import data, models, nn
from minires.experiments import identity


def _x(shape=(4, 3, 4, 4), seed=0, requires_grad=False):
    values = np.random.default_rng(seed).standard_normal(shape)
    return mr.Tensor(values, requires_grad=requires_grad)


def _silence_branch(block):
    """Make F(x) = 0 in an original-style unit: its last BN outputs 0 * xhat + 0."""
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)


def _bn_train(v):
    """Batch norm in train mode with weight 1, bias 0, by hand: per channel over (N, H, W)."""
    mean, var = v.mean(axis=(0, 2, 3), keepdims=True), v.var(axis=(0, 2, 3), keepdims=True)
    return (v - mean) / np.sqrt(var + 1e-5)


relu = lambda v: np.maximum(v, 0)


def test_constant_scaling_scales_the_shortcut():
    block = identity.ScaledShortcutBlock(3, 3, shortcut_scale=0.5).double()
    _silence_branch(block)
    x = _x()
    with mr.no_grad():
        np.testing.assert_array_equal(block(x).data, relu(0.5 * x.data))


@pytest.mark.parametrize("cls", [identity.ExclusiveGatingBlock, identity.ShortcutGatingBlock])
def test_gates_are_a_sigmoid_of_a_1x1_conv_with_bias_b_g(cls):
    mr.manual_seed(0)
    block = cls(3, 3, gate_bias=-1.5).double()
    x = _x(seed=1)
    w = block.gate.weight.data[:, :, 0, 0]
    g = 1 / (1 + np.exp(-(np.einsum("oc,nchw->nohw", w, x.data) - 1.5)))
    with mr.no_grad():
        np.testing.assert_allclose(block.g(x).data, g, rtol=1e-12)
        f = block.branch(x).data
        expected = (relu(g * f + (1 - g) * x.data) if cls is identity.ExclusiveGatingBlock
                    else relu(f + (1 - g) * x.data))
        np.testing.assert_allclose(block(x).data, expected, rtol=1e-12, atol=1e-12)


def test_a_closed_shortcut_gate_is_the_original_unit():
    # b_g -> -inf: 1 - g = 1, so shortcut-only gating is the original unit with the same weights.
    mr.manual_seed(1)
    block = identity.ShortcutGatingBlock(3, 3, gate_bias=-200.0).double()
    original = models.BasicBlock(3, 3, shortcut="A").double()
    original.load_state_dict({k: v for k, v in block.state_dict().items()
                              if not k.startswith("gate.")})
    x = _x(seed=2)
    with mr.no_grad():
        np.testing.assert_allclose(block(x).data, original(x).data, rtol=1e-12)


def test_dropout_shortcut_drops_half_and_keeps_the_expectation_in_eval():
    mr.manual_seed(2)
    block = identity.DropoutShortcutBlock(3, 3, p=0.5).double()
    _silence_branch(block)
    x = mr.Tensor(np.abs(_x((8, 3, 8, 8), seed=3).data) + 0.1)
    with mr.no_grad():
        y = block(x).data
        kept = y != 0
        np.testing.assert_array_equal(y[kept], x.data[kept])  # no 1/(1-p) rescaling
        assert 0.4 < kept.mean() < 0.6
        np.testing.assert_array_equal(block.eval()(x).data, 0.5 * x.data)


def test_bn_after_addition_normalises_the_sum():
    block = identity.BNAfterAdditionBlock(3, 3).double()
    nn.init.zeros_(block.conv2.weight)  # the sum is then x itself
    x = _x(seed=4)
    with mr.no_grad():
        np.testing.assert_allclose(block(x).data, relu(_bn_train(x.data)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [identity.ReLUBeforeAdditionBlock, identity.ReLUOnlyPreActBlock,
                                 models.PreActBlock])
def test_units_with_nothing_after_the_addition_are_the_identity_when_f_is_zero(cls):
    block = cls(3, 3).double()
    if cls is models.PreActBlock:
        nn.init.zeros_(block.conv2.weight)
    else:
        _silence_branch(block)
    x = _x(seed=5)  # negative entries survive: no ReLU after the addition
    with mr.no_grad():
        np.testing.assert_array_equal(block(x).data, x.data)


def test_relu_before_addition_can_only_add():
    mr.manual_seed(3)
    block = identity.ReLUBeforeAdditionBlock(3, 3).double()
    x = _x(seed=6)
    with mr.no_grad():
        assert (block(x).data - x.data >= 0).all()


@pytest.mark.parametrize("variant", ["exclusive_gating", "shortcut_gating_0", "scaling",
                                     "bn_after_addition", "relu_only_preact"])
def test_variant_units_gradcheck(variant):
    mr.manual_seed(4)
    make = identity.VARIANTS[variant][4]
    block = make(2, 2, 1, "A").double()
    x = _x((2, 2, 3, 3), seed=7, requires_grad=True)
    assert mr.gradcheck(lambda x, *p: block(x), x, *block.parameters(), atol=1e-5, rtol=1e-3)


def test_every_variant_builds_a_cifar_layout_net():
    for name in identity.VARIANTS:
        mr.manual_seed(0)
        model = identity.build(name, depth=8, widths=(2, 4, 8), num_classes=5, in_channels=1)
        with mr.no_grad():
            assert model(_x((2, 1, 8, 8)).float()).shape == (2, 5), name
    assert isinstance(identity.build("full_preact", 8), models.PreActResNet)
    assert isinstance(identity.build("conv_shortcut", 8).layer1[0].downsample, nn.Sequential)
    with pytest.raises(ValueError, match="variant"):
        identity.build("highway", 8)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        identity.build("original", 9)


def test_run_writes_table_curves_and_json(tmp_path):
    train_set, test_set = data.load_digits()
    one_epoch = identity.RECIPE.replace(epochs=1, batch_size=32)
    tiny = dict(depth=8, widths=(2, 4, 8), recipe=one_epoch, limit=64, train_set=train_set,
                test_set=test_set, progress=False, log=lambda msg: None)
    doc = identity.run(str(tmp_path), variants=("original", "full_preact"), **tiny)
    assert [r["variant"] for r in doc["table"]] == ["original", "full_preact"]
    assert doc["table"][1]["paper_test_error"] == "6.37"
    for name in ("identity_loss.png", "identity.json", "identity.csv"):
        assert os.path.getsize(tmp_path / name) > 0
    saved = json.loads((tmp_path / "identity.json").read_text())
    assert saved == doc  # run returns the report it wrote
    assert len(saved["runs"]["original"][0]["history"]) == 1
    # the settings in identity.json's words: the recipe less its warm-up, and the net and data
    assert list(saved["settings"]) == ["data", "depth", "widths", "epochs", "batch_size", "lr",
                                       "momentum", "weight_decay", "milestones", "augment",
                                       "limit", "seeds", "device", "seconds", "paper"]
    # the same seed gives the same numbers
    again = identity.run(str(tmp_path / "again"), variants=("original",), **tiny)
    final_loss = lambda d: d["runs"]["original"][0]["history"][-1]["train_loss"]
    assert final_loss(again) == final_loss(doc)
    # merge: one table from runs of one recipe; the same (variant, seed) twice is refused
    quiet = lambda msg: None
    with pytest.raises(ValueError, match="twice"):
        identity.merge([str(tmp_path), str(tmp_path / "again")], str(tmp_path / "merged"),
                       log=quiet)
    other = identity.run(str(tmp_path / "seed1"), variants=("original",), seeds=(1,), **tiny)
    merged = identity.merge([str(tmp_path), str(tmp_path / "seed1")], str(tmp_path / "merged"),
                            log=quiet)
    row = merged["table"][0]
    assert row["variant"] == "original" and row["seeds"] == [0, 1]
    expected = np.mean([doc["runs"]["original"][0]["history"][-1]["train_error"],
                        other["runs"]["original"][0]["history"][-1]["train_error"]])
    assert row["train_error"] == pytest.approx(expected)
    assert [r["variant"] for r in merged["table"]] == ["original", "full_preact"]
    # ... and runs of another recipe are refused, naming what differs
    longer = identity.run(str(tmp_path / "longer"), variants=("original",), seeds=(2,),
                          **{**tiny, "recipe": one_epoch.replace(lr=0.05)})
    assert longer["settings"]["lr"] == 0.05
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        identity.merge([str(tmp_path), str(tmp_path / "longer")], str(tmp_path / "merged2"),
                       log=quiet)


def test_a_diverging_variant_keeps_the_epochs_before_it():
    # lr 1e6 sends the loss to NaN/inf within the first epoch: the paper's "fail".
    train_set, test_set = data.load_digits()
    history, diverged = identity.train_variant(
        "original", train_set, test_set, identity.RECIPE.replace(epochs=2, batch_size=32, lr=1e6),
        depth=8, widths=(2, 4, 8), limit=64, progress=False)
    assert diverged == 1 and history == []


# -- the command ----------------------------------------------------------------------------------

def _cli(*argv):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "minires", "identity", *argv],
                          capture_output=True, text=True,
                          env={**os.environ, "MINIRES_NUM_THREADS": "1",
                               "OPENBLAS_NUM_THREADS": "1"})


def test_identity_command_help_errors_and_a_tiny_run(tmp_path):
    r = _cli("--help")
    assert r.returncode == 0 and "--variants" in r.stdout and "--quick" in r.stdout
    r = _cli("--batch-size", "1")
    assert r.returncode != 0 and "--batch-size" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--variants", "original", "--depth", "8", "--widths", "2", "4", "8", "--epochs", "1",
             "--limit", "32", "--no-progress", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "original (identity)" in r.stdout and (tmp_path / "identity.json").exists()


@pytest.mark.parametrize("content, wanted", [
    ('{"settings": {"epochs": 3', "is not a readable JSON file"),
    (b"\xff\xfe not text", "is not a readable JSON file"),
    ("[1, 2, 3]", "top level is not an object (it is a list)"),
    ('{"runs": {}}', '"settings" is not an object'),
    ('{"settings": 5, "runs": {}}', '"settings" is not an object'),
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
])
def test_merge_refuses_a_file_that_is_not_an_identity_json_naming_it(tmp_path, content, wanted):
    from minires.cli import main
    path = tmp_path / "run" / "identity.json"
    path.parent.mkdir()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SystemExit) as e:
        main(["identity", "--merge", str(tmp_path / "run"), "--out", str(tmp_path / "merged")])
    message = e.value.code
    assert isinstance(message, str) and "\n" not in message, message
    assert message.startswith(f"--merge: merge: {path}") and wanted in message, message
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_settings_or_runs_of_the_wrong_shape(tmp_path):
    from minires.cli import main
    good = {"settings": {**identity.recipe_settings(identity.RECIPE, data="digits", depth=8,
                                                    widths=(2, 4, 8), limit=32),
                         "device": "cpu", "seconds": 1.0}, "runs": {}}
    for change, wanted in ((lambda d: d["settings"].pop("device"), "does not record 'device'"),
                           (lambda d: d["settings"].update(milestones=5), "are not a run's"),
                           (lambda d: d.update(runs=[]), '"runs" is not an object'),
                           (lambda d: d["runs"].update(original=[{"seed": 0}]),
                            '"runs"."original"[0] is not a run')):
        doc = json.loads(json.dumps(good))
        change(doc)
        (tmp_path / "run").mkdir(exist_ok=True)
        (tmp_path / "run" / "identity.json").write_text(json.dumps(doc))
        with pytest.raises(SystemExit) as e:
            main(["identity", "--merge", str(tmp_path / "run"), "--out", str(tmp_path / "m")])
        assert isinstance(e.value.code, str) and wanted in e.value.code, e.value.code
        assert "\n" not in e.value.code
