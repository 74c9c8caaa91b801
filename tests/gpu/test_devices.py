"""Saving, loading and indexing across devices: what a NumPy-only test cannot show.

``load_state_dict`` of modules and of SGD takes host and device arrays alike and puts each value
on its parameter's device (it called ``np.asarray`` on them, which a device array refuses);
a step resumed from saved state on the GPU is the step not interrupted, bit for bit; and an
integer index out of bounds raises IndexError on the GPU too (CuPy wraps integer arrays around).
"""
import numpy as np
import pytest

import minires as mr
from minires import backend, functional as F, models, optim

pytestmark = pytest.mark.gpu


def net(device, seed=0):
    backend.manual_seed(seed)
    return models.cifar_resnet(8).to(device)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("source, target", [("gpu", "gpu"), ("gpu", "cpu"), ("cpu", "gpu")])
def test_module_load_state_dict_takes_host_and_device_arrays(gpu, source, target):
    src, dst = net(source, seed=1), net(target, seed=2)
    values = {n: p.data for n, p in src.named_parameters()}  # arrays on the source's device
    values.update({n: b for n, b in src.named_buffers()})
    dst.load_state_dict(values)
    same_state(dst, src)
    assert all(p.device == target for p in dst.parameters())
    p = next(dst.parameters())
    assert p.data is not next(src.parameters()).data  # a copy of its own


def test_module_load_state_dict_takes_tensors_and_keeps_dtype(gpu):
    src, dst = net("gpu", seed=1).double(), net("gpu", seed=2)
    dst.load_state_dict({n: p for n, p in src.named_parameters()}, strict=False)
    assert all(p.dtype == np.float32 for p in dst.parameters())


def step(model, opt, x, y):
    loss = F.softmax_cross_entropy(model(mr.Tensor(backend.to_device(x, model_device(model)))), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item())


def model_device(model):
    return next(model.parameters()).device


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 4)


@pytest.mark.parametrize("device_of_saved", ["gpu", "cpu"])
def test_resuming_sgd_on_the_gpu_is_exact(gpu, device_of_saved):
    model = net("gpu")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for s in range(2):
        step(model, opt, *batch(s))
    # the saved state: copies on the device, or on the host (what a checkpoint holds)
    if device_of_saved == "gpu":
        saved_model = {n: a.copy() for n, a in [(n, p.data) for n, p in model.named_parameters()]
                       + list(model.named_buffers())}
        saved_opt = {"lr": opt.lr, **{f"velocity.{i}": v.copy()
                                      for i, v in enumerate(opt.velocity)}}
    else:
        saved_model, saved_opt = model.state_dict(), opt.state_dict()
    uninterrupted = step(model, opt, *batch(2))
    resumed_model = net("gpu", seed=5)
    resumed_model.load_state_dict(saved_model)
    resumed_opt = optim.SGD(resumed_model.parameters(), lr=0.5, momentum=0.9,
                            weight_decay=1e-4)
    resumed_opt.load_state_dict(saved_opt)
    assert all(backend.is_gpu_array(v) for v in resumed_opt.velocity)
    assert step(resumed_model, resumed_opt, *batch(2)) == uninterrupted
    same_state(resumed_model, model)


def test_sgd_load_state_dict_refuses_a_wrong_shape_and_changes_nothing(gpu):
    model = net("gpu")
    opt = optim.SGD(model.parameters(), lr=0.1)
    state = {"lr": 0.3, "velocity.0": gpu.zeros((1, 2), gpu.float32)}
    with pytest.raises(ValueError, match="velocity.0 has shape"):
        opt.load_state_dict(state)
    assert opt.lr == 0.1 and opt.velocity[0] is None


@pytest.mark.parametrize("index", [3, -4, [0, 3], (slice(None), 2), (Ellipsis, [1, 2])])
def test_an_integer_index_out_of_bounds_is_an_index_error_on_the_gpu(gpu, index):
    t = mr.Tensor(np.arange(6.0).reshape(3, 2)).to("gpu")
    with pytest.raises(IndexError, match="out of bounds"):
        t[index]


def test_a_device_index_array_is_checked_too_and_valid_ones_work(gpu):
    t = mr.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True).to("gpu")
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        t[gpu.asarray(np.array([0, 3]))]
    y = t[gpu.asarray(np.array([2, -3, 2]))]
    assert y.numpy().tolist() == [[4, 5], [0, 1], [4, 5]]
    y.sum().backward()
