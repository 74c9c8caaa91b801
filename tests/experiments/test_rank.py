"""Rank collapse (Daneshmand et al. 2020; Dong et al. 2021) through ``minires.experiments.rank``:
the two rank measures against closed forms on matrices of known spectrum, the branch scaling
against the block it scales, and the claims on small nets at initialisation: without batch norm
the plain net's representations collapse toward rank 1 while the same net with (small-branch)
shortcuts keeps its rank, and batch norm keeps the plain net's rank."""
import json

import numpy as np
import pytest

from minires import backend, data, models
from minires.autograd import Tensor, no_grad
from minires.experiments import rank, surgery


def _with_spectrum(s, shape=(12, 9), seed=0):
    """U diag(s) V^T with random orthonormal U (shape[0] x k) and V (shape[1] x k)."""
    rng = np.random.default_rng(seed)
    k = len(s)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    return u @ np.diag(s) @ v.T


@pytest.mark.parametrize("s, erank, srank", [
    ([1.0, 1.0, 1.0, 1.0], 4.0, 4.0),             # k equal singular values: both are k
    ([5.0], 1.0, 1.0),                             # rank 1
    ([2.0, 1.0], 3 / 2 ** (2 / 3), 5 / 4),         # p = (2/3, 1/3): exp(H) = 3 / 2^(2/3)
    ([3.0, 1.0, 1.0, 1.0], 6 / 3 ** 0.5, 12 / 9),  # p = (1/2, 1/6 x 3): exp(H) = 2 sqrt(3)
])
def test_rank_measures_match_closed_forms(s, erank, srank):
    a = _with_spectrum(s)
    assert rank.effective_rank(a) == pytest.approx(erank, rel=1e-10)
    assert rank.stable_rank(a) == pytest.approx(srank, rel=1e-10)


def test_rank_measures_see_the_spectrum_only_and_read_any_shape():
    """Invariant to scale, to orthogonal maps on either side and to the layout of the features
    (an (N, C, H, W) batch is read as (N, C*H*W)); a zero matrix has rank 0."""
    rng = np.random.default_rng(1)
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.1])
    a = _with_spectrum(s, shape=(8, 12))
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    r, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    for b in (1e6 * a, q @ a @ r, a.reshape(8, 3, 2, 2)):
        assert rank.effective_rank(b) == pytest.approx(rank.effective_rank(a), rel=1e-9)
        assert rank.stable_rank(b) == pytest.approx(rank.stable_rank(a), rel=1e-9)
    p = s / s.sum()
    assert rank.effective_rank(a) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert rank.effective_rank(np.zeros((4, 6))) == rank.stable_rank(np.zeros((4, 6))) == 0.0


def test_small_branches_are_the_branch_times_alpha():
    """Without batch norm, ``scale_branches(model, a)`` makes each block ReLU(x + a F(x)):
    checked against the unscaled block's own F (``residual_function``) and shortcut."""
    backend.manual_seed(0)
    model = surgery.strip_batch_norm(models.cifar_resnet(14, in_channels=1, shortcut="A"))
    model.to(dtype=np.float64)
    blocks = dict(surgery.blocks(model))
    x = np.abs(np.random.default_rng(0).standard_normal((3, 16, 8, 8)))
    with no_grad():
        want = {n: np.maximum(b.shortcut(Tensor(x)).data
                              + 0.25 * b.residual_function(Tensor(x)).data, 0)
                for n, b in blocks.items() if n in ("layer1.1", "layer2.0")}
        rank.scale_branches(model, 0.25)
        for n, w in want.items():
            np.testing.assert_allclose(blocks[n](Tensor(x)).data, w, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="plain block"):
        rank.scale_branches(models.cifar_resnet(8, shortcut=None), 0.5)


def test_representations_are_every_block_in_order_and_leave_the_model_unchanged():
    model = rank.build_variant("resnet", 14, seed=0).eval()
    before = model.state_dict()
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    reps = rank.representations(model, x)
    assert list(reps) == ["input"] + [n for n, _ in surgery.blocks(model)]
    assert reps["layer3.1"].shape == (5, 64, 2, 2)
    assert not any(m.training for m in model.modules())
    for k, v in model.state_dict().items():  # train-mode BN ran, its running statistics restored
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def _last_rank(variant, depth, seed, x):
    return rank.effective_rank(list(rank.representations(
        rank.build_variant(variant, depth, seed=seed), x).values())[-1])


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()[0]


def test_shortcuts_keep_the_rank_where_the_plain_net_without_bn_collapses(digits):
    """Settings: depth 56, no batch norm, He initialisation, a batch of 32 training digits, seeds
    0 and 1. The plain net's last block has nearly collapsed (effective rank < 10 of 32: the
    images mapped near one direction); the ResNet with branches / sqrt(blocks) keeps more than
    1.5 x its rank (a reference computation gave 14.2 and 14.7 against 7.8 and 6.7). Without its
    shortcuts that ResNet *is* the plain net, up to a scale that no rank measure sees, so the
    ratio would be exactly 1. Re-run: python -m minires rank --depths 56 --batch-size 32."""
    for seed in (0, 1):
        x = rank.batch(digits, 32, seed)
        plain = _last_rank("plain_nobn", 56, seed, x)
        residual = _last_rank("resnet_nobn_small", 56, seed, x)
        assert plain < 10, (seed, plain)
        assert residual > 1.5 * plain, (seed, residual, plain)


def test_batch_norm_keeps_the_plain_nets_rank(digits):
    """The same nets and batches: with batch norm (train mode) the plain net keeps at least
    twice the effective rank it has without (a reference computation: 24.3 and 24.7)."""
    for seed in (0, 1):
        x = rank.batch(digits, 32, seed)
        assert _last_rank("plain", 56, seed, x) > 2 * _last_rank("plain_nobn", 56, seed, x), seed


def test_claims_are_checked_in_every_seed():
    """One seed that breaks a claim makes it fail; claims without their variants are left out."""
    def cell(last):
        return {"seeds": [0, 1], "input": [1, 1], "first": [9, 9], "last": last,
                "ratio": [v / 9 for v in last], "last_stable": [1, 1]}
    summary = {"plain": {"20": cell([9, 9]), "56": cell([9, 9])},
               "plain_nobn": {"20": cell([4, 4]), "56": cell([2, 4])}}
    claims = rank.check_claims(summary)
    assert set(claims) == {"bn_keeps", "nobn_collapses"}
    assert claims["bn_keeps"]["holds"]  # 9 >= 2 x 4
    assert not claims["nobn_collapses"]["holds"]  # seed 1: 4 > 0.5 x 4
    summary["plain_nobn"]["56"] = cell([2, 2])
    assert rank.check_claims(summary)["nobn_collapses"]["holds"]


def test_bad_arguments_fail_early_and_name_the_argument(digits):
    with pytest.raises(ValueError, match="variant"):
        rank.build_variant("resnet_bn", 20)
    with pytest.raises(ValueError, match="depths"):
        rank.measure(digits, depths=[21])
    with pytest.raises(ValueError, match="batch_size"):
        rank.batch(digits, 1, 0)


def test_run_returns_the_report_it_wrote(tmp_path):
    lines = []
    report = rank.run(str(tmp_path), depths=[8, 14], seeds=[0], batch_size=8, progress=False,
                      log=lines.append)
    assert report == json.loads((tmp_path / "rank.json").read_text())
    assert [(r["variant"], r["depth"]) for r in report["runs"]][:2] == [("plain", 8),
                                                                        ("resnet", 8)]
    assert set(report["claims"]) == {"bn_keeps", "nobn_collapses", "small_branches",
                                     "full_branches", "bn_resnet"}
    assert (tmp_path / "rank.png").read_bytes()[:4] == b"\x89PNG"
    assert str(tmp_path / "rank.json") in lines[-1]


def test_rank_command_quick_and_bad_options(tmp_path, capsys):
    from minires.cli import main
    assert main(["rank", "--quick", "--seeds", "3", "--no-progress", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "rank.json").read_text())
    assert report["settings"]["seeds"] == [3]  # an explicit option wins over --quick
    assert report["settings"]["depths"] == [8, 14]
    assert "ResNet, no BN" in capsys.readouterr().out
    for bad in (["--depths", "21"], ["--batch-size", "0"], ["--variants", "resnet_bn"]):
        with pytest.raises(SystemExit) as e:
            main(["rank", *bad, "--out", str(tmp_path)])
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--batch-size must be in 2..1438"):
        main(["rank", "--batch-size", "1", "--out", str(tmp_path)])
