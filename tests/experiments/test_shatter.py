"""Shattered gradients (Balduzzi et al. 2017): the measurement, and the paper's claim on small
nets."""
import json

import numpy as np
import pytest

import minires as mr
from minires.experiments import shatter


def _net(variant, depth, width=30, seed=0):
    mr.manual_seed(seed)
    return shatter.ShatterNet(variant, depth, width, dtype=np.float64)


# -- the measurement ------------------------------------------------------------------------------

def test_one_layer_gradient_is_the_closed_form_step_function():
    model = _net("feedforward", 1)
    x = shatter.inputs()
    g = shatter.derivative(model, x)
    w1 = model.input.weight.data[:, 0]   # (width,)
    b1 = model.input.bias.data
    w2 = model.output.weight.data[0]     # (width,)
    on = (w1[None, :] * x[:, None] + b1[None, :]) > 0
    expected = (on * (w2 * w1)[None, :]).sum(axis=1)  # dy/dx = sum_j w2_j w1_j [w1_j x + b1_j > 0]
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-12)
    # piecewise constant: it changes only between grid points with a unit's switch -b/w between them
    kinks = -b1 / w1
    changes = np.nonzero(np.diff(g))[0]
    assert len(changes) > 0
    for i in changes:
        assert np.any((kinks > x[i]) & (kinks <= x[i + 1])), \
            f"a jump between x={x[i]} and {x[i + 1]} without a switch"


@pytest.mark.parametrize("variant", shatter.VARIANTS)
def test_derivative_matches_central_differences_of_the_function(variant):
    # With batch norm, the function is the one with the batch's statistics frozen.
    model = _net(variant, 3, width=12, seed=1)
    x = shatter.inputs(32)
    g = shatter.derivative(model, x)  # leaves the model in eval mode, the batch's statistics
    eps = 1e-6
    with mr.no_grad():
        f = lambda v: model(mr.Tensor(v.reshape(-1, 1))).data[:, 0]
        numeric = (f(x + eps) - f(x - eps)) / (2 * eps)
    # away from the kinks (where a central difference straddles a switch) they agree to rounding
    np.testing.assert_allclose(np.median(np.abs(g - numeric)), 0, atol=1e-6)
    assert np.mean(np.abs(g - numeric) < 1e-5 * (1 + np.abs(g))) > 0.9


def test_batch_norm_sees_the_points_as_one_batch():
    model = _net("feedforward_bn", 2, width=8)
    x = shatter.inputs(64)
    shatter.derivative(model, x)
    h = model.input.weight.data[:, 0][None, :] * x[:, None]  # (64, 8): the first BN's input
    np.testing.assert_allclose(model.norms[0].running_mean, h.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(model.norms[0].running_var, h.var(axis=0, ddof=1), rtol=1e-10)


def test_autocorrelation_of_constructed_signals():
    n = 64
    alternating = np.tile([1.0, -1.0], n // 2)
    r = shatter.autocorrelation(alternating, 3)
    np.testing.assert_allclose(r, [1, -(n - 1) / n, (n - 2) / n, -(n - 3) / n])
    assert shatter.half_lag(r) == 1
    assert np.isnan(shatter.autocorrelation(np.ones(5))).all()
    ramp = np.arange(200.0)  # a smooth signal stays correlated far out
    assert shatter.half_lag(shatter.autocorrelation(ramp)) > 30
    with pytest.raises(ValueError, match="1-D"):
        shatter.autocorrelation(np.ones((2, 3)))


def test_fit_decay_recovers_an_exponential_and_a_power_law():
    d = np.arange(1, 21)
    f = shatter.fit_decay(d, 0.9 * np.exp(-d / 4.0))
    assert f["exponential"]["tau"] == pytest.approx(4.0)
    assert f["exponential"]["A"] == pytest.approx(0.9)
    assert f["exponential"]["rms_log"] < 1e-10 < f["power"]["rms_log"]
    f = shatter.fit_decay(d, 0.8 * d ** -0.5)
    assert f["power"]["beta"] == pytest.approx(0.5)
    assert f["power"]["rms_log"] < 1e-10 < f["exponential"]["rms_log"]
    # non-positive values are left out
    assert shatter.fit_decay([1, 2, 3], [0.5, -0.1, 0.0]) is None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variant"):
        shatter.ShatterNet("highway", 3)
    with pytest.raises(ValueError, match="depth"):
        shatter.ShatterNet("resnet", 0)


# -- the paper's claim, on small nets (width 64, 4 seeds) ------------------------------------------

def test_feedforward_gradients_shatter_with_depth_and_bn_resnet_gradients_far_less():
    res = shatter.measure(variants=("feedforward_bn", "resnet_bn"), depths=(1, 4, 12),
                          seeds=range(4), width=64, max_lag=8, progress=False)
    ff, rn = res["feedforward_bn"]["r1"].mean(axis=1), res["resnet_bn"]["r1"].mean(axis=1)
    assert ff[0] > 0.9 and rn[0] > 0.9              # one layer: a step function, neighbours ~equal
    assert ff[2] < 0.4                              # 12 layers: near white noise (r(1) ~ 0.25 here)
    assert ff[0] > ff[1] > ff[2]                    # falling with depth
    assert rn[2] > 0.7 and rn[2] - ff[2] > 0.4      # the BN ResNet keeps most of it (~0.9)


# -- the command ----------------------------------------------------------------------------------

def _cli(*argv):
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "minires", "shatter", *argv], capture_output=True,
                          text=True, env={**os.environ, "MINIRES_NUM_THREADS": "1",
                                          "OPENBLAS_NUM_THREADS": "1"})


def test_shatter_command_help_errors_and_a_tiny_run(tmp_path):
    r = _cli("--help")
    assert r.returncode == 0 and "--max-depth" in r.stdout and "--quick" in r.stdout
    r = _cli("--points", "3")
    assert r.returncode != 0 and "--points" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--max-depth", "3", "--width", "8", "--points", "32", "--seeds", "1", "--no-progress",
             "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "shatter.json").read_text())
    assert doc["settings"]["depths"] == [1, 2, 3] and set(doc["variants"]) == set(shatter.VARIANTS)
    assert (tmp_path / "shatter_gradients.png").exists()
    assert (tmp_path / "shatter_correlation.png").exists()
