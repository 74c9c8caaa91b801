"""ResNets without normalisation (``models.resnet56(norm=None, init="skipinit" | "fixup")``):
parameter counts and initialisation against the papers' definitions, forwards against oracles
written from the formulas, gradients in float64, and the default nets left exactly as they were."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires import functional as F
from minires import models, nn
from minires.autograd import Tensor, no_grad
from minires.models import normfree
from minires.models.resnet import build

ROOT = Path(__file__).resolve().parents[2]


def images(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def out(model, x):
    with no_grad():
        return model(Tensor(x)).data


# -- the default nets are unchanged ----------------------------------------------------------------

# Every case: (builder, seed, keyword arguments). The digests are of the state dict (names and
# bytes) that the code before ``norm`` and ``init`` existed gave (the 20 first hex digits of a
# SHA-256): seeded NumPy draws are the same on every machine, so these hold everywhere.
DIGEST_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import minires as mr
from minires import models

NARROW = {"widths": (8, 16, 32, 64)}  # the ImageNet layouts, narrower: quicker to draw
CASES = [("resnet20", 0, {}), ("resnet20", 7, {"in_channels": 1}), ("plain20", 0, {}),
         ("resnet56", 1, {"in_channels": 1}), ("resnet18", 0, NARROW), ("resnet50", 0, NARROW),
         ("plain34", 2, NARROW), ("resnet20", 0, {"shortcut": "B"}), ("preact_resnet20", 0, {})]
forward = "--forward" in sys.argv

def digest(name, seed, kw):
    mr.manual_seed(seed)
    model = models.get_model(name, **kw)
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    if forward:  # the outputs too: the same bits on the same machine
        x = np.random.default_rng(seed).standard_normal((2, kw.get("in_channels", 3), 16, 16))
        h.update(np.ascontiguousarray(model(mr.Tensor(x.astype(np.float32))).data).tobytes())
    return h.hexdigest()[:20]

print(json.dumps({f"{n}/{s}/{sorted(kw.items())}": digest(n, s, kw) for n, s, kw in CASES}))
"""
ORIGINAL = {
    "resnet20/0/[]": "91974f70c73091af381f",
    "resnet20/7/[('in_channels', 1)]": "8410889a77c65ddfdde0",
    "plain20/0/[]": "91974f70c73091af381f",
    "resnet56/1/[('in_channels', 1)]": "31152b6a3cfe6f6901e4",
    "resnet18/0/[('widths', (8, 16, 32, 64))]": "bf2ff24af53a122db202",
    "resnet50/0/[('widths', (8, 16, 32, 64))]": "b0388799c12a67caccb7",
    "plain34/2/[('widths', (8, 16, 32, 64))]": "d17c8d6183461c2a3a8d",
    "resnet20/0/[('shortcut', 'B')]": "f10925745431ca7a54ba",
    "preact_resnet20/0/[]": "acc4e103f43b8a1b1d56",
}


def _digests(tree, cwd, *flags):
    """The digests of DIGEST_SCRIPT with minires imported from ``tree``, run in ``cwd`` (so that
    the working directory does not put another minires first)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "MINIRES_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT, *flags], capture_output=True,
                          text=True, env=env, cwd=cwd, check=True)
    return json.loads(done.stdout)


def test_default_nets_draw_the_same_weights_as_before(tmp_path):
    """The default nets (norm="batch", init="he") draw the same random numbers in the same order
    as before the options existed: the same state dict, bit for bit."""
    assert _digests(ROOT, tmp_path) == ORIGINAL


BASELINE = os.environ.get("MINIRES_BASELINE", "/tmp/basewt")


@pytest.mark.skipif(not (Path(BASELINE) / "minires").is_dir(),
                    reason=f"no checkout of the code before the options at {BASELINE} (set "
                           "MINIRES_BASELINE to one)")
def test_default_nets_are_the_baseline_checkout_bit_for_bit(tmp_path):
    """Against a checkout of the earlier code on this machine: the same state dicts and the same
    outputs of a forward pass, bit for bit."""
    assert _digests(ROOT, tmp_path, "--forward") == _digests(BASELINE, tmp_path, "--forward")


# -- parameter counts: closed forms ----------------------------------------------------------------


def cifar_params(n, in_channels=3, classes=10, norm=True, skipinit=False, fixup=False):
    """The CIFAR ResNet of 6n + 2 layers, option A, counted from the layout (sec. 4.2): 3x3 convs
    without bias, stages of 16/32/64 planes, fc; BN: 2 parameters per channel after every conv;
    SkipInit: one alpha per block (3n); Fixup: per block 4 biases and a multiplier, and the
    stem's and classifier's biases (5 * 3n + 2)."""
    convs = 9 * (in_channels * 16 + 2 * n * 16 * 16 + 16 * 32 + (2 * n - 1) * 32 * 32
                 + 32 * 64 + (2 * n - 1) * 64 * 64)
    bn = 2 * (16 + 2 * n * (16 + 32 + 64)) if norm else 0
    return (convs + 64 * classes + classes + bn + (3 * n if skipinit else 0)
            + (5 * 3 * n + 2 if fixup else 0))


def count(model):
    return sum(p.size for p in model.parameters())


@pytest.mark.parametrize("depth", [8, 20, 56, 110])
def test_cifar_parameter_counts_match_the_closed_forms(depth):
    n = (depth - 2) // 6
    assert count(models.cifar_resnet(depth)) == cifar_params(n)
    assert count(models.cifar_resnet(depth, norm=None)) == cifar_params(n, norm=False)
    assert count(models.cifar_resnet(depth, init="skipinit")) == cifar_params(
        n, norm=False, skipinit=True)
    assert count(models.cifar_resnet(depth, norm="batch", init="skipinit")) == cifar_params(
        n, skipinit=True)
    assert count(models.cifar_resnet(depth, norm=None, init="fixup")) == cifar_params(
        n, norm=False, fixup=True)
    assert count(models.cifar_resnet(depth, in_channels=1, init="fixup")) == cifar_params(
        n, in_channels=1, norm=False, fixup=True)


def test_resnet56_counts_and_table_6():
    """Table 6's 0.85M for ResNet-56 (with BN), and the nets without it."""
    assert count(models.resnet56()) == 853_018
    assert count(models.resnet56(norm=None)) == 853_018 - 4_064  # 2 * (16 + 18 * 112) BN params
    assert count(models.resnet56(init="skipinit")) == 853_018 - 4_064 + 27
    assert count(models.resnet56(norm=None, init="fixup")) == 853_018 - 4_064 + 137


@pytest.mark.parametrize("name, widths, blocks, scalars", [  # narrower than the paper's: quicker
    ("resnet18", (8, 16, 32, 64), 8, 5),
    ("resnet50", (8, 16, 32, 64), 16, 7),
])
def test_imagenet_fixup_counts_are_the_bn_free_net_plus_the_scalars(name, widths, blocks,
                                                                     scalars):
    """Fixup's ImageNet nets (projection shortcuts, Bottlenecks for ResNet-50): the BN-free net
    (its BNs counted out of the paper's net, 2 per channel) plus the scalars, 5 per BasicBlock
    (4 biases, 1 multiplier) or 7 per Bottleneck (6 biases, 1 multiplier), and 2 in the net."""
    bn_net = models.get_model(name, widths=widths)
    bn = sum(2 * m.num_features for m in bn_net.modules() if isinstance(m, nn.BatchNorm2d))
    assert count(models.get_model(name, widths=widths, norm=None)) == count(bn_net) - bn
    fixup = models.get_model(name, widths=widths, init="fixup")
    assert count(fixup) == count(bn_net) - bn + scalars * blocks + 2


# -- norm=None ------------------------------------------------------------------------------------


def test_norm_none_is_the_same_net_with_identities_where_the_bns_were():
    mr.manual_seed(3)
    bn_net = models.resnet20(shortcut="B")
    mr.manual_seed(3)
    plain = models.resnet20(shortcut="B", norm=None)
    assert not [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]
    assert isinstance(plain.bn1, nn.Identity) and isinstance(plain.layer2[0].downsample[1],
                                                             nn.Identity)
    kept = {k: v for k, v in bn_net.state_dict().items() if ".bn" not in f".{k}"
            and "downsample.1" not in k}
    got = plain.state_dict()
    assert list(got) == list(kept)  # the same names, in the same order: no BN entries
    for k in got:
        np.testing.assert_array_equal(got[k], kept[k])  # the same draws


def test_norm_none_forward_is_convs_relus_and_shortcuts():
    """Oracle: the CIFAR net with norm=None written out with functional ops, block by block."""
    mr.manual_seed(4)
    model = models.cifar_resnet(14, in_channels=1, norm=None).double()
    x = images((3, 1, 8, 8))

    def conv(m, a):
        return F.conv2d(Tensor(a), m.weight, None, m.stride, m.padding).data

    a = np.maximum(conv(model.conv1, x), 0)
    for stage in model.stages():
        for b in stage:
            branch = conv(b.conv2, np.maximum(conv(b.conv1, a), 0))
            short = a
            if b.stride != 1 or a.shape[1] != branch.shape[1]:
                short = np.zeros_like(branch)
                short[:, : a.shape[1]] = a[:, :, ::2, ::2]  # option A: subsample, zero channels
            a = np.maximum(branch + short, 0)
    logits = a.mean(axis=(2, 3)) @ model.fc.weight.data.T + model.fc.bias.data
    np.testing.assert_allclose(out(model, x), logits, rtol=1e-10, atol=1e-12)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="norm must be one of"):
        models.resnet20(norm="layer")
    with pytest.raises(ValueError, match="init must be one of"):
        models.resnet20(init="xavier")
    with pytest.raises(ValueError, match="norm=None"):
        models.resnet20(norm="batch", init="fixup")
    with pytest.raises(ValueError, match="plain net"):
        models.plain20(init="skipinit")
    with pytest.raises(ValueError, match="plain net"):
        models.plain20(init="fixup")
    with pytest.raises(ValueError, match="zero_init_residual"):
        models.resnet20(norm=None, zero_init_residual=True)
    with pytest.raises(ValueError, match="zero_init_residual"):
        models.resnet20(init="fixup", zero_init_residual=True)


# -- SkipInit (De and Smith 2020) ------------------------------------------------------------------


def test_skipinit_alpha_starts_at_zero_on_every_branch_and_only_there():
    model = models.resnet20(init="skipinit")
    blocks = [m for m in model.modules() if isinstance(m, models.BasicBlock)]
    assert len(blocks) == 9 and all(isinstance(b, normfree.SkipInitBasicBlock) for b in blocks)
    assert all(b.alpha.shape == (1,) and b.alpha.data[0] == 0 for b in blocks)
    assert [k for k in model.state_dict() if k.endswith("alpha")] == [
        f"layer{s}.{i}.alpha" for s in (1, 2, 3) for i in range(3)]
    assert not [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_skipinit_at_init_is_the_stem_and_the_shortcuts_alone():
    """With alpha = 0 every block outputs ReLU(shortcut(x)) = shortcut(x) (x >= 0 after a ReLU):
    the net is the stem, the option-A shortcuts (subsample, zero channels) and the classifier."""
    mr.manual_seed(5)
    model = models.cifar_resnet(20, in_channels=1, init="skipinit").double()
    x = images((4, 1, 8, 8), seed=1)
    a = np.maximum(F.conv2d(Tensor(x), model.conv1.weight, None, 1, 1).data, 0)
    for width in (32, 64):
        down = np.zeros((a.shape[0], width) + tuple(s // 2 for s in a.shape[2:]))
        down[:, : a.shape[1]] = a[:, :, ::2, ::2]
        a = down
    logits = a.mean(axis=(2, 3)) @ model.fc.weight.data.T + model.fc.bias.data
    np.testing.assert_allclose(out(model, x), logits, rtol=1e-12, atol=1e-12)


def test_skipinit_with_alpha_one_is_the_net_without_normalisation():
    """SkipInit is the BN-free net with a scalar on each branch: the same seed draws the same
    convs, so with every alpha set to 1 the two nets agree exactly."""
    mr.manual_seed(6)
    skip = models.cifar_resnet(14, in_channels=1, init="skipinit").double()
    mr.manual_seed(6)
    bare = models.cifar_resnet(14, in_channels=1, norm=None).double()
    x = images((3, 1, 8, 8), seed=2)
    assert np.abs(out(skip, x) - out(bare, x)).max() > 1e-3  # alpha = 0 changes the function
    for m in skip.modules():
        if isinstance(m, normfree.SkipInit):
            m.alpha.data[:] = 1
    np.testing.assert_array_equal(out(skip, x), out(bare, x))


def test_skipinit_at_init_only_alpha_and_the_classifier_get_gradients():
    """dL/dW of a branch carries a factor alpha = 0: at the first step only the alphas, the stem
    and the classifier move."""
    mr.manual_seed(7)
    model = models.cifar_resnet(14, in_channels=1, init="skipinit").double()
    loss = F.softmax_cross_entropy(model(Tensor(images((4, 1, 8, 8)))), np.array([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        branch = ".conv" in name
        assert (np.abs(p.grad).max() == 0) == branch, name


# -- Fixup (Zhang, Dauphin and Ma 2019) ------------------------------------------------------------


@pytest.mark.parametrize("depth", [14, 56])
def test_fixup_initialisation_follows_rules_1_to_3(depth):
    """Rule 1: the last conv of every branch and the classifier at 0. Rule 2: the first conv is
    the He draw of the same seed (the BN-free net's) times L^(-1/(2m - 2)) = L^-1/2, L = 3n
    branches of m = 2 layers. Rule 3: biases at 0, multipliers at 1, shape (1,)."""
    mr.manual_seed(8)
    fixup = models.cifar_resnet(depth, init="fixup")
    mr.manual_seed(8)
    he = models.cifar_resnet(depth, norm=None)
    L = 3 * (depth - 2) // 6
    assert fixup.num_branches == L
    blocks = [(f, h) for f, h in zip(fixup.modules(), he.modules())
              if isinstance(f, models.BasicBlock)]
    assert len(blocks) == L
    for f, h in blocks:
        assert isinstance(f, normfree.FixupBasicBlock)
        np.testing.assert_allclose(f.conv1.weight.data, h.conv1.weight.data * L ** -0.5,
                                   rtol=1e-6, atol=0)
        assert not f.conv2.weight.data.any()
        for name in ("bias1a", "bias1b", "bias2a", "bias2b"):
            assert getattr(f, name).shape == (1,) and getattr(f, name).data[0] == 0
        assert f.scale.shape == (1,) and f.scale.data[0] == 1
    assert not fixup.fc.weight.data.any() and not fixup.fc.bias.data.any()
    assert fixup.bias1.data[0] == 0 and fixup.bias2.data[0] == 0
    np.testing.assert_array_equal(fixup.conv1.weight.data, he.conv1.weight.data)  # the stem: He


def test_fixup_branch_weights_have_the_papers_variance():
    """The first conv of each branch of Fixup ResNet-110 is N(0, 2 / fan_out * L^-1), with
    fan_out = 9 C_out and L = 54: the sample variance of every layer within 10%."""
    model = models.resnet110(init="fixup")
    for m in model.modules():
        if isinstance(m, normfree.FixupBasicBlock):
            w = m.conv1.weight.data
            want = 2 / (9 * w.shape[0]) / 54
            assert abs(w.var() / want - 1) < 0.1, (w.shape, w.var(), want)


def test_fixup_bottleneck_scales_two_layers_by_L_to_the_minus_quarter():
    """m = 3 layers per Bottleneck branch: conv1 and conv2 scaled by L^(-1/(2*3-2)) = L^-1/4,
    conv3 at 0; a projection shortcut keeps its He draw (as the authors' code)."""
    def net(**kw):
        mr.manual_seed(9)
        return build(models.Bottleneck, [2, 1, 1], num_classes=3, stem="cifar", shortcut="B",
                     widths=(4, 8, 16), **kw)

    fixup, he = net(init="fixup"), net(norm=None)
    L = 4
    pairs = [(f, h) for f, h in zip(fixup.modules(), he.modules())
             if isinstance(f, models.Bottleneck)]
    assert len(pairs) == L and all(isinstance(f, normfree.FixupBottleneck) for f, _ in pairs)
    for f, h in pairs:
        for conv in ("conv1", "conv2"):
            np.testing.assert_allclose(getattr(f, conv).weight.data,
                                       getattr(h, conv).weight.data * L ** -0.25, rtol=1e-6)
        assert not f.conv3.weight.data.any()
        if f.downsample is not None:
            np.testing.assert_array_equal(f.downsample[0].weight.data,
                                          h.downsample[0].weight.data)


def test_fixup_starts_as_the_identity_with_zero_logits():
    """Every branch is 0 at init (conv2 = 0, b2b = 0), so each block passes its shortcut, and
    the classifier is 0: the logits are 0 and the loss is log(10) for any input."""
    mr.manual_seed(10)
    model = models.cifar_resnet(20, in_channels=1, init="fixup").double()
    x = images((5, 1, 8, 8))
    assert not out(model, x).any()
    loss = F.softmax_cross_entropy(model(Tensor(x)), np.arange(5))
    assert math.isclose(loss.item(), math.log(10), rel_tol=1e-12)
    for m in model.modules():
        if isinstance(m, normfree.FixupBasicBlock):
            a = np.abs(images((2, m.conv1.in_channels, 4, 4), seed=3))
            with no_grad():
                np.testing.assert_array_equal(m(Tensor(a)).data, m.shortcut(Tensor(a)).data)


def _randomise_scalars(model, rng):
    """Move every Fixup scalar and zero weight away from its initial value, so that a test of the
    forward or backward sees each one."""
    for m in model.modules():
        for name, p in m._parameters.items():
            if p.size == 1:
                p.data[:] = rng.uniform(0.5, 1.5) if name == "scale" else rng.uniform(-0.3, 0.3)
        if isinstance(m, normfree.Fixup):
            last = m.branch_convs()[-1].weight
            last.data[...] = rng.standard_normal(last.shape) * 0.2


def test_fixup_block_forward_is_the_papers_formula():
    """Oracle, the BasicBlock of Fig. 1 (right) written out, with every scalar away from its
    initial value; the shape-changing block adds b1a to its shortcut's input, the others not."""
    mr.manual_seed(11)
    rng = np.random.default_rng(0)
    for block in (normfree.FixupBasicBlock(4, 4, 1, "A"), normfree.FixupBasicBlock(4, 8, 2, "A")):
        block.double()
        _randomise_scalars(block, rng)
        x = np.abs(images((2, 4, 6, 6), seed=4))

        def conv(m, a):
            return F.conv2d(Tensor(a), m.weight, None, m.stride, m.padding).data

        s = {k: p.data[0] for k, p in block._parameters.items()}
        h = np.maximum(conv(block.conv1, x + s["bias1a"]) + s["bias1b"], 0)
        branch = conv(block.conv2, h + s["bias2a"]) * s["scale"] + s["bias2b"]
        if block.stride == 1:
            short = x
        else:
            short = np.zeros_like(branch)
            short[:, :4] = (x + s["bias1a"])[:, :, ::2, ::2]
        np.testing.assert_allclose(out(block, x), np.maximum(branch + short, 0), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: normfree.FixupBasicBlock(2, 4, 2, "A"),
    lambda: normfree.FixupBasicBlock(4, 4, 1, "B"),
    lambda: normfree.FixupBottleneck(4, 2, 2, "B"),
    lambda: normfree.SkipInitBasicBlock(2, 4, 2, "A"),
    lambda: normfree.SkipInitBottleneck(8, 2, 1, "A"),
])
def test_normfree_block_gradcheck(make):
    """Every parameter, the scalars included, against central differences in float64."""
    mr.manual_seed(12)
    block = make().double()
    _randomise_scalars(block, np.random.default_rng(1))
    for m in block.modules():
        if isinstance(m, normfree.SkipInit):
            m.alpha.data[:] = 0.7
    x = mr.Tensor(images((2, block.conv1.in_channels, 4, 4), seed=5), requires_grad=True)
    assert mr.gradcheck(lambda x, *p: block(x), x, *block.parameters(), atol=1e-5, rtol=1e-3)


def test_fixup_net_gradcheck_reaches_the_stem_and_classifier_biases():
    mr.manual_seed(13)
    model = models.cifar_resnet(8, num_classes=3, in_channels=1, init="fixup").double()
    rng = np.random.default_rng(2)
    _randomise_scalars(model, rng)
    model.fc.weight.data[...] = rng.standard_normal(model.fc.weight.shape) * 0.3
    x = mr.Tensor(images((2, 1, 4, 4), seed=6))
    params = [model.bias1, model.bias2, model.fc.bias, model.layer2[0].bias1a,
              model.layer3[0].scale]
    assert mr.gradcheck(lambda *p: model(x), *params, atol=1e-5, rtol=1e-3)
