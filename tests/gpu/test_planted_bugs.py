"""GPU bugs a CPU can catch: each planted, one at a time, into the real code, and caught.

Each bug below is one a GPU user met or would meet first: code that is right on NumPy and wrong
on CuPy. A test plants it (monkeypatching the function where it would live), runs the GPU path
that reaches it, and expects the exception real CuPy raises there, with CuPy's message, or, for
the one bug that raises nothing on a GPU (an index that CuPy wraps around), the failure of the
check that specifies the behaviour. ``test_without_the_bug_the_same_path_runs`` runs every
trigger unplanted, so each failure is the bug's and no other.

The first eight are the issue's (#31); the NumPy-subclass stand-in this repository had before
caught one of them (the host labels). The strict stand-in (tests/fake_cupy) catches all nine,
and real CuPy raises the same errors (the stand-in copies its messages).
"""
import re
import types

import numpy as np
import pytest

import minires as mr
from minires import autograd, backend, functional as F, models, nn
from minires.experiments import paths
from minires.fast import columns, shifted_gemm
from minires.functional import basic, conv, loss
from minires.train import evaluation

pytestmark = pytest.mark.gpu


def small_net(device="gpu"):
    backend.manual_seed(0)
    return models.cifar_resnet(8).to(device)


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


# -- the bugs: plant(monkeypatch) ---------------------------------------------------------------

def as_strided_writeable(mp):
    """The CPU branch's read-only view, on the GPU branch too: CuPy's as_strided has no
    ``writeable``."""
    def strided_view(xp, a, shape, strides):
        return xp.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    mp.setattr(conv, "strided_view", strided_view)
    mp.setattr(columns, "strided_view", strided_view)


def buffer_view(mp):
    """The ndarray-constructor view (a tenth of as_strided's cost) without its ``xp is np`` guard:
    a device array has no buffer for NumPy to view."""
    original = conv.strided_view

    def strided_view(xp, a, shape, strides):
        if a.flags.c_contiguous:
            return np.ndarray(shape, a.dtype, a, 0, strides)
        return original(xp, a, shape, strides)
    mp.setattr(conv, "strided_view", strided_view)
    mp.setattr(columns, "strided_view", strided_view)


def host_into_device(mp):
    """load_state_dict copying each value into the parameter in place, as it comes (on the host)."""
    def load_state_dict(self, state_dict, strict=True):
        for name, p in self.named_parameters():
            p.data[...] = np.asarray(state_dict[name], dtype=p.dtype)
    mp.setattr(nn.Module, "load_state_dict", load_state_dict)


def host_labels_in_a_ufunc(mp):
    """evaluate() leaving the labels on the host: they meet the device's predictions in ==."""
    stays = types.SimpleNamespace(**{n: getattr(backend, n) for n in dir(backend)
                                     if not n.startswith("__")})
    stays.to_device = lambda a, device: (a if getattr(a, "dtype", None) is not None
                                         and a.dtype.kind in "iu" else backend.to_device(a, device))
    mp.setattr(evaluation, "backend", stays)


def maximum_reduce(mp):
    """The softmax's max written as ``xp.maximum.reduce``, which CuPy does not implement."""
    def forward(self, z):
        xp = backend.get_array_module(z)
        shifted = z - xp.maximum.reduce(z, axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        log_prob_target = shifted[xp.arange(z.shape[0]), self.labels] - xp.log(total[:, 0])
        self.prob = exp / total
        return -log_prob_target.mean()
    mp.setattr(loss.SoftmaxCrossEntropy, "forward", forward)


def device_scalar_as_list_index(mp):
    """The paths experiment drawing its random paths on the device: each drawn block number is a
    0-d device array, which no Python list takes as an index."""
    import cupy

    class DeviceDraws:
        def __init__(self, seed):
            cupy.random.seed(seed)

        def choice(self, n, size, replace):
            return cupy.random.choice(n, size=size, replace=replace)
    fake_np = types.SimpleNamespace(**{n: getattr(np, n) for n in ("mean", "array", "argmax")})
    fake_np.random = types.SimpleNamespace(default_rng=DeviceDraws)
    mp.setattr(paths, "np", fake_np)


def implicit_conversion(mp):
    """``as_numpy`` written as ``np.asarray`` (as load_state_dict and SGD.load_state_dict were):
    a device array converts to NumPy only through ``.get()``."""
    mp.setattr(backend, "as_numpy", np.asarray)


def unchecked_index(mp):
    """Tensor.__getitem__ trusting the array module to check the bounds: CuPy wraps integer
    arrays around instead, so x[[0, 3]] of three rows silently returns rows 0 and 0."""
    mp.setattr(autograd.Tensor, "__getitem__", lambda self, index: basic.getitem(self, index))


def cpu_branch_on_the_device(mp):
    """The shifted-GEMM convolution (NumPy calls, BLAS through ``.ctypes``) taken on the GPU, its
    device guard dropped: its first NumPy call on a device array converts it implicitly."""
    original = shifted_gemm.applies

    def applies(x, w, stride, padding):
        same = stride == 1 and w.shape[2] == w.shape[3] == 3 and padding == 1
        return same or original(x, w, stride, padding)
    mp.setattr(shifted_gemm, "applies", applies)


# -- the GPU paths that reach them ----------------------------------------------------------------

def reference_conv():
    x, w = np.ones((2, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32)
    with mr.reference_ops():
        F.conv2d(mr.Tensor(x).to("gpu"), mr.Tensor(w).to("gpu"), padding=1)


def load_cpu_weights_into_a_gpu_model():
    small_net("gpu").load_state_dict(small_net("cpu").state_dict())


def evaluate_on_the_gpu():
    x, y = batch()
    evaluation.evaluate(small_net("gpu"), [(x, y)], "gpu")


def loss_on_the_gpu():
    x, y = batch()
    F.softmax_cross_entropy(mr.Tensor(x.reshape(4, -1)[:, :10]).to("gpu"), y)


def measure_paths_on_the_gpu():
    x, y = batch()
    paths.measure(small_net("gpu"), backend.to_device(x, "gpu"), y, ks=[1], draws=1)


def save_a_gpu_model():
    small_net("gpu").state_dict()


def out_of_bounds_index_is_an_index_error():
    """The specification (tests/engine: an integer index out of bounds raises IndexError), on
    the GPU; raises AssertionError when the bug hides the error."""
    t = mr.Tensor(np.arange(6.0).reshape(3, 2)).to("gpu")
    try:
        t[[0, 3]]
    except IndexError:
        return
    raise AssertionError("t[[0, 3]] of a 3-row tensor on the GPU raised no IndexError")


def fast_conv_forward():
    x, w = np.ones((2, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32)
    with mr.reference_ops(False):
        F.conv2d(mr.Tensor(x).to("gpu"), mr.Tensor(w).to("gpu"), padding=1)


# name: (plant, trigger, exception, CuPy's message)
BUGS = {
    "as_strided(writeable=...) on the GPU branch": (
        as_strided_writeable, reference_conv, TypeError,
        "as_strided() got an unexpected keyword argument 'writeable'"),
    "an np.ndarray(buffer) view of a device array": (
        buffer_view, reference_conv, TypeError, "a bytes-like object is required, not 'ndarray'"),
    "a host array assigned into a device array": (
        host_into_device, load_cpu_weights_into_a_gpu_model, ValueError,
        "non-scalar numpy.ndarray cannot be used for fill"),
    "host labels in a device ufunc": (
        host_labels_in_a_ufunc, evaluate_on_the_gpu, TypeError,
        "Unsupported type <class 'numpy.ndarray'>"),
    "xp.maximum.reduce": (
        maximum_reduce, loss_on_the_gpu, NotImplementedError,
        "`cupy_maximum.reduce` is not supported yet"),
    "a device scalar used as a list index": (
        device_scalar_as_list_index, measure_paths_on_the_gpu, TypeError,
        "list indices must be integers or slices, not ndarray"),
    "implicit conversion of a device array to NumPy": (
        implicit_conversion, save_a_gpu_model, TypeError,
        "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
        "a NumPy array explicitly."),
    "an integer index out of bounds, wrapped around by CuPy": (
        unchecked_index, out_of_bounds_index_is_an_index_error, AssertionError,
        "raised no IndexError"),
    "a CPU-only convolution branch taken on the GPU": (
        cpu_branch_on_the_device, fast_conv_forward, TypeError,
        "Implicit conversion to a NumPy array is not allowed."),
}


@pytest.mark.parametrize("bug", BUGS)
def test_the_planted_bug_is_caught_with_cupys_error(gpu, monkeypatch, bug):
    plant, trigger, error, message = BUGS[bug]
    plant(monkeypatch)
    with pytest.raises(error, match=re.escape(message)):
        trigger()


@pytest.mark.parametrize("bug", BUGS)
def test_without_the_bug_the_same_path_runs(gpu, bug):
    BUGS[bug][1]()


@pytest.mark.parametrize("bug", ["as_strided(writeable=...) on the GPU branch",
                                 "an np.ndarray(buffer) view of a device array",
                                 "xp.maximum.reduce"])
def test_these_bugs_pass_on_the_cpu_which_is_why_they_need_the_gpu_path(monkeypatch, bug):
    BUGS[bug][0](monkeypatch)
    x, w = np.ones((2, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32)
    with mr.reference_ops():
        F.conv2d(mr.Tensor(x), mr.Tensor(w), padding=1)
    F.softmax_cross_entropy(mr.Tensor(np.ones((4, 10), np.float32)), np.arange(4))
