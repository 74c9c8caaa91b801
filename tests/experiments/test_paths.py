"""Gradient by path length (Veit et al. 2016, sec. 5; ``minires.experiments.paths``):
``paths.PathGate`` keeps the forward pass and lets the gradient through one half of each block.
Checked exactly on small float64 nets: the 2^n single-path gradients add up to the whole gradient,
and with zero residual functions all of it is the shortcut-only path."""
import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from minires import backend, models, nn
from minires.autograd import Tensor, no_grad
from minires.experiments import nets, paths, surgery


def _net(depth, seed=0, branch_scale=None):
    """A float64 CIFAR ResNet on 1x8x8 inputs with random BN affine parameters; ``branch_scale``
    sets every block's last BN weight (the size of each residual function)."""
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth, in_channels=1).to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape)
            m.bias.data = rng.uniform(-0.2, 0.2, m.bias.shape)
    if branch_scale is not None:
        for _, block in surgery.blocks(model):
            block.last_bn().weight.data[:] = branch_scale
    return model


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)), rng.integers(0, 10, n)


@pytest.mark.parametrize("through", paths.THROUGH)
def test_path_gate_keeps_the_forward_pass(through):
    model = _net(14)
    model.eval()
    x = Tensor(np.abs(np.random.default_rng(3).standard_normal((2, 16, 8, 8))))
    for _, block in surgery.blocks(model):
        with no_grad():
            expected = block(x).data
            np.testing.assert_array_equal(paths.PathGate(block, through)(x).data, expected)
        x = Tensor(expected)


def test_single_path_gradients_add_up_to_the_whole_gradient():
    """dL/dy_0 is linear in the upstream gradient once the forward has fixed the ReLU masks, and
    each block's backward is the branch's plus the shortcut's: so the sum over all 2^n choices
    of kept branches is the network's gradient, to round-off (ResNet-8: 3 blocks, two of them
    changing the shape, 8 paths)."""
    model = _net(8)
    x, labels = _batch()
    names = [n for n, _ in surgery.blocks(model)]
    full = paths.first_block_gradient(model, x, labels)
    total = sum(paths.first_block_gradient(model, x, labels, list(kept))
                for k in range(len(names) + 1) for kept in itertools.combinations(names, k))
    assert np.abs(full).max() > 1e-4
    np.testing.assert_allclose(total, full, rtol=0, atol=1e-10 * np.abs(full).max())
    # One path alone is not the whole gradient.
    one = paths.first_block_gradient(model, x, labels, names[:2])
    assert np.abs(one - full).max() > 1e-3 * np.abs(full).max()


def test_zero_branches_leave_only_the_shortcut_path():
    """With every residual function zero, the whole gradient is the k = 0 path (every block
    passes only its shortcut), and every path through a branch carries nothing."""
    model = _net(8)
    for _, block in surgery.blocks(model):
        block.last_bn().bias.data[:] = 0
    model_zero = _net(8, branch_scale=0.0)
    for _, block in surgery.blocks(model_zero):
        block.last_bn().bias.data[:] = 0
    x, labels = _batch()
    full = paths.first_block_gradient(model_zero, x, labels)
    shortcuts_only = paths.first_block_gradient(model_zero, x, labels, [])
    np.testing.assert_allclose(shortcuts_only, full, rtol=0, atol=1e-14)
    assert np.abs(full).max() > 1e-4
    for kept in (["layer1.0"], ["layer2.0", "layer3.0"]):
        assert np.abs(paths.first_block_gradient(model_zero, x, labels, kept)).max() < 1e-14
        # but not with branches on
        assert np.abs(paths.first_block_gradient(model, x, labels, kept)).max() > 1e-4


def test_first_block_gradient_leaves_the_model_as_it_was():
    model = _net(8)
    model.eval()
    before = model.state_dict()
    for p in model.parameters():
        p.grad = None
    x, labels = _batch()
    paths.first_block_gradient(model, x, labels, ["layer2.0"])
    after = model.state_dict()
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(np.array_equal(before[k], after[k]) for k in before)  # BN running statistics too
    assert all(isinstance(b, models.BasicBlock)
               for b in (model.layer1[0], model.layer2[0], model.layer3[0]))


def test_small_branches_make_the_effective_paths_short():
    """When each residual function is small (last BN weight 0.1), every branch on a path shrinks
    its gradient, so the gradient per path falls with k and the gradient comes from paths much
    shorter than the net's mean path length n/2; with large branches (weight 1.5) it does not."""
    x, labels = _batch(16)
    small = paths.measure(_net(14, branch_scale=0.1), x, labels, draws=1)
    per_path = np.array(small["per_path"])
    assert small["n"] == 6 and small["count"] == [math.comb(6, k) for k in range(7)]
    assert np.all(np.diff(per_path) < 0)
    s = paths.effective_paths(small)
    assert s["gradient_mean_length"] < 0.5 * s["path_mean_length"]
    large = paths.effective_paths(paths.measure(_net(14, branch_scale=1.5), x, labels, draws=1))
    assert large["gradient_mean_length"] > s["gradient_mean_length"] + 1


def test_effective_paths_on_a_constructed_distribution():
    """Total gradient 0.45 at k = 2 and k = 3, 0.05 at k = 0 and 5 (n = 5): the narrowest range
    with 90% is k = 2..3, which holds (C(5,2) + C(5,3)) / 32 = 20/32 of the paths."""
    result = {"n": 5, "k": list(range(6)), "total": [0.05, 0, 0.45, 0.45, 0, 0.05]}
    s = paths.effective_paths(result, share=0.9)
    assert s["range"] == [2, 3] and s["peak_k"] in (2, 3)
    assert s["fraction_of_paths"] == pytest.approx(20 / 32)
    assert s["gradient_mean_length"] == pytest.approx(0.45 * 2 + 0.45 * 3 + 0.05 * 5)
    with pytest.raises(ValueError, match="every path length"):
        paths.effective_paths({"n": 5, "k": [0, 1], "total": [1, 1]})


def test_paths_command_help_bad_option_and_quick_run(tmp_path):
    """--help, a one-line error for a bad --depth, and a --quick run whose JSON holds every path
    length 0..n at initialisation and after training, with C(n, k) paths of each."""
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "minires", "paths", *argv],
                              capture_output=True, text=True,
                              env={**os.environ, "MINIRES_NUM_THREADS": "1"})

    help_ = run("--help")
    assert help_.returncode == 0
    assert all(o in help_.stdout for o in ("--from", "--quick", "--draws", "--device"))
    bad = run("--depth", "15")
    assert bad.returncode != 0 and "--depth" in bad.stderr and "Traceback" not in bad.stderr
    done = run("--quick", "--no-progress", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "paths.json").read_text())
    assert (tmp_path / "paths.png").read_bytes()[:4] == b"\x89PNG"
    for label in ("init", "trained"):
        r = report["results"][label]
        assert r["k"] == list(range(r["n"] + 1))
        assert r["count"] == [math.comb(r["n"], k) for k in r["k"]]
        assert all(t == pytest.approx(c * g)
                   for t, c, g in zip(r["total"], r["count"], r["per_path"]))
    # the shared recipe, as --quick changes it (one epoch)
    assert report["settings"]["recipe"] == nets.RECIPES["digits"].replace(epochs=1).as_dict()
    assert "gradient_mean_length" in report["summary"]["trained"]


@pytest.mark.parametrize("block", [lambda: models.BasicBlock(16, 32, stride=2, shortcut="A"),
                                   lambda: models.BasicBlock(16, 16, shortcut="C"),
                                   lambda: models.Bottleneck(32, 16, stride=2, shortcut="B")])
def test_block_is_relu_of_residual_function_plus_shortcut(block):
    """The public halves of a block put back together give the block:
    y = ReLU(F(x) + shortcut(x))."""
    backend.manual_seed(1)
    b = block().to(dtype=np.float64)
    b.eval()
    x = Tensor(np.random.default_rng(4).standard_normal((2, b.conv1.in_channels, 8, 8)))
    with no_grad():
        halves = b.relu(b.residual_function(x) + b.shortcut(x)).data
        np.testing.assert_allclose(halves, b(x).data, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="no shortcut"):
        models.BasicBlock(16, 16, shortcut=None).shortcut(x)
