"""Signal propagation plots (Brock, De and Smith 2021, Fig. 1; ``minires.experiments.signal``):
the channel statistics against loops, the records against the stream computed by hand, and the
claims on small nets at initialisation: batch norm grows the stream about linearly (its branches
at variance 1), no normalisation explodes it, SkipInit and Fixup keep it flat within a stage."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minires import models, nn
from minires.autograd import Tensor, no_grad
from minires.experiments import signal
from minires.models import normfree


def _x(n=32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8))


def _measure(variant, depth, seed=0):
    model = signal.build_net(variant, depth, seed=seed, dtype=np.float64)
    return signal.measure(model, _x(seed=seed))


def test_channel_stats_against_loops():
    x = np.random.default_rng(1).standard_normal((3, 4, 2, 5)) * np.arange(1, 5)[None, :, None,
                                                                                  None] + 0.5
    means, variances = [], []
    for c in range(4):
        values = [x[n, c, i, j] for n in range(3) for i in range(2) for j in range(5)]
        m = sum(values) / len(values)
        means.append(m * m)
        variances.append(sum((v - m) ** 2 for v in values) / len(values))
    mean_sq, var = signal.channel_stats(x)
    assert mean_sq == pytest.approx(sum(means) / 4, rel=1e-12)
    assert var == pytest.approx(sum(variances) / 4, rel=1e-12)


def test_measure_records_the_stream_and_the_branches_computed_by_hand():
    """Oracle: the BN net run stage by stage (train mode), the stream's statistics after the stem
    and after each block, and each block's residual function on its input; the model's modes and
    BN statistics are left as they were."""
    model = signal.build_net("batch_norm", 14, seed=2, dtype=np.float64).eval()
    x = _x(seed=2)
    running = model.bn1.running_mean.copy()
    rec = signal.measure(model, x)
    assert not model.training and np.array_equal(model.bn1.running_mean, running)
    model.train()
    expected = {"points": ["stem"], "stream": [], "branch": [None]}
    with no_grad():
        a = model.relu(model.bn1(model.conv1(Tensor(x))))
        expected["stream"].append(signal.channel_stats(a.data))
        for s, stage in enumerate(model.stages(), 1):
            for i, block in enumerate(stage):
                expected["branch"].append(signal.channel_stats(block.residual_function(a).data)[1])
                a = block(a)
                expected["points"].append(f"layer{s}.{i}")
                expected["stream"].append(signal.channel_stats(a.data))
    assert rec["points"] == expected["points"]
    np.testing.assert_allclose(rec["mean_sq"], [m for m, _ in expected["stream"]], rtol=1e-10)
    np.testing.assert_allclose(rec["variance"], [v for _, v in expected["stream"]], rtol=1e-10)
    assert rec["branch_variance"][0] is None
    np.testing.assert_allclose(rec["branch_variance"][1:], expected["branch"][1:], rtol=1e-10)


def test_segments_and_summary_of_a_constructed_record():
    """Segments cut where a stage starts; the summary's numbers from a record written by hand:
    a stream growing by exactly 1 per block within stages (R^2 = 1), halving at the transition."""
    points = ["stem", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer2.2"]
    assert signal.segments(points) == [[0, 1, 2], [3, 4, 5]]
    rec = {"points": points, "mean_sq": [0, 0, 0, 0, 0, 5.0], "variance": [1, 2, 3, 1.5, 2.5, 3.5],
           "branch_variance": [None, 1, 1, 1, 1, 0.25]}
    s = signal.summarise(rec)
    assert s["final_variance"] == 3.5 and s["final_mean_sq"] == 5.0
    assert s["linear_r2"] == pytest.approx(1.0)
    ratios = [2, 1.5, 2.5 / 1.5, 3.5 / 2.5]
    assert s["growth_per_block"] == pytest.approx(float(np.prod(ratios)) ** (1 / 4))
    assert s["within_stage_change"] == pytest.approx(2.0)  # 3 / 1 - 1
    assert s["branch_share_last"] == pytest.approx(np.sqrt(0.25 / 3.5))
    assert s["variance_per_block"] == pytest.approx([1.0, 1.0])
    assert s["moment_per_block"] == pytest.approx([1.0, 3.5])  # + 5 of mean^2 at the end


# -- the claims ------------------------------------------------------------------------------------

def test_skipinit_keeps_the_stream_flat_and_alpha_off_zero_does_not():
    """The SPP test of SkipInit: with alpha = 0 every block passes its input on, so within each
    stage the stream's statistics do not change at all and every branch adds 0. Set alpha to 1 and
    the same net is the one without normalisation: the stream grows at every block."""
    model = signal.build_net("skipinit", 56, seed=3, dtype=np.float64)
    s = signal.summarise(signal.measure(model, _x(seed=3)))
    assert s["within_stage_change"] <= signal.FLAT and s["growth_per_block"] == pytest.approx(1)
    assert s["branch_share_last"] == 0
    for m in model.modules():
        if isinstance(m, normfree.SkipInit):
            m.alpha.data[:] = 1
    moved = signal.summarise(signal.measure(model, _x(seed=3)))
    assert moved["within_stage_change"] > 10 and moved["growth_per_block"] > 1.3


def test_fixup_keeps_the_stream_flat_and_a_nonzero_last_layer_does_not():
    """Fixup's rule 1 (the last layer of every branch at 0) is what makes its stream flat at
    initialisation: re-draw those layers (He, scaled as rule 2 scales the others) and it grows."""
    model = signal.build_net("fixup", 56, seed=4, dtype=np.float64)
    s = signal.summarise(signal.measure(model, _x(seed=4)))
    assert s["within_stage_change"] <= signal.FLAT and s["branch_share_last"] == 0
    for m in model.modules():
        if isinstance(m, normfree.FixupBasicBlock):
            nn.init.kaiming_normal_(m.conv2.weight)
    moved = signal.summarise(signal.measure(model, _x(seed=4)))
    assert moved["within_stage_change"] > 0.1


def test_batch_norm_grows_the_stream_about_linearly_and_none_explodes_it():
    """ResNet-56 on N(0, 1) inputs, train mode. Batch norm: every branch ends at variance
    var / (var + eps) ~ 1 per channel, so the stream grows by about the same amount per block:
    a straight line fits its variance within every stage (R^2 >= 0.95), the growth factor per
    block stays small, and the last branch's share of the stream is well below 1. Without
    normalisation the same convs about double the stream per block (factor >= 1.4; 1.47 to 1.81
    on seeds 0-6, R^2 0.49 to 0.75; batch norm's R^2 0.987 to 0.997, factor 1.17, share 0.40 to
    0.43), and no straight line fits it."""
    bn = _measure("batch_norm", 56, seed=5)
    assert np.allclose(bn["branch_variance"][1:], 1, atol=1e-3)
    s = signal.summarise(bn)
    assert s["linear_r2"] >= 0.95 and s["growth_per_block"] < 1.25, s
    assert s["branch_share_last"] < 0.6
    # Var x + mean^2 grows by about the branch's variance, 1, per block (0.76 to 0.89 per stage
    # on seeds 0-6; the ReLU after the sum clips a little of each sum)
    assert all(0.6 < m <= 1 for m in s["moment_per_block"]), s["moment_per_block"]
    none = signal.summarise(_measure("no_norm", 56, seed=5))
    assert none["growth_per_block"] >= 1.4 and none["linear_r2"] < 0.9, none
    assert none["final_variance"] > 30 * s["final_variance"]  # 65 to 9,500 times on seeds 0-6


def test_batch_norm_branch_share_shrinks_like_one_over_root_depth():
    """The last branch's share sqrt(Var F / Var x) times sqrt(blocks per stage) stays about
    constant from ResNet-20 to ResNet-56 (it would grow threefold if the share did not shrink;
    1.20 to 1.29 at both depths on seeds 0-6)."""
    shares = {d: signal.summarise(_measure("batch_norm", d, seed=6))["branch_share_last"]
              for d in (20, 56)}
    scaled = [shares[d] * np.sqrt((d - 2) // 6) for d in (20, 56)]
    assert shares[56] < shares[20]
    assert scaled[1] == pytest.approx(scaled[0], rel=0.25), (shares, scaled)


def test_measure_refuses_a_net_without_blocks():
    with pytest.raises(ValueError, match="no residual or plain blocks"):
        signal.measure(nn.Sequential(nn.Flatten()), _x())


# -- the command -----------------------------------------------------------------------------------

def _command(*argv):
    return subprocess.run([sys.executable, "-m", "minires", *argv], capture_output=True, text=True,
                          env={**os.environ, "MINIRES_NUM_THREADS": "1"})


def test_signal_command_help_bad_option_and_quick_run(tmp_path):
    help_ = _command("signal", "--help")
    assert help_.returncode == 0, help_.stderr
    assert all(o in help_.stdout for o in ("--quick", "--depths", "--variants", "--batch-size",
                                            "--gaussian", "--out", "--seed", "--device"))
    for bad in (["--batch-size", "1"], ["--batch-size", "x"], ["--depths", "21"]):
        done = _command("signal", *bad, "--out", str(tmp_path / "bad"))
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert bad[0] in done.stderr and not (tmp_path / "bad").exists()
    out = tmp_path / "run"
    done = _command("signal", "--quick", "--batch-size", "8", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "signal.json").read_text())
    assert report["settings"]["batch_size"] == 8  # an explicit option wins over --quick
    assert report["settings"]["depths"] == [8, 14]
    for name in ("signal.png", "signal_depth.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    for depth in ("8", "14"):
        assert set(report["summary"][depth]) == set(signal.VARIANTS)
        assert report["summary"][depth]["skipinit"]["within_stage_change"] <= signal.FLAT
        rec = report["records"][depth]["fixup"]
        assert len(rec["points"]) == 1 + 3 * ((int(depth) - 2) // 6)


def test_build_net_gives_every_variant_the_same_he_draws():
    a = signal.build_net("batch_norm", 14, seed=7)
    b = signal.build_net("no_norm", 14, seed=7)
    np.testing.assert_array_equal(a.layer2[1].conv1.weight.data, b.layer2[1].conv1.weight.data)
    assert isinstance(signal.build_net("fixup", 14), normfree.FixupResNet)
    assert isinstance(signal.build_net("skipinit", 14), models.ResNet)
    with pytest.raises(ValueError, match="variant must be one of"):
        signal.build_net("layer_norm", 14)
