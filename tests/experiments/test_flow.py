"""Gradient flow: the residual path keeps gradients alive where plain nets' explode or vanish.

The three claims of issue 6, measured on minires's own CIFAR nets (models.cifar_resnet with
option-A shortcuts, or shortcut=None for the plain twin) through ``minires.experiments.flow``
and the hooks of ``experiments.probes``. Each test's docstring gives its settings, so
``flow.measure`` / ``python -m minires flow`` re-runs it.
"""
import json

import numpy as np
import pytest

from minires import Tensor, models, nn
from minires import functional as F
from minires.experiments import flow, probes, surgery


def _geomean(values):
    return float(np.exp(np.mean(np.log(values))))


# -- claim 1: the identity shortcut passes the gradient through unchanged -------------------------

def _zero_branch_stack(shortcut, blocks=3, planes=8, seed=0):
    stack = nn.Sequential(*[models.BasicBlock(planes, planes, 1, shortcut=shortcut)
                            for _ in range(blocks)])
    stack.to(dtype=np.float64)
    for b in stack:
        nn.init.zeros_(b.last_bn().weight)
    return stack


def _input_and_output_grads(stack, seed=0):
    rng = np.random.default_rng(seed)
    # x > 0: the stack's input is what a ReLU produced, and with F(x) = 0 the ReLU after the sum
    # sees x + 0 > 0 and passes its gradient (at exactly 0 it would pass none, by convention).
    x = np.abs(rng.standard_normal((4, 8, 6, 6))) + 0.5
    upstream = rng.standard_normal(x.shape)
    with probes.OutputGradients({"output": stack}, reduce=None) as grads:
        inp = Tensor(x, requires_grad=True)
        grads.watch("input", inp)
        stack(inp).backward(upstream)
    return grads.grads["input"], grads.grads["output"], upstream


def test_identity_shortcut_passes_gradient_exactly():
    """Settings: three BasicBlocks (8 -> 8 planes, stride 1, identity shortcuts), float64, batch
    norm in training mode, each block's last BN weight (gamma) = 0; input x = |N(0,1)| + 0.5 of
    shape (4, 8, 6, 6) and upstream gradient dL/dx_3 ~ N(0,1), both from default_rng(0).
    Claim: F(x) = 0, so x_{l+1} = ReLU(x_l + F(x_l)) = x_l and dL/dx_0 = dL/dx_3 * (1 + dF/dx) with
    dF/dx = 0: the gradient w.r.t. the stack's input equals that w.r.t. its output, bit for bit."""
    g_in, g_out, upstream = _input_and_output_grads(_zero_branch_stack("A"))
    assert np.array_equal(g_out, upstream)
    assert np.array_equal(g_in, g_out)


def test_plain_stack_with_zero_branch_passes_no_gradient():
    """The same stack and input without shortcuts (the plain twin): with gamma = 0 no gradient at
    all reaches the input; the "+ x" in H(x) = F(x) + x is what carries it in the test above."""
    g_in, g_out, _ = _input_and_output_grads(_zero_branch_stack(None))
    assert np.abs(g_out).max() > 0
    assert not np.any(g_in)


# -- claim 2: with BN and He init, plain nets' gradients grow exponentially with depth -------------

def test_batch_norm_he_plain_ratio_grows_exponentially_residual_polynomially():
    """Settings: CIFAR plain-d / ResNet-d for d = 20 and 110, batch norm in training mode, He init
    N(0, 2/fan_out) on every conv, one batch of 16 random N(0,1) 3x32x32 images with random labels
    (10 classes), softmax cross-entropy, seeds 0, 1, 2 (weights and batch), float32.
    Measured: ratio = ||dL/dW|| of the first conv / of the last conv, geometric mean over seeds.
    Claim (a reference computation gave plain 1e1 -> 6e6, residual 5 -> 2e2 from 20 to 110 layers):
    plain's ratio grows more than 100x from depth 20 to 110, the residual twin's less than 100x.
    Re-run: python -m minires flow --depths 20 110 --seed S."""
    ratios = {}
    for depth in (20, 110):
        runs = [flow.measure([depth], seed=s, batch_size=16) for s in (0, 1, 2)]
        for residual in (False, True):
            ratios[depth, residual] = _geomean([r["weight_ratio"] for rs in runs for r in rs
                                                if r["residual"] == residual])
    plain_growth = ratios[110, False] / ratios[20, False]
    residual_growth = ratios[110, True] / ratios[20, True]
    assert plain_growth > 100, ratios
    assert residual_growth < 100, ratios


# -- claim 3: without BN and with Xavier init, plain nets' gradients vanish ------------------------

def test_no_batch_norm_xavier_plain_gradients_vanish_residual_do_not():
    """Settings: CIFAR plain-d / ResNet-d for d = 20 and 110 with every BatchNorm2d replaced by
    Identity (surgery.strip_batch_norm), Xavier init N(0, 2/(fan_in + fan_out)) on every conv, one
    batch of 16 random N(0,1) 3x32x32 images with random labels, seeds 0 and 1, float32.
    Measured: ||dL/dW|| of the first conv and ||dL/dx|| of the input image, the layers farthest from
    the loss. Claim: from depth 20 to 110 the plain net's fall by many (here: more than six) orders
    of magnitude, the residual net's do not fall by even one.
    Re-run: python -m minires flow --depths 20 110 --no-bn --init xavier --seed S."""
    for seed in (0, 1):
        runs = {(r["depth"], r["residual"]): r for r in
                flow.measure([20, 110], batch_norm=False, init="xavier", seed=seed, batch_size=16)}
        for residual in (False, True):
            shallow, deep = runs[20, residual], runs[110, residual]
            w = list(deep["weights"].values())[0] / list(shallow["weights"].values())[0]
            a = deep["activations"]["input"] / shallow["activations"]["input"]
            if residual:
                assert w > 0.1 and a > 0.1, (seed, w, a)
            else:
                assert w < 1e-6 and a < 1e-6, (seed, w, a)


# -- the recording machinery ---------------------------------------------------------------------

def _tiny_model(residual=True, seed=0):
    return flow.build_model(8, residual, seed=seed)  # 8 = 6*1 + 2: one block per stage


def test_record_gradients_matches_a_plain_backward():
    """The hook-based record equals norms of gradients from an ordinary backward without hooks."""
    model = _tiny_model()
    x, y = flow.random_batch(4, seed=3)
    rec = probes.record_gradients(model, x, y)

    inp = Tensor(x, requires_grad=True)
    loss = F.softmax_cross_entropy(model(inp), y)
    loss.backward()
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(rec["weights"]) == [f"{n}.weight" for n, _ in convs]
    np.testing.assert_allclose(list(rec["weights"].values()),
                               [np.linalg.norm(m.weight.grad) for _, m in convs], rtol=1e-5)
    assert list(rec["activations"]) == ["input", "layer1.0", "layer2.0", "layer3.0"]
    np.testing.assert_allclose(rec["activations"]["input"], np.linalg.norm(inp.grad), rtol=1e-5)
    assert rec["loss"] == pytest.approx(loss.item(), rel=1e-6)


def test_record_gradients_leaves_the_model_unchanged():
    """Measuring in train mode must not move BN running statistics, gradients or the mode."""
    model = _tiny_model().eval()
    before = model.state_dict()
    for p in model.parameters():
        p.grad = np.full(p.shape, 7.0, dtype=p.dtype)
    probes.record_gradients(model, *flow.random_batch(4))
    assert not any(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert all(np.all(p.grad == 7.0) for p in model.parameters())


def test_strip_batch_norm_replaces_every_bn_in_place():
    model = models.resnet18(num_classes=10)  # option B: BNs inside Sequential downsample paths too
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    names = [n for n, _ in model.named_modules()]
    surgery.strip_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.Identity) for m in model.modules()) == n_bn
    assert [n for n, _ in model.named_modules()] == names  # same names, same order
    assert isinstance(model.layer2[0].downsample[0], nn.Conv2d)


def test_bad_arguments_fail_early_and_name_the_argument():
    with pytest.raises(ValueError, match="init"):
        flow.build_model(20, True, init="kaiming")
    with pytest.raises(ValueError, match="depths"):
        flow.measure([21])
    with pytest.raises(ValueError, match="batch_size"):
        flow.random_batch(1)


def test_epoch_recorder_keeps_one_record_per_call():
    model = _tiny_model(residual=False)
    x, y = flow.random_batch(4, seed=1)
    recorder = probes.EpochRecorder(model, x, y)
    recorder(1)
    recorder(2)
    assert [r["epoch"] for r in recorder.records] == [1, 2]
    # same model, same batch
    assert recorder.records[0]["weights"] == recorder.records[1]["weights"]


def test_flow_command_writes_json_png_and_table(tmp_path, capsys):
    from minires.cli import main
    main(["flow", "--depths", "8", "14", "--batch-size", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "plain14" in out and "resnet8" in out
    data = json.loads((tmp_path / "flow.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["plain8", "resnet8", "plain14", "resnet14"]
    assert all(len(r["weights"]) == r["depth"] - 1 for r in data["runs"])  # every conv, not the fc
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as e:  # a usage error: exit code 2, one line naming the option
        main(["flow", "--depths", "21", "--out", str(tmp_path)])
    assert e.value.code == 2 and "--depths" in capsys.readouterr().err


def test_run_returns_the_report_it_wrote(tmp_path):
    """run(out, ...) writes flow.json and returns exactly that report, and logs its table."""
    lines = []
    report = flow.run(str(tmp_path), depths=[8], batch_size=4, log=lines.append)
    assert report == json.loads((tmp_path / "flow.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["plain8", "resnet8"]
    assert flow.table(report["runs"]) in lines
    assert str(tmp_path / "flow.png") in lines[-1]
