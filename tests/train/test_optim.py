"""SGD against its formula, worked by hand on scalars and unrolled on arrays; MultiStepLR's
milestones."""
import numpy as np
import pytest

import minires as mr
from minires import optim


def scalar(value=1.0):
    return mr.Tensor(np.array([value], dtype=np.float64), requires_grad=True)


def run(p, opt, grads):
    """Feed ``grads`` one step at a time; returns p after each step."""
    seen = []
    for g in grads:
        p.grad = np.array([g], dtype=np.float64)
        opt.step()
        seen.append(float(p.data[0]))
    return seen


# Worked on paper, p0 = 1 and gradient 1 at every step, lr 0.1:
#   momentum 0.9:  v = 1, 1.9, 2.71            p = 0.9, 0.71, 0.439
#   nesterov:      v = 1, 1.9; step g + 0.9 v = 1.9, 2.71       p = 0.81, 0.539
#   decay 0.1:     g + 0.1 p = 1.1, 1.089      p = 0.89, 0.7811
#   momentum 0.9 and decay 0.1:  d = 1.1, 1.089;  v = 1.1, 2.079;  p = 0.89, 0.6821
@pytest.mark.parametrize("kwargs, want", [
    ({"momentum": 0, "weight_decay": 0}, [0.9, 0.8, 0.7]),
    ({"momentum": 0.9, "weight_decay": 0}, [0.9, 0.71, 0.439]),
    ({"momentum": 0.9, "weight_decay": 0, "nesterov": True}, [0.81, 0.539]),
    ({"momentum": 0, "weight_decay": 0.1}, [0.89, 0.7811]),
    ({"momentum": 0.9, "weight_decay": 0.1}, [0.89, 0.6821]),
])
def test_sgd_steps_worked_by_hand(kwargs, want):
    p = scalar()
    got = run(p, optim.SGD([p], lr=0.1, **kwargs), [1.0] * len(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("momentum, weight_decay, nesterov", [
    (0.0, 0.0, False), (0.9, 0.0, False), (0.9, 1e-2, False), (0.9, 1e-2, True), (0.5, 0.0, True),
    (0.0, 1e-2, False)])
def test_sgd_matches_the_formula_over_several_steps(momentum, weight_decay, nesterov, rng):
    """PyTorch's SGD (dampening 0) unrolled: d = g + wd p; v = d first, then m v + d;
    p -= lr (d + m v or v)."""
    p0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    lr = 0.05
    p = mr.Tensor(p0.copy(), requires_grad=True)
    opt = optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    want, v = p0.copy(), None
    for g in grads:
        p.grad = g.copy()
        opt.step()
        d = g + weight_decay * want
        v = d if v is None else momentum * v + d
        want = want - lr * ((d + momentum * v) if nesterov else v)
        np.testing.assert_allclose(p.data, want, rtol=1e-12, atol=1e-14)


def test_sgd_leaves_parameters_without_gradient_alone():
    a, b = scalar(1.0), scalar(2.0)
    opt = optim.SGD([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert float(b.data[0]) == 2.0 and opt.velocity[1] is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_sgd_trains_float32_parameters_in_float32(rng):
    p = mr.Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    for _ in range(2):
        p.grad = rng.standard_normal(5).astype(np.float32)
        opt.step()
    assert p.data.dtype == np.float32 and opt.velocity[0].dtype == np.float32


def test_sgd_state_dict_resumes_the_same_steps(rng):
    p0, grads = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(5)]
    a = mr.Tensor(p0.copy(), requires_grad=True)
    opt_a = optim.SGD([a], lr=0.1, nesterov=True)
    for g in grads[:2]:
        a.grad = g.copy()
        opt_a.step()
    state = opt_a.state_dict()
    b = mr.Tensor(a.data.copy(), requires_grad=True)
    opt_b = optim.SGD([b], lr=0.5, nesterov=True)  # its lr is replaced by the saved one
    opt_b.load_state_dict(state)
    for g in grads[2:]:
        a.grad, b.grad = g.copy(), g.copy()
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0}, "lr"), ({"lr": -0.1}, "lr"), ({"lr": 0.1, "momentum": 1.0}, "momentum"),
    ({"lr": 0.1, "momentum": -0.1}, "momentum"),
    ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay"),
    ({"lr": 0.1, "momentum": 0, "nesterov": True}, "nesterov")])
def test_sgd_rejects_bad_arguments_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD([scalar()], **kwargs)


def test_sgd_rejects_an_empty_parameter_list():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def test_multistep_lr_divides_at_each_milestone():
    opt = optim.SGD([scalar()], lr=0.1)
    sched = optim.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    lrs = [opt.lr]
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    # epochs 0, 1 at 0.1; from epoch 2 on 0.01; from epoch 4 on 0.001 (PyTorch's convention)
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-12)


def test_multistep_lr_state_dict_restores_the_epoch():
    opt = optim.SGD([scalar()], lr=0.1)
    sched = optim.MultiStepLR(opt, [1, 3])
    for _ in range(3):
        sched.step()
    other_opt = optim.SGD([scalar()], lr=0.1)
    other = optim.MultiStepLR(other_opt, [1, 3])
    other.load_state_dict(sched.state_dict())
    assert other_opt.lr == pytest.approx(0.001)
    sched.step(), other.step()
    assert other_opt.lr == opt.lr


def test_multistep_lr_rejects_decreasing_milestones():
    with pytest.raises(ValueError, match="milestones"):
        optim.MultiStepLR(optim.SGD([scalar()], lr=0.1), [5, 2])
