"""Pre-activation units and nets ("Identity Mappings in Deep Residual Networks", Fig. 4(e),
sec. 5)."""

import numpy as np
import pytest

import minires as mr
from minires import models, nn


def _input(shape, seed=0, dtype=np.float64, requires_grad=False):
    return mr.Tensor(
        np.random.default_rng(seed).standard_normal(shape).astype(dtype),
        requires_grad=requires_grad,
    )


def _zero(conv):
    nn.init.zeros_(conv.weight)


# -- eq. 3: with F = 0 a pre-activation unit is exactly the identity -------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_preact_block_with_last_conv_zeroed_is_exactly_the_identity(training):
    mr.manual_seed(0)
    block = models.PreActBlock(4, 4).double().train(training)
    _zero(block.last_conv())
    x = _input((3, 4, 5, 5), seed=1)  # negative values too: nothing after the addition clips them
    with mr.no_grad():
        assert np.array_equal(block(x).data, x.data)


def test_preact_bottleneck_with_last_conv_zeroed_is_exactly_the_identity():
    mr.manual_seed(0)
    block = models.PreActBottleneck(8, 2).double()
    _zero(block.conv3)
    x = _input((2, 8, 4, 4), seed=2)
    with mr.no_grad():
        assert np.array_equal(block(x).data, x.data)


def test_the_original_unit_with_zeroed_branch_is_relu_not_the_identity():
    # The contrast the paper draws (Fig. 4(a) vs (e)): ReLU after the addition clips the shortcut.
    block = models.BasicBlock(4, 4, shortcut="A").double()
    nn.init.zeros_(block.last_bn().weight)
    x = _input((2, 4, 3, 3), seed=3)
    with mr.no_grad():
        assert np.array_equal(block(x).data, np.maximum(x.data, 0))


def test_downsampling_preact_block_with_zeroed_branch_is_subsample_and_zero_pad():
    block = models.PreActBlock(2, 4, stride=2, shortcut="A").double()
    _zero(block.conv2)
    x = _input((2, 2, 6, 6), seed=4)
    with mr.no_grad():
        out = block(x).data
    assert out.shape == (2, 4, 3, 3)
    # Where the padding goes is the shortcut op's business; what is checked: the input's channels,
    # subsampled, appear unchanged, and every other channel is zero.
    kept = [c for c in range(4) if np.abs(out[:, c]).sum() > 0]
    assert len(kept) == 2
    assert np.array_equal(out[:, kept], x.data[:, :, ::2, ::2])


def test_projection_shortcut_reads_the_shared_pre_activation():
    mr.manual_seed(5)
    block = models.PreActBlock(2, 4, stride=2, shortcut="B").double()
    _zero(block.conv2)
    assert isinstance(block.downsample, nn.Conv2d)  # a bare 1x1 conv: no BN on the shortcut path
    x = _input((2, 2, 6, 6), seed=6)
    with mr.no_grad():
        pre = np.maximum(
            (x.data - x.data.mean(axis=(0, 2, 3), keepdims=True))
            / np.sqrt(x.data.var(axis=(0, 2, 3), keepdims=True) + 1e-5),
            0,
        )
        w = block.downsample.weight.data[:, :, 0, 0]  # (4, 2)
        expected = np.einsum("oc,nchw->nohw", w, pre[:, :, ::2, ::2])
        np.testing.assert_allclose(block(x).data, expected, rtol=1e-10, atol=1e-12)


# -- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shortcut, in_planes, planes, stride", [("A", 3, 3, 1), ("A", 2, 4, 2), ("B", 2, 4, 2)]
)
def test_preact_block_gradcheck(shortcut, in_planes, planes, stride):
    mr.manual_seed(7)
    block = models.PreActBlock(in_planes, planes, stride, shortcut=shortcut).double()
    x = _input((2, in_planes, 4, 4), seed=8, requires_grad=True)
    assert mr.gradcheck(lambda x, *p: block(x), x, *block.parameters(), atol=1e-5, rtol=1e-3)


def test_preact_bottleneck_gradcheck():
    mr.manual_seed(9)
    block = models.PreActBottleneck(4, 2, stride=2, shortcut="B").double()
    x = _input((2, 4, 4, 4), seed=10, requires_grad=True)
    assert mr.gradcheck(lambda x, *p: block(x), x, *block.parameters(), atol=1e-5, rtol=1e-3)


def test_identity_unit_passes_the_gradient_through_unchanged_plus_the_branch():
    # eq. 5 for one unit: with F = 0, dE/dx_l = dE/dx_{l+1} exactly.
    block = models.PreActBlock(3, 3).double()
    _zero(block.conv2)
    x = _input((2, 3, 4, 4), seed=11, requires_grad=True)
    g = np.random.default_rng(12).standard_normal((2, 3, 4, 4))
    block(x).backward(g)
    assert np.array_equal(x.grad, g)


# -- the nets: shapes and the paper's parameter counts ---------------------------------------------


def _bottleneck_stage_params(c_in, planes, units):
    """By hand: BN(c_in) 1x1(c_in->p) BN(p) 3x3(p->p) BN(p) 1x1(p->4p), a 1x1 projection in the
    first unit."""
    total = 0
    for u in range(units):
        total += (
            2 * c_in
            + c_in * planes
            + 2 * planes
            + 9 * planes * planes
            + 2 * planes
            + planes * 4 * planes
        )
        if u == 0:
            total += c_in * 4 * planes
        c_in = 4 * planes
    return total


@pytest.mark.parametrize("depth, n", [(164, 18), (1001, 111)])
def test_bottleneck_cifar_nets_match_a_count_by_hand(depth, n):
    expected = 3 * 3 * 3 * 16  # conv1
    expected += (
        _bottleneck_stage_params(16, 16, n)
        + _bottleneck_stage_params(64, 32, n)
        + _bottleneck_stage_params(128, 64, n)
    )
    expected += 2 * 256 + 256 * 10 + 10  # bn_final, fc
    assert sum(p.size for p in models.get_model(f"preact_resnet{depth}").parameters()) == expected


def test_parameter_counts_match_the_papers_figures():
    # "Identity mappings", Table 4 / sec. 5: ResNet-164 1.7M, ResNet-1001 10.2M parameters
    # (CIFAR-10).
    m164, m1001 = models.preact_resnet164(), models.preact_resnet1001()
    assert round(sum(p.size for p in m164.parameters()) / 1e6, 1) == 1.7
    # 10.2M is the count of convolution and fc weights; with the 149k batch-norm scales and shifts
    # the total is 10.33M.
    weights = sum(
        p.size
        for name, p in m1001.named_parameters()
        if ".bn" not in name and not name.startswith("bn")
    )
    assert round(weights / 1e6, 1) == 10.2
    assert round(sum(p.size for p in m1001.parameters()) / 1e6, 2) == 10.33
    # Moving BN and ReLU changes no parameter count: pre-act ResNet-110 has original ResNet-110's
    # 1.7M.
    assert (
        sum(p.size for p in models.preact_resnet110().parameters())
        == sum(p.size for p in models.resnet110().parameters())
        == 1_727_962
    )


def test_cifar_and_imagenet_nets_have_the_papers_shapes():
    s = models.summary(models.preact_resnet164(), (3, 32, 32))
    shapes = {r.layer: r.output_shape for r in s.rows}
    assert [shapes[f"layer{i}"] for i in (1, 2, 3)] == [
        (1, 64, 32, 32),
        (1, 128, 16, 16),
        (1, 256, 8, 8),
    ]
    assert [r.layer for r in s.rows][-3:] == ["bn_final", "avgpool", "fc"]
    s = models.summary(models.preact_resnet50(), (3, 224, 224))
    shapes = {r.layer: r.output_shape for r in s.rows}
    assert shapes["layer4"] == (1, 2048, 7, 7) and shapes["fc"] == (1, 1000)
    mr.manual_seed(0)
    logits = models.preact_resnet20(num_classes=7, in_channels=1)(
        _input((2, 1, 8, 8), dtype=np.float32)
    )
    assert logits.shape == (2, 7)


def test_cifar_preact_net_has_no_stem_bn_and_a_final_bn():
    model = models.preact_resnet20()
    names = [k for k, _ in model.named_parameters()]
    assert not any(k.startswith("bn1.") for k in names)
    assert "bn_final.weight" in names and "layer1.0.bn1.weight" in names
    assert "bn1.weight" in [k for k, _ in models.preact_resnet18().named_parameters()]


def test_zero_init_residual_makes_the_whole_trunk_an_identity():
    mr.manual_seed(1)
    model = models.preact_resnet20(zero_init_residual=True, in_channels=1).double()
    x = _input((2, 1, 8, 8), seed=13)
    seen = {}
    # returns None: output kept
    model.layer3.register_forward_hook(lambda m, i, o: seen.update(out=o.data))
    with mr.no_grad():
        model(x)
        stem = model.conv1(x).data
    # stage 1 keeps conv1's output; the two option-A transitions subsample by 2 each and pad zeros
    out = seen["out"]
    assert out.shape == (2, 64, 2, 2)
    nonzero = [c for c in range(64) if np.abs(out[:, c]).sum() > 0]
    assert np.array_equal(out[:, nonzero], stem[:, :, ::4, ::4])


def test_builders_are_registered_and_depths_are_checked():
    for name in (
        "preact_resnet20",
        "preact_resnet110",
        "preact_resnet164",
        "preact_resnet1001",
        "preact_resnet50",
    ):
        assert name in models.BUILDERS
    with pytest.raises(ValueError, match="9n \\+ 2"):
        models.cifar_preact_resnet(165, bottleneck=True)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.cifar_preact_resnet(21)


def test_summary_command_counts_preact_resnet164(capsys):
    from minires import cli

    assert cli.main(["summary", "preact_resnet164"]) == 0
    assert "total params: 1,703,258" in capsys.readouterr().out
