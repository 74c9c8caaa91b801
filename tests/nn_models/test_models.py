"""The paper's networks: shapes, gradients, shortcut options, parameter and mult-add counts."""

import numpy as np
import pytest

import minires as mr
from minires import functional as F
from minires import models, nn


def images(shape, seed=0, dtype=np.float32):
    return mr.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# -- the paper's figures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params",
    [
        ("resnet20", 269_722),
        ("resnet32", 464_154),
        ("resnet44", 658_586),
        ("resnet56", 853_018),
        ("resnet110", 1_727_962),
        ("resnet1202", 19_421_274),
    ],
)
def test_cifar_resnet_parameter_counts_match_table_6(name, params):
    model = models.get_model(name)
    assert sum(p.size for p in model.parameters()) == params


@pytest.mark.parametrize(
    "name, params, macs_paper, macs_torchvision",
    [
        ("resnet18", 11_689_512, 1.81, 1.81),
        ("resnet34", 21_797_672, 3.66, 3.66),
        ("resnet50", 25_557_032, 3.86, 4.09),
        ("resnet101", 44_549_160, 7.57, 7.80),
        ("resnet152", 60_192_808, 11.28, 11.51),
    ],
)
def test_imagenet_resnet_parameters_and_mult_adds_match_table_1(
    name, params, macs_paper, macs_torchvision
):
    paper = models.summary(models.get_model(name, stride_in_1x1=True), (3, 224, 224))
    assert paper.total_params == params
    assert round(paper.total_mult_adds / 1e9, 2) == macs_paper
    if macs_torchvision != macs_paper:
        tv = models.summary(models.get_model(name), (3, 224, 224))
        assert round(tv.total_mult_adds / 1e9, 2) == macs_torchvision


def test_summary_rows_are_the_stages_with_table_1_output_sizes():
    s = models.summary(models.resnet34(), (3, 224, 224))
    rows = {r.layer: r for r in s.rows}
    assert [r.layer for r in s.rows] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    # Table 1: conv1 112x112, conv2_x 56x56, conv3_x 28x28, conv4_x 14x14, conv5_x 7x7
    assert rows["conv1"].output_shape == (1, 64, 112, 112)
    assert [rows[f"layer{i}"].output_shape[2] for i in range(1, 5)] == [56, 28, 14, 7]
    assert sum(r.params for r in s.rows) == s.total_params
    assert sum(r.mult_adds for r in s.rows) == s.total_mult_adds
    # conv1 by hand: 64 x 112 x 112 outputs, each 3*7*7 mult-adds
    assert rows["conv1"].mult_adds == 64 * 112 * 112 * 3 * 7 * 7
    assert "total params: 21,797,672" in str(s)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["resnet50", "--paper-layout"], ["total params: 25,557,032", "(3.86 G)"]),
        (["resnet50"], ["total params: 25,557,032", "(4.09 G)"]),
        (["resnet110"], ["input 1x3x32x32", "total params: 1,727,962"]),
    ],
)
def test_summary_command_prints_the_papers_figures(capsys, argv, expected):
    from minires import cli

    assert cli.main(["summary"] + argv) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


@pytest.mark.parametrize(
    "argv, option", [(["resnet21"], "model"), (["resnet20", "--size", "0"], "--size")]
)
def test_summary_command_rejects_bad_arguments_by_name(capsys, argv, option):
    from minires import cli

    with pytest.raises(SystemExit):
        cli.main(["summary"] + argv)
    assert f"argument {option}" in capsys.readouterr().err


def test_plain_twins_have_no_shortcut_parameters_and_the_same_layers():
    res, plain = models.resnet34(), models.plain34()
    res_keys = set(res.state_dict())
    plain_keys = set(plain.state_dict())
    assert plain_keys < res_keys and all(".downsample." in k for k in res_keys - plain_keys)
    # option A adds no parameters, so the CIFAR twins have identical parameter lists
    assert [p.shape for p in models.plain56().parameters()] == [
        p.shape for p in models.resnet56().parameters()
    ]


# -- shapes ----------------------------------------------------------------------------------------


# resnet1202 and preact_resnet1001 are left out: counted elsewhere, and 1000+ layers test nothing
# that 110 do not.
@pytest.mark.parametrize("name", sorted(set(models.BUILDERS) - {"resnet1202", "preact_resnet1001"}))
def test_every_builder_produces_logits_of_the_right_shape(name):
    model = models.get_model(name, num_classes=7).eval()
    cifar = model.maxpool is None
    with mr.no_grad():  # 32x32 is the smallest input the ImageNet stem (/32) takes to a 1x1 map
        out = model(images((2, 3, 32, 32) if cifar else (1, 3, 32, 32)))
    assert out.shape == ((2, 7) if cifar else (1, 7))
    assert np.isfinite(out.data).all()


# -- gradients -------------------------------------------------------------------------------------


def test_resnet20_train_step_gives_every_parameter_a_finite_gradient():
    mr.manual_seed(0)
    model = models.resnet20()
    x, y = images((8, 3, 32, 32)), np.arange(8) % 10
    loss = F.softmax_cross_entropy(model(x), y)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.isfinite(p.grad).all(), name
        assert np.abs(p.grad).sum() > 0, name
    assert loss.dtype == np.float32


def _block_input(channels, seed=0):
    """A float64 (2, channels, 4, 4) input: small enough for an element-wise gradcheck."""
    return mr.Tensor(
        np.random.default_rng(seed).standard_normal((2, channels, 4, 4)), requires_grad=True
    )


@pytest.mark.parametrize("shortcut", ["A", "B", "C", None])
@pytest.mark.parametrize("in_planes, planes, stride", [(4, 4, 1), (2, 4, 2)])
def test_basic_block_gradcheck(shortcut, in_planes, planes, stride):
    mr.manual_seed(1)
    block = models.BasicBlock(in_planes, planes, stride, shortcut=shortcut).double()
    x = _block_input(in_planes)
    params = list(block.parameters())
    assert mr.gradcheck(lambda x, *p: block(x), x, *params, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("shortcut", ["A", "B", "C", None])
@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_bottleneck_gradcheck(shortcut, stride_in_1x1):
    mr.manual_seed(2)
    block = models.Bottleneck(
        4, 2, stride=2, shortcut=shortcut, stride_in_1x1=stride_in_1x1
    ).double()
    x = _block_input(4, seed=3)
    assert mr.gradcheck(lambda x, *p: block(x), x, *block.parameters(), atol=1e-5, rtol=1e-3)


def test_bottleneck_identity_block_with_option_a():
    block = models.Bottleneck(8, 2, stride=1, shortcut="A").double()
    assert block.downsample is None  # in == out channels: the identity, no padding needed
    x = _block_input(8, seed=4)
    assert mr.gradcheck(lambda x: block(x), x, atol=1e-5, rtol=1e-3)


def test_shortcut_options_build_the_right_modules():
    a = models.BasicBlock(16, 32, 2, shortcut="A")
    b = models.BasicBlock(16, 32, 2, shortcut="B")
    c = models.BasicBlock(16, 16, 1, shortcut="C")
    assert isinstance(a.downsample, nn.PadChannels) and not list(a.downsample.parameters())
    assert isinstance(b.downsample, nn.Sequential) and b.downsample[0].weight.shape == (
        32,
        16,
        1,
        1,
    )
    assert isinstance(c.downsample, nn.Sequential)  # C projects even when the shape is unchanged
    assert models.BasicBlock(16, 16, 1, shortcut="B").downsample is None
    with pytest.raises(ValueError, match="shortcut must be one of"):
        models.BasicBlock(16, 16, 1, shortcut="D")
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.cifar_resnet(21)


def test_zero_init_residual_makes_every_block_start_as_identity_plus_relu():
    model = models.resnet20(zero_init_residual=True).eval()
    block = model.layer1[1]
    x = mr.Tensor(
        np.abs(np.random.default_rng(0).standard_normal((2, 16, 8, 8))).astype(np.float32)
    )
    with mr.no_grad():
        np.testing.assert_allclose(block(x).data, x.data)  # relu(0 + x) = x for x >= 0


# -- eval mode -------------------------------------------------------------------------------------


def test_eval_mode_is_deterministic_and_independent_of_the_batch():
    mr.manual_seed(3)
    model = models.resnet20()
    model(images((16, 3, 32, 32), seed=5))  # move running stats off their initial values
    model.eval()
    batch = images((4, 3, 32, 32), seed=6)
    with mr.no_grad():
        together = model(batch).data
        alone = np.concatenate([model(mr.Tensor(batch.data[i : i + 1])).data for i in range(4)])
        again = model(batch).data
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(together, again)


def test_train_mode_updates_running_statistics_and_eval_does_not():
    model = models.resnet20()
    before = model.bn1.running_mean.copy()
    model(images((4, 3, 32, 32)))
    assert not np.allclose(model.bn1.running_mean, before)
    model.eval()
    frozen = model.bn1.running_mean.copy()
    with mr.no_grad():
        model(images((4, 3, 32, 32), seed=1))
    np.testing.assert_array_equal(model.bn1.running_mean, frozen)


def test_same_seed_same_initial_weights():
    mr.manual_seed(42)
    a = models.resnet20().state_dict()
    mr.manual_seed(42)
    b = models.resnet20().state_dict()
    mr.manual_seed(43)
    c = models.resnet20().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


def test_he_initialisation_has_the_fan_out_variance():
    conv = nn.Conv2d(64, 128, 3)
    # He et al.: Var(w) = 2 / fan_out, fan_out = C_out * k * k
    np.testing.assert_allclose(conv.weight.data.var(), 2 / (128 * 9), rtol=0.05)
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
