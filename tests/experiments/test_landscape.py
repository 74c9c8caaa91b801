"""Loss landscapes (Li et al. 2018; ``minires.experiments.landscape``): filter-normalised
directions, the loss at a point of the plane, and the numbers that summarise a landscape, each
against an independent computation; and the claim on small trained nets."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minires import backend, data, models
from minires import functional as F
from minires.autograd import Tensor, no_grad
from minires.experiments import landscape


def _net(depth=8, shortcut="A", seed=0):
    backend.manual_seed(seed)
    return models.cifar_resnet(depth, in_channels=1, shortcut=shortcut)


def _batch(n=16):
    x, y = next(iter(data.DataLoader(data.load_digits()[0], n)))
    return x, y


def test_filter_normalisation_gives_each_filter_the_weights_norm():
    """Every filter (a conv's output channel, a linear layer's row) of the direction has the norm of
    the same filter of the weights, computed here filter by filter; BN and bias entries are zero."""
    model = _net()
    d = landscape.filter_normalized_direction(model, seed=3)
    assert list(d) == [n for n, _ in model.named_parameters()]
    checked = 0
    for name, p in model.named_parameters():
        w = p.data.astype(np.float64)
        assert d[name].shape == w.shape
        if w.ndim == 1:
            assert not d[name].any(), name
            continue
        for j in range(w.shape[0]):
            expected = np.sqrt((w[j] ** 2).sum())
            assert np.sqrt((d[name][j] ** 2).sum()) == pytest.approx(expected, rel=1e-12)
            checked += 1
        # random, not the weights
        assert not np.allclose(d[name] / np.abs(d[name]).max(), w / np.abs(w).max())
    assert checked == sum(p.shape[0] for p in model.parameters() if p.ndim > 1)
    again = landscape.filter_normalized_direction(model, seed=3)
    other = landscape.filter_normalized_direction(model, seed=4)
    assert all(np.array_equal(d[n], again[n]) for n in d)
    assert any(not np.array_equal(d[n], other[n]) for n in d if d[n].any())


def test_landscape_loss_is_the_loss_of_the_moved_weights():
    """loss(a, b) equals the eval-mode cross-entropy of a copy of the net whose weights were set to
    theta + a d + b e by load_state_dict; after each loss the weights are the trained ones again
    and the model is in the mode it was (train)."""
    model = _net()
    x, y = _batch()
    d, e = (landscape.filter_normalized_direction(model, seed=s) for s in (1, 2))
    theta = model.state_dict()
    a, b = 0.3, -0.7
    moved = _net(seed=9)  # other weights, all replaced below
    moved.load_state_dict({k: v + a * d[k] + b * e[k] if k in d else v for k, v in theta.items()})
    moved.eval()
    with no_grad():
        expected = float(F.softmax_cross_entropy(moved(Tensor(x)), y).data)
    land = landscape.Landscape(model, x, y, [d, e])
    assert land.loss(a, b) == pytest.approx(expected, rel=1e-5)
    assert model.training
    after = model.state_dict()
    assert all(np.array_equal(theta[k], after[k]) for k in theta)  # BN statistics too
    assert land.loss(0.0, 0.0) != pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="2 coordinates"):
        land.loss(1.0)
    assert model.training
    after = model.state_dict()
    assert all(np.array_equal(theta[k], after[k]) for k in theta)


def test_principal_curvatures_of_a_quadratic():
    """f(a, b) = a^2 + a b - b^2 has Hessian [[2, 1], [1, -2]], eigenvalues -sqrt(5) and sqrt(5),
    at every point; central differences are exact on a quadratic."""
    coords = np.linspace(-1, 1, 11)
    a, b = np.meshgrid(coords, coords, indexing="ij")
    lo, hi = landscape.principal_curvatures(a ** 2 + a * b - b ** 2, coords[1] - coords[0])
    assert lo.shape == (9, 9)
    np.testing.assert_allclose(lo, -np.sqrt(5), atol=1e-9)
    np.testing.assert_allclose(hi, np.sqrt(5), atol=1e-9)
    bowl = landscape.summarise(a ** 2 + b ** 2, coords, [coords ** 2])
    assert bowl["saddle_share"] == 0 and bowl["median_curvature_ratio"] == pytest.approx(1.0)
    assert bowl["basin_share"] == pytest.approx(np.mean(a ** 2 + b ** 2 <= 0.1))
    saddle = landscape.summarise(a ** 2 + a * b - b ** 2, coords, [-(coords ** 2)])
    assert saddle["saddle_share"] == 1 and saddle["median_curvature_ratio"] == pytest.approx(-1.0)
    assert saddle["concave_share_1d"] == 1


def test_curvatures_are_counted_only_near_the_minimum():
    """f = 5 (a^2 + b^2) - 2 (a^4 + b^4) is a bowl where f <= 1 (there |a|, |b| < 0.46 and
    f_aa = 10 - 24 a^2 > 0) but bends down far out (|a| > 0.65, where f > 1.7): the measures,
    taken within 1 of the minimum, see only the bowl."""
    coords = np.linspace(-1, 1, 21)
    a, b = np.meshgrid(coords, coords, indexing="ij")
    f = 5 * (a ** 2 + b ** 2) - 2 * (a ** 4 + b ** 4)
    lo, _ = landscape.principal_curvatures(f, coords[1] - coords[0])
    assert lo.min() < 0
    m = landscape.summarise(f, coords, [5 * coords ** 2 - 2 * coords ** 4])
    assert m["region_points"] == int((f[1:-1, 1:-1] <= 1).sum()) and m["saddle_share"] == 0
    assert m["median_curvature_ratio"] > 0.5 and m["concave_share_1d"] == 0
    # counted everywhere, it bends
    assert landscape.concave_share_1d(5 * coords ** 2 - 2 * coords ** 4) > 0


def test_concave_share_of_constructed_curves():
    t = np.linspace(-1, 1, 21)
    assert landscape.concave_share_1d(t ** 2) == 0
    assert landscape.concave_share_1d(-(t ** 2)) == 1
    assert landscape.concave_share_1d(np.abs(t)) == 0           # a kink bends up
    # f = cos(w t): f(t - h) - 2 f(t) + f(t + h) = 2 (cos(w h) - 1) f(t) < 0 exactly where f(t) > 0
    wave = np.cos(3 * np.pi * t)
    assert landscape.concave_share_1d(wave) == pytest.approx(np.mean(wave[1:-1] > 1e-9))
    # round-off is not a bend
    assert landscape.concave_share_1d(t ** 2 + 1e-9 * np.cos(50 * t)) == 0
    with pytest.raises(ValueError, match="at least 3"):
        landscape.concave_share_1d([1.0, 2.0])


def test_without_shortcuts_the_deeper_net_has_a_far_less_convex_landscape(small_net):
    """Li et al.'s Fig. 5 on small trained nets (``small_nets.py``: 3 epochs of the digits
    recipe, seed 0), on a coarse grid: 7 x 7 points over [-0.5, 0.5]^2 (filter-normalised
    directions of seeds 1 and 2, as ``landscape.run`` with seed 0), the loss on the first 64
    training digits. Near the minimum (``landscape.summarise``), plain-56 has many points of
    clearly negative curvature and ResNet-56 few; at depth 20 both have few. Plain-56 is the
    degraded net (75-85% training error at 3 epochs): as in the full run
    (results/landscape.md), its landscape is where SGD left it, far from a minimum.

    Share of points near the minimum with clearly negative curvature, plain / ResNet, on seeds
    100-104: depth 20: 0.000 / 0.000, 0.056 / 0.053, 0.000 / 0.000, 0.000 / 0.000, 0.000 / 0.000;
    depth 56: 0.647 / 0.048, 0.706 / 0.000, 0.429 / 0.000, 0.842 / 0.000, 0.571 / 0.048 (seed 0:
    0.095 / 0.000 and 0.600 / 0.100); 10 to 22 points near the minimum in each grid. On a 9 x 9 grid
    over [-1, 1]^2 the depth-56 gap is as clear (plain-56 0.67-1.0, ResNet-56 0-0.13; seed 0: 0.80
    and 0.25), but with only 5-15 points near the minimum."""
    x, y = next(iter(data.DataLoader(data.load_digits()[0], 64)))
    coords = np.linspace(-0.5, 0.5, 7)
    saddle = {}
    for name in ("plain20", "resnet20", "plain56", "resnet56"):
        model = small_net(name).model
        d, e = (landscape.filter_normalized_direction(model, seed=s) for s in (1, 2))
        grid = landscape.grid_2d(landscape.Landscape(model, x, y, [d, e]), coords)
        # the 1-D measure is not used here: the grid's own slice along d stands in for the curves
        m = landscape.summarise(grid, coords, [grid[:, len(coords) // 2]])
        assert m["region_points"] >= 5, (name, m)
        saddle[name] = m["saddle_share"]
    assert saddle["plain20"] <= 0.25 and saddle["resnet20"] <= 0.25, saddle
    assert saddle["resnet56"] <= 0.25, saddle
    assert saddle["plain56"] >= saddle["resnet56"] + 0.25, saddle


def test_landscape_command_help_bad_option_and_quick_run(tmp_path):
    """--help, a one-line error for an even --points, and a --quick run: the grid's centre is the
    trained net's loss, and the JSON's measures are those of its own grid."""
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "minires", "landscape", *argv],
                              capture_output=True, text=True,
                              env={**os.environ, "MINIRES_NUM_THREADS": "1"})

    help_ = run("--help")
    assert help_.returncode == 0
    assert all(o in help_.stdout for o in ("--points", "--from", "--quick", "--span"))
    bad = run("--points", "4")
    assert bad.returncode != 0 and "--points" in bad.stderr and "Traceback" not in bad.stderr
    done = run("--quick", "--no-progress", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "landscape.json").read_text())
    for png in ("landscape.png", "landscape_1d.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    coords = np.array(report["settings"]["coords"])
    for name in ("plain8", "resnet8"):
        r = report["nets"][name]
        grid = np.array(r["grid"])
        assert grid.shape == (len(coords), len(coords))
        curves = [np.array(c) for c in r["curves"]]
        assert r["measures"] == landscape.summarise(grid, coords, curves)
        assert r["measures"]["loss_at_origin"] == grid[len(coords) // 2, len(coords) // 2]


@pytest.mark.parametrize("span", ["1e30", "11", "inf", "nan", "0", "-1"])
def test_a_span_beyond_any_plot_is_one_usage_error(tmp_path, capsys, span):
    from minires.cli import main
    with pytest.raises(SystemExit) as e:
        main(["landscape", "--quick", "--span", span, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        "python -m minires landscape: error: argument --span: "), err
    assert not (tmp_path / "out").exists()


def test_contours_and_curves_plot_losses_that_overflowed(tmp_path):
    """Far from the minimum the loss can overflow: the finite losses are drawn, the rest left
    blank; a flat landscape is one band."""
    coords = np.linspace(-10, 10, 5)
    grid = np.random.default_rng(0).random((5, 5))
    grid[0, :], grid[:, -1] = np.inf, np.nan
    grids = {"plain8": grid, "resnet8": np.ones((5, 5)), "plain14": np.full((5, 5), np.inf)}
    assert landscape.plot_contours(grids, coords, tmp_path / "c.png") == tmp_path / "c.png"
    curves = {"plain8": [grid[0], grid[1]], "resnet8": [np.ones(5)]}
    landscape.plot_curves(curves, coords, tmp_path / "s.png")
    for png in ("c.png", "s.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
