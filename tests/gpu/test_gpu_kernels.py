"""The fused GPU kernels (minires/fast/gpu_kernels.py) compute their reference ops' functions.

As for the CPU twins (tests/fast/test_fast_equals_reference.py): one input through the reference
Function on the CPU and through the fused one on the GPU, outputs, gradients and running
statistics compared in float64 to 1e-12; in float32 the ReLU, the residual addition and SGD
must agree bit for bit (each is the same roundings in the same order: the kernels are compiled
without fused multiply-adds). On the CuPy stand-in the kernels' C source runs translated to
NumPy (tests/fake_cupy/cupy/_kernels.py), so these check the kernels' arithmetic and calling
convention; on a real GPU they check the compiled kernels.
"""
import contextlib

import numpy as np
import pytest

import minires as mr
from minires import backend, models, nn, optim
from minires.fast import gpu_kernels as gk
from minires.functional.activation import ReLU
from minires.functional.layout import channels_first_2d
from minires.functional.norm import BatchNorm
from opcheck import forward_backward, leaf, on_layout

pytestmark = pytest.mark.gpu
TOL = dict(rtol=1e-12, atol=1e-12)


def host(a):
    return None if a is None else backend.as_numpy(a)


def channel_major(a):
    """Is the NCHW array ``a`` a view of a contiguous (C, N, ...) array?"""
    return a.swapaxes(0, 1).flags.c_contiguous


def run(fn, arrays, device, layout="channel_major", gy=None, seed=0):
    tensors = [leaf(a, device, layout if a.ndim == 4 else "nchw") for a in arrays]
    y, grads, _ = forward_backward(lambda *ts: fn(*ts), tensors, gy=gy, seed=seed)
    return host(y), [host(g) for g in grads]


def bn_problem(N=4, C=3, H=5, W=6, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C, H, W)) * 3 + 1).astype(dtype)
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    stats = [rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)]
    return x, gamma, beta, stats


def batch_norm_pair(cls, training, stats, device):
    rm, rv = (backend.to_device(s.copy(), device) for s in stats)
    return cls(training, rm, rv, 0.1, 1e-5), (rm, rv)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["channel_major", "nchw"])
def test_fused_batch_norm_equals_the_reference(gpu, training, layout):
    x, gamma, beta, stats = bn_problem()
    ref, ref_stats = batch_norm_pair(BatchNorm, training, stats, "cpu")
    fused, fused_stats = batch_norm_pair(gk.GpuBatchNorm, training, stats, "gpu")
    want = run(lambda *t: ref(*t), [x, gamma, beta], "cpu", layout)
    got = run(lambda *t: fused(*t), [x, gamma, beta], "gpu", layout)
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        np.testing.assert_allclose(a, b, **TOL)
    for a, b in zip(fused_stats, ref_stats):
        np.testing.assert_allclose(host(a), b, **TOL)


@pytest.mark.parametrize("training", [True, False])
def test_fused_batch_norm_relu_equals_relu_of_the_reference_batch_norm(gpu, training):
    x, gamma, beta, stats = bn_problem(seed=1)
    ref, ref_stats = batch_norm_pair(BatchNorm, training, stats, "cpu")
    fused, fused_stats = batch_norm_pair(gk.GpuBatchNormReLU, training, stats, "gpu")
    want = run(lambda *t: ReLU()(ref(*t)), [x, gamma, beta], "cpu")
    got = run(lambda *t: fused(*t), [x, gamma, beta], "gpu")
    assert (want[0] == 0).any() and (want[0] > 0).any()  # the mask matters in this problem
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        np.testing.assert_allclose(a, b, **TOL)
    for a, b in zip(fused_stats, ref_stats):
        np.testing.assert_allclose(host(a), b, **TOL)


def test_relu_kernels_equal_the_reference_bit_for_bit(gpu):
    x = np.array([[-2, -0.0, 0, 1e-30, 3, np.inf, -np.inf, np.nan]], np.float32)
    gy = np.array([[1, 2, 3, 4, 5, 6, np.nan, 7]], np.float32)
    want = run(lambda t: ReLU()(t), [x], "cpu", gy=gy)
    got = run(lambda t: gk.GpuReLU()(t), [x], "gpu", gy=gy)
    np.testing.assert_array_equal(got[0], want[0])  # NaN where NaN, and -0 == 0
    np.testing.assert_array_equal(got[1][0], want[1][0])


def test_add_relu_is_relu_of_the_sum_in_the_inputs_layout(gpu):
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((3, 4, 5, 5)).astype(np.float32) for _ in range(2))
    want = run(lambda s, t: mr.functional.relu(s + t), [a, b], "cpu")
    ta, tb = leaf(a, "gpu", "channel_major"), leaf(b, "gpu", "channel_major")
    y = gk.add_relu(ta, tb)
    assert channel_major(y.data), "the fused residual addition lost the channel-major layout"
    got = run(lambda s, t: gk.add_relu(s, t), [a, b], "gpu")
    np.testing.assert_array_equal(got[0], want[0])
    for g, w in zip(got[1], want[1]):
        np.testing.assert_array_equal(g, w)


def test_fused_batch_norm_output_is_channel_major_even_from_an_nchw_input(gpu):
    x, gamma, beta, stats = bn_problem()
    fused, _ = batch_norm_pair(gk.GpuBatchNorm, True, stats, "gpu")
    y = fused(*[leaf(a, "gpu", "nchw") for a in (x, gamma, beta)])
    assert channel_major(y.data)
    assert channels_first_2d(y.data).base is not None  # a view, no copy for the next conv


@pytest.mark.parametrize("momentum, weight_decay, nesterov",
                         [(0.9, 1e-4, False), (0.9, 0.0, False), (0.9, 5e-4, True),
                          (0.0, 1e-4, False)])
def test_sgd_kernel_steps_equal_optim_sgd_bit_for_bit(gpu, momentum, weight_decay, nesterov):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3)]
    results = []
    for fused in (False, True):
        p = nn.Parameter(p0.copy()).to("gpu") if fused else nn.Parameter(p0.copy())
        opt = optim.SGD([p], lr=0.1, momentum=momentum, weight_decay=weight_decay,
                        nesterov=nesterov)
        for g in grads:
            p.grad = backend.to_device(g.copy(), p.device)
            gk.sgd_step(opt) if fused else opt.step()
        results.append((host(p.data), host(opt.velocity[0])))
    (p_ref, v_ref), (p_gpu, v_gpu) = results
    np.testing.assert_array_equal(p_gpu, p_ref)
    if momentum:
        np.testing.assert_array_equal(v_gpu, v_ref)
    else:
        assert v_gpu is None and v_ref is None


def _two_blocks(kind, shortcut, dtype=np.float64):
    mr.backend.manual_seed(0)
    if kind == "basic":
        make = lambda: models.BasicBlock(4, 8, stride=2, shortcut=shortcut)  # noqa: E731
    else:
        make = lambda: models.Bottleneck(4, 2, stride=2, shortcut=shortcut)  # noqa: E731
    a = make().to(dtype=dtype)
    b = make()
    b.load_state_dict(a.state_dict())
    return a.to("gpu", dtype), b.to("gpu", dtype)


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
@pytest.mark.parametrize("shortcut", ["A", "B", None])
def test_fused_blocks_compute_the_blocks_forward_and_gradients(gpu, kind, shortcut):
    if kind == "bottleneck" and shortcut == "A":
        pytest.skip("option A is the CIFAR BasicBlock's")
    module, fused = _two_blocks(kind, shortcut)
    assert gk.fusable(fused)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 6, 6))
    run_fused = gk.basic_block if kind == "basic" else gk.bottleneck
    want = run(lambda t: module(t), [x], "gpu", seed=5)
    got = run(lambda t: run_fused(fused, t), [x], "gpu", seed=5)
    np.testing.assert_allclose(got[0], want[0], **TOL)
    np.testing.assert_allclose(got[1][0], want[1][0], **TOL)
    for (name, p), (_, q) in zip(module.named_parameters(), fused.named_parameters()):
        np.testing.assert_allclose(host(q.grad), host(p.grad), err_msg=name, **TOL)
    for (name, p), (_, q) in zip(module.named_buffers(), fused.named_buffers()):
        np.testing.assert_allclose(host(q), host(p), err_msg=name, **TOL)


def test_a_hooked_or_unusual_block_is_not_fusable(gpu):
    _, block = _two_blocks("basic", "A")
    handle = block.bn1.register_forward_hook(lambda m, i, o: None)
    assert not gk.fusable(block)
    handle.remove()
    block.bn2 = nn.Identity()
    assert not gk.fusable(block)


def test_bn_relu_is_the_two_modules_off_the_gpu():
    bn = nn.BatchNorm2d(3)
    x = mr.Tensor(np.random.default_rng(6).standard_normal((2, 3, 4, 4)).astype(np.float32))
    np.testing.assert_array_equal(gk.bn_relu(bn, x).data,
                                  mr.functional.relu(nn.BatchNorm2d(3)(x)).data)


def test_fused_batch_norm_takes_fewer_launches_than_the_reference(stand_in):
    from cupy import _core as counts

    x, gamma, beta, stats = bn_problem(dtype=np.float32)
    arrays = [on_layout("gpu", a, "channel_major") for a in (x, gamma, beta)]
    gy = on_layout("gpu", np.ones(x.shape, np.float32), "channel_major")
    launches = {}
    for cls in (BatchNorm, gk.GpuBatchNorm):
        fn, _ = batch_norm_pair(cls, True, stats, "gpu")
        fn.needs_input_grad = (True, True, True)
        counts.reset_counts()
        fn.forward(*arrays)
        forward = sum(counts.KERNELS.values())
        fn.backward(gy)
        launches[cls.__name__] = (forward, sum(counts.KERNELS.values()) - forward)
    assert launches["GpuBatchNorm"] == (5, 3), launches
    assert sum(launches["GpuBatchNorm"]) * 3 < sum(launches["BatchNorm"]), launches


def test_a_training_step_with_the_guard_lines_is_the_step_without(gpu):
    """The guard lines the fused kernels need (benchmarks/gpu_calls.py ``after``, patched in):
    two SGD steps of a ResNet in float64, the same losses, weights and running statistics."""
    from benchmarks import gpu_calls

    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 10, 4)
    results = []
    for fused in (False, True):
        backend.manual_seed(0)
        model = models.cifar_resnet(8).to("gpu", np.float64)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        losses = []
        with gpu_calls.after() if fused else contextlib.nullcontext():
            for _ in range(2):
                loss = mr.functional.softmax_cross_entropy(
                    model(mr.Tensor(backend.to_device(x, "gpu"))), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.item()))
        results.append((losses, model.state_dict()))
    (l0, s0), (l1, s1) = results
    np.testing.assert_allclose(l1, l0, **TOL)
    for k in s0:
        np.testing.assert_allclose(s1[k], s0[k], err_msg=k, **TOL)


def test_a_uint8_batch_normalised_on_the_device_equals_subtract_mean(gpu):
    from minires.data.transforms import SubtractMean

    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    mean = rng.uniform(0, 255, (3, 6, 6)).astype(np.float32)
    got = gk.subtract_mean_uint8(backend.to_device(images, "gpu"), backend.to_device(mean, "gpu"))
    np.testing.assert_array_equal(host(got), SubtractMean(mean)(images))
    assert got.dtype == np.float32


def test_in_reference_mode_the_gpu_runs_the_reference_ops(gpu):
    a = leaf(np.ones((2, 3, 4, 4), np.float32), "gpu", "channel_major")
    assert gk.applies(a.data)
    with mr.reference_ops():
        assert not gk.applies(a.data)
        assert type(gk.add_relu(a, a).grad_fn) is ReLU
        assert type(gk.bn_relu(nn.BatchNorm2d(3).to("gpu"), a).grad_fn) is ReLU
