"""Sharpness through ``minires.experiments.sharpness``: the Hessian-vector product (a central
difference of two gradients) against exact Hessians, its error order, power iteration on
matrices of known spectrum, the training loss as a function of the weights, and the run."""
import json

import numpy as np
import pytest

from minires import Tensor, backend, gradcheck, models, nn
from minires.experiments import nets, sharpness


# -- an exact Hessian: softmax regression ----------------------------------------------------------

def _softmax_regression(d=30, k=10, n=40, seed=0):
    """A linear classifier (k x d weights + k biases = 310 parameters) on n random points, and
    the exact Hessian of its mean cross-entropy: H = (1/n) sum_i J_i^T (diag p_i - p_i p_i^T) J_i,
    J_i = d(logits_i)/d(params) (x_i and a 1 on the row of each class)."""
    rng = np.random.default_rng(seed)
    x, labels = rng.standard_normal((n, d)), rng.integers(0, k, n)
    backend.manual_seed(seed)
    model = nn.Linear(d, k, dtype=np.float64)
    model.weight.data = rng.standard_normal((k, d)) * 0.5
    model.bias.data = rng.standard_normal(k) * 0.5
    loss = sharpness.TrainingLoss(model, [(x[:15], labels[:15]), (x[15:], labels[15:])],
                                  training=None)
    z = x @ model.weight.data.T + model.bias.data
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    hessian = np.zeros((loss.size, loss.size))
    for i in range(n):
        jac = np.zeros((k, loss.size))  # parameters: weight (k, d) row by row, then bias (k,)
        for c in range(k):
            jac[c, c * d:(c + 1) * d] = x[i]
            jac[c, k * d + c] = 1
        hessian += jac.T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ jac / n
    return loss, hessian


def test_hvp_matches_the_exact_hessian():
    """Softmax regression, 310 parameters, float64, eps = 1e-4: H v from two gradients equals
    the closed-form H v to 1e-7 (relative), for random directions v."""
    loss, hessian = _softmax_regression()
    w = loss.weights()
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(w.size)
        v /= np.linalg.norm(v)
        np.testing.assert_allclose(sharpness.hvp(loss, w, v), hessian @ v, rtol=0,
                                   atol=1e-7 * np.linalg.norm(hessian @ v))


def test_hvp_error_is_second_order_in_eps():
    """The central difference's error is eps^2/6 times a fourth derivative: halving eps divides
    it by 4 (a forward difference (g(w + eps v) - g(w)) / eps would divide it by 2)."""
    loss, hessian = _softmax_regression()
    w = loss.weights()
    v = np.random.default_rng(2).standard_normal(w.size)
    v /= np.linalg.norm(v)
    errors = [np.linalg.norm(sharpness.hvp(loss, w, v, eps) - hessian @ v)
              for eps in (0.2, 0.1, 0.05)]
    for big, small in zip(errors, errors[1:]):
        assert 3.5 < big / small < 4.5, errors


def test_power_iteration_finds_the_exact_lambda_max():
    loss, hessian = _softmax_regression()
    exact = np.linalg.eigvalsh(hessian)[-1]
    r = sharpness.measure(loss, max_iters=500, tol=1e-10, seed=0)
    assert r["lambda_max"] == pytest.approx(exact, rel=1e-7)
    assert r["converged"] and not r["shifted"]
    assert r["loss"] == pytest.approx(loss(loss.weights()))


# -- a tiny residual net with batch norm: the Hessian column by column -----------------------------

def _tiny_resnet(seed=0):
    """One residual stage of width 4 on 1x4x4 images, 3 classes: 363 parameters; batch norm in
    train mode (batch statistics), float64, non-trivial BN affine parameters."""
    backend.manual_seed(seed)
    model = models.ResNet(models.BasicBlock, [1], num_classes=3, stem="cifar", shortcut="A",
                          in_channels=1, widths=(4,)).to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape)
            m.bias.data = rng.uniform(-0.3, 0.3, m.bias.shape)
    x = rng.standard_normal((8, 1, 4, 4))
    labels = rng.integers(0, 3, 8)
    return sharpness.TrainingLoss(model, [(x, labels)], training=True)


def test_hvp_matches_a_finite_difference_hessian_on_a_tiny_bn_resnet():
    """H built column by column, H[:, j] = (g(w + h e_j) - g(w - h e_j)) / 2h from exact
    (autograd) gradients, h = 1e-5: it is symmetric (as a Hessian must be), its diagonal agrees
    with second differences of the loss values alone (no gradients), and for random v the
    Hessian-vector product equals H v; power iteration gives its largest eigenvalue."""
    loss = _tiny_resnet()
    w = loss.weights()
    assert 300 <= w.size <= 400
    h = 1e-5
    eye = np.eye(w.size)
    cols = [(loss.gradient(w + h * e)[0] - loss.gradient(w - h * e)[0]) / (2 * h) for e in eye]
    hessian = np.array(cols).T
    scale = np.abs(hessian).max()
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-6 * scale)
    hessian = (hessian + hessian.T) / 2
    l0 = loss(w)
    for j in np.random.default_rng(3).choice(w.size, 8, replace=False):
        second = (loss(w + 1e-4 * eye[j]) - 2 * l0 + loss(w - 1e-4 * eye[j])) / 1e-8
        assert second == pytest.approx(hessian[j, j], rel=1e-3, abs=1e-4 * scale), j
    rng = np.random.default_rng(4)
    for _ in range(3):
        v = rng.standard_normal(w.size)
        v /= np.linalg.norm(v)
        np.testing.assert_allclose(sharpness.hvp(loss, w, v), hessian @ v, rtol=0,
                                   atol=1e-6 * np.linalg.norm(hessian @ v))
    eigenvalues = np.linalg.eigvalsh(hessian)
    r = sharpness.measure(loss, max_iters=200, tol=1e-8)
    assert r["lambda_max"] == pytest.approx(eigenvalues[-1], rel=1e-5)


def test_training_loss_leaves_the_model_as_it_was():
    """Gradients at other weights, in train mode: the model's weights, gradients, mode and
    running statistics are unchanged after."""
    loss = _tiny_resnet()
    model = loss.model.eval()
    before = model.state_dict()
    w = loss.weights()
    loss.gradient(w + 0.1)
    loss(w - 0.1)
    assert not any(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_training_loss_is_the_size_weighted_mean_of_its_batches():
    loss, _ = _softmax_regression()
    whole = sharpness.TrainingLoss(loss.model, [(np.concatenate([x.data for x, _ in
                                                                 loss.batches]),
                                                 np.concatenate([y for _, y in loss.batches]))],
                                   training=None)
    w = loss.weights()
    assert loss(w) == pytest.approx(whole(w), rel=1e-12)
    np.testing.assert_allclose(loss.gradient(w)[0], whole.gradient(w)[0], rtol=1e-10)


def test_trained_sharpness_checks_itself_with_loss_values():
    """On a smooth loss the second difference of the loss along the vector found is v.H v up to
    O(eps^2), and so is v.H v at 10 eps, eps and eps / 10 (the first a hundred times further
    off)."""
    loss, hessian = _softmax_regression()
    batches = [(x.data, labels) for x, labels in loss.batches]
    r = sharpness.trained_sharpness(loss.model, batches, max_iters=500, tol=1e-10)
    exact = np.linalg.eigvalsh(hessian)[-1]
    assert r["lambda_max"] == pytest.approx(exact, rel=1e-3)  # eps = 1e-2: an O(eps^2) bias
    assert r["second_difference"] == pytest.approx(exact, rel=1e-3)
    assert list(r["rayleigh_by_eps"]) == ["0.1", "0.01", "0.001"]
    far, at, near = r["rayleigh_by_eps"].values()
    assert near == pytest.approx(exact, rel=1e-3) and at == pytest.approx(exact, rel=1e-3)
    assert 10 * abs(at - exact) < abs(far - exact) < 0.1 * exact
    assert "vector" not in r


# -- power iteration -------------------------------------------------------------------------------

def _symmetric(eigenvalues, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T


def test_power_iteration_on_matrices_of_known_spectrum():
    """The largest-magnitude eigenvalue; every Rayleigh quotient at most lambda_max; a negative
    one of larger magnitude is found by power iteration and shifted away by top_eigenvalue."""
    a = _symmetric([5.0, 2.0, 1.0, -0.5, 0.1, 0.0])
    v0 = np.ones(6)
    r = sharpness.power_iteration(lambda v: a @ v, v0, max_iters=200, tol=1e-12)
    assert r["value"] == pytest.approx(5.0, rel=1e-10) and r["converged"]
    assert max(r["history"]) <= 5.0 + 1e-12
    b = _symmetric([3.0, 1.0, -7.0, 0.5], seed=1)
    assert sharpness.power_iteration(lambda v: b @ v, np.ones(4), max_iters=300,
                                     tol=1e-12)["value"] == pytest.approx(-7.0, rel=1e-8)
    top = sharpness.top_eigenvalue(lambda v: b @ v, np.ones(4), max_iters=300, tol=1e-12)
    assert top["value"] == pytest.approx(3.0, rel=1e-8) and top["shifted"]


def test_a_big_shift_does_not_stop_power_iteration_early():
    """lambda_max = 1 beside an eigenvalue -50: on A + 50 I every Rayleigh quotient is near 50
    and changes little per step, so a tolerance on it would stop at once, far from 1 + 50. The
    test is on A's eigenvalue; an estimate that is out of budget says so (converged False)."""
    a = _symmetric([1.0, 0.5, -50.0], seed=2)
    top = sharpness.top_eigenvalue(lambda v: a @ v, np.ones(3), max_iters=3000, tol=1e-6)
    assert top["shifted"] and top["converged"] and top["residual"] <= 1e-6
    assert top["value"] == pytest.approx(1.0, abs=1e-9)
    assert max(h for h in top["history"] if h > -40) <= 1.0 + 1e-9  # from below
    short = sharpness.top_eigenvalue(lambda v: a @ v, np.ones(3), max_iters=30, tol=1e-6)
    assert not short["converged"] and short["value"] <= 1.0 + 1e-9


def test_power_iteration_stops_on_the_residual_not_on_a_small_change():
    """Eigenvalues 1, 0.9 and 0.1, and a start mostly along the 0.9 eigenvector: theta creeps up
    by about 1e-4 per step at first, so "stop when theta changes by < 1e-3" would stop at
    once near 0.9, a tenth low. The residual ||A v - theta v|| is still about 0.005 |theta|
    there: with tol 1e-3 power iteration goes on to the top eigenvalue."""
    a = _symmetric([1.0, 0.9, 0.1], seed=3)
    q = np.linalg.eigh(a)[1]  # columns: eigenvectors of 0.1, 0.9, 1
    v0 = 0.05 * q[:, 2] + q[:, 1] + 0.01 * q[:, 0]
    r = sharpness.power_iteration(lambda v: a @ v, v0, max_iters=200, tol=1e-3)
    assert abs(r["history"][1] - r["history"][0]) < 2e-4 * r["history"][1]
    assert r["history"][0] == pytest.approx(0.9, abs=5e-3)
    assert r["converged"] and r["iterations"] > 10
    assert r["value"] == pytest.approx(1.0, abs=1e-3)


# -- gradient descent and the edge -----------------------------------------------------------------

def test_tanh_matches_numpy_and_its_gradient_checks():
    x = np.linspace(-6, 6, 25)
    t = Tensor(x, requires_grad=True)
    y = sharpness.Tanh()(t)
    y.sum().backward()
    np.testing.assert_allclose(y.data, np.tanh(x), atol=1e-15)
    np.testing.assert_allclose(t.grad, 1 - np.tanh(x) ** 2, atol=1e-15)
    upstream = Tensor(np.random.default_rng(0).standard_normal(x.shape))
    assert gradcheck(lambda a: (sharpness.Tanh()(a) * upstream).sum(),
                     Tensor(x / 3, requires_grad=True))


def _digits(n=64):
    train, _ = nets.datasets()
    return train.subset(np.arange(n))


def test_gradient_descent_takes_plain_full_batch_steps():
    """Three steps of w <- w - lr g on the whole set, by hand, give the losses the run records,
    and lambda_max is measured at steps 0 and 2."""
    train = _digits()
    r = sharpness.gradient_descent(train, 0.3, steps=3, every=2, width=8, seed=5, max_iters=3)
    backend.manual_seed(5)
    model = sharpness.mlp(8)
    loss = sharpness.TrainingLoss(model, [sharpness.full_batch(train)], sharpness.square_loss,
                                  training=None)
    w, losses = loss.weights(), []
    for _ in range(4):
        g, value = loss.gradient(w)
        losses.append(value)
        w = w - 0.3 * g
    np.testing.assert_allclose(r["loss"], losses, rtol=1e-12)
    assert r["steps"] == [0, 2] and len(r["lambda_max"]) == 2 and r["threshold"] == 2 / 0.3


def test_square_loss_is_half_the_mean_squared_distance_to_the_one_hot_targets():
    z = np.random.default_rng(0).standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    want = 0.5 * ((z - np.eye(3)[labels]) ** 2).sum(axis=1).mean()
    assert float(sharpness.square_loss(Tensor(z), labels).data) == pytest.approx(want)


def test_edge_summary_reads_reaching_and_hovering():
    record = {"lr": 0.2, "threshold": 10.0, "steps": [0, 10, 20, 30, 40, 50],
              "lambda_max": [4.0, 8.0, 9.5, 10.5, 9.8, 10.2], "loss": list(np.linspace(1, 0.5, 51)),
              "accuracy": [0.1] * 6, "diverged": False}
    s = sharpness.edge_summary(record)
    assert s["reached_step"] == 20 and s["reaches"] and s["hovers"]
    assert s["median_ratio"] == pytest.approx(np.median([0.95, 1.05, 0.98, 1.02]))
    assert s["loss_rises"] == 0.0
    record["lambda_max"][-2:] = [14.0, 15.0]  # climbs past 2/lr x 1.2: does not hover
    assert not sharpness.edge_summary(record)["hovers"]
    record["lambda_max"] = [4.0, 5.0, 6.0, 7.0, 7.5, 8.0]  # never reaches 0.9 x 2/lr
    s = sharpness.edge_summary(record)
    assert s["reached_step"] is None and not s["reaches"] and not s["hovers"]


def test_run_returns_the_report_it_wrote(tmp_path):
    lines = []
    report = sharpness.run(str(tmp_path), lrs=(0.5,), steps=4, every=2, width=8, depths=(8,),
                           recipe=nets.RECIPES["digits"].replace(epochs=1), images=16, limit=64,
                           max_iters=2, progress=False, log=lines.append)
    assert report == json.loads((tmp_path / "sharpness.json").read_text())
    assert set(report["trained"]) == {"plain8", "resnet8"}
    assert set(report["claims"]) == {"reaches", "hovers", "resnet_flatter"}
    for name in ("sharpness_edge.png", "sharpness_trained.png", "resnet8-seed0.npz"):
        assert (tmp_path / name).exists()
    assert str(tmp_path / "sharpness.json") in lines[-1]
    with pytest.raises(ValueError, match="parts"):
        sharpness.run(str(tmp_path), parts=("edges",))


def test_sharpness_command_quick_and_bad_options(tmp_path, capsys):
    from minires.cli import main
    assert main(["sharpness", "--quick", "--parts", "edge", "--steps", "6", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "sharpness.json").read_text())
    assert report["settings"]["edge"]["steps"] == 6  # an explicit option wins over --quick
    assert report["settings"]["edge"]["width"] == 16 and not report["trained"]
    assert "lambda_max" in capsys.readouterr().out
    for bad in (["--lrs", "0"], ["--steps", "-1"], ["--parts", "edges"], ["--eps", "nan"]):
        with pytest.raises(SystemExit) as e:
            main(["sharpness", *bad, "--out", str(tmp_path)])
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--from"):
        main(["sharpness", "--parts", "trained", "--from", str(tmp_path / "none"), "--out",
              str(tmp_path)])


def test_the_flatter_claim_needs_converged_positive_estimates():
    """An unconverged Rayleigh quotient is only a lower bound on lambda_max, so a ResNet's
    smaller estimate shows nothing unless every estimate converged (and is positive)."""
    def net(value, converged=True):
        return {"lambda_max": value, "converged": converged}

    good = {"plain20": {"0": net(4.0), "1": net(5.0)}, "resnet20": {"0": net(1.0), "1": net(2.0)}}
    assert sharpness.check_claims({}, good)["resnet_flatter"]["holds"]
    steeper = {**good, "resnet20": {"0": net(1.0), "1": net(6.0)}}
    assert not sharpness.check_claims({}, steeper)["resnet_flatter"]["holds"]
    for bad in (net(1.0, converged=False), net(-1.0)):
        unsure = {**good, "resnet20": {"0": bad, "1": net(2.0)}}
        claim = sharpness.check_claims({}, unsure)["resnet_flatter"]
        assert not claim["holds"] and claim["detail"].startswith("not shown: 1 estimate")
        assert "ResNet-20 seed 0" in claim["detail"]
