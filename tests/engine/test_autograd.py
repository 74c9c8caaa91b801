"""The autograd engine: graph building, backward order, accumulation, hooks, memory, errors."""
import gc
import sys
import weakref

import numpy as np
import pytest

import minires as mr
from minires import functional as F
from minires.autograd import Function


def t64(a, requires_grad=True):
    return mr.Tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# -- basic behaviour -------------------------------------------------------------------------------

def test_gradient_of_a_small_expression_matches_hand_derivation(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    x, y = t64(a), t64(b)
    z = (x * y + x.exp()).sum()  # dz/dx = y + exp(x), dz/dy = x
    z.backward()
    np.testing.assert_allclose(x.grad, b + np.exp(a))
    np.testing.assert_allclose(y.grad, a)


def test_tensor_used_twice_receives_the_sum_of_both_gradients():
    x = t64([3.0])
    (x * x).sum().backward()  # d(x^2)/dx = 2x
    assert x.grad[0] == 6.0
    y = t64([3.0])
    z = y + y
    (z * y).sum().backward()  # z*y = 2y^2 -> 4y
    assert y.grad[0] == 12.0


def test_leaf_grad_accumulates_across_backward_calls_until_reset():
    x = t64([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_leaf_grad_is_not_shared_with_another_leaf():
    # Add hands the same upstream array to both inputs; each leaf must own its grad array.
    a, b = t64([1.0]), t64([2.0])
    (a + b).sum().backward()
    a.grad += 10
    assert b.grad[0] == 1.0


def test_deep_chain_of_10000_ops_needs_no_recursion():
    limit = sys.getrecursionlimit()
    x = t64([1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(x.grad, [1.0001 ** 10_000], rtol=1e-9)


def test_diamond_graph_visits_each_node_once():
    x = t64([2.0])
    a = x * 3
    b = a * a  # uses a twice
    c = a + b
    c.sum().backward()  # c = 3x + 9x^2 -> 3 + 18x = 39
    assert x.grad[0] == 39.0


def test_topological_order_puts_every_consumer_before_its_producers():
    from minires.autograd import topological_order
    x = t64([2.0])
    a = x * 3
    b = a * a
    c = (a + b).sum()
    order = topological_order(c.grad_fn)
    assert len(order) == len(set(order)) == 4  # mul, mul, add, sum: each once
    position = {fn: i for i, fn in enumerate(order)}
    for fn in order:
        for p in fn.parents:
            if p in position:
                assert position[fn] < position[p]


def test_no_grad_records_nothing_and_detach_cuts_history():
    x = t64([1.0, 2.0])
    with mr.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    z = (x * 2).detach()
    assert z.grad_fn is None and not z.requires_grad
    np.testing.assert_array_equal(z.data, [2.0, 4.0])
    with mr.no_grad():
        with mr.enable_grad():
            w = x * 2
    assert w.requires_grad


def test_inputs_without_requires_grad_get_no_grad():
    x, c = t64([1.0]), t64([5.0], requires_grad=False)
    (x * c).sum().backward()
    assert x.grad[0] == 5.0 and c.grad is None


# -- hooks -----------------------------------------------------------------------------------------

def test_hook_on_intermediate_sees_its_gradient_and_can_replace_it():
    x = t64([1.0, 2.0])
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(g.copy()))
    handle = y.register_hook(lambda g: g * 0)  # replace the gradient flowing on
    (y * y).sum().backward(retain_graph=True)
    np.testing.assert_allclose(seen[0], 2 * 3 * np.array([1.0, 2.0]))  # d(y^2)/dy = 2y
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    handle.remove()
    x.grad = None
    (x * 3 * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_hook_on_leaf_runs_before_accumulation():
    x = t64([1.0])
    x.register_hook(lambda g: g * 10)
    (x * 2).sum().backward()
    assert x.grad[0] == 20.0


def test_retain_grad_keeps_intermediate_gradient():
    x = t64([1.0, -1.0])
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad, 2 * y.data)


# -- memory ----------------------------------------------------------------------------------------

def test_graph_is_freed_after_backward_without_the_cycle_collector():
    gc.disable()
    try:
        x = t64(np.ones(1000))
        y = (x * 2).exp()  # Exp keeps its output for backward
        saved = weakref.ref(y.grad_fn)
        kept = y.grad_fn.y
        probe = weakref.ref(kept) if hasattr(kept, "__weakref__") else None
        del kept
        y.sum().backward()
        assert y.grad_fn.parents is None  # released: no parents, no saved arrays
        assert not hasattr(y.grad_fn, "y")
        del y
        assert saved() is None  # freed by reference counting alone: no cycles
        if probe is not None:
            assert probe() is None
    finally:
        gc.enable()


def test_functions_do_not_keep_input_tensors_alive():
    # ReLU saves its output only; the conv output feeding it must not be pinned by the graph.
    x = t64(np.ones((2, 3)))
    h = x * 2
    href = weakref.ref(h)
    y = F.relu(h)
    del h
    assert href() is None
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * np.ones((2, 3)))


def test_second_backward_through_freed_graph_is_a_clear_error():
    x = t64([1.0])
    y = (x * 2).exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = t64([1.0])
    y = (x * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad[0] == 4.0


# -- errors ----------------------------------------------------------------------------------------

def test_backward_on_non_scalar_needs_grad_argument():
    x = t64([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"one-element.*shape \(2,\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), expected \(2,\)"):
        y.backward(np.ones(3))
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_backward_on_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mr.Tensor([1.0]).backward()


def test_shape_mismatch_names_both_shapes():
    a, b = t64(np.ones((2, 3))), t64(np.ones((4,)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        a + b
    with pytest.raises(ValueError, match="inner dimensions"):
        a @ t64(np.ones((2, 3)))
    with pytest.raises(ValueError, match="cannot reshape"):
        a.reshape(4, 2)


def test_integer_data_is_rejected_with_a_hint():
    with pytest.raises(TypeError, match="int64.*dtype='float32'"):
        mr.Tensor(np.arange(3))
    assert mr.Tensor(np.arange(3), dtype="float32").dtype == np.float32
    with pytest.raises(TypeError, match="dtype int64"):
        t64([1.0, 2.0, 3.0]) + np.arange(3)


def test_mixed_float_dtypes_are_not_promoted_silently():
    a = mr.Tensor(np.ones(2, dtype=np.float32))
    b = mr.Tensor(np.ones(2, dtype=np.float64))
    with pytest.raises(TypeError, match="float32.*float64"):
        a + b
    assert (a + b.float()).dtype == np.float32
    assert (a * 2.5).dtype == np.float32 and (2.5 / a).dtype == np.float32


def test_default_dtype_of_python_numbers_is_float32():
    assert mr.Tensor([1, 2, 3]).dtype == np.float32
    assert mr.Tensor(1.5).shape == ()


class _FakeGpuArray(np.ndarray):
    """An ndarray that reports itself as a CuPy array: the device check is exercised without a
    GPU."""


_FakeGpuArray.__module__ = "cupy._fake"


def test_ops_between_devices_raise_naming_both():
    a = mr.Tensor(np.ones(2))
    b = mr.Tensor._wrap(np.ones(2).view(_FakeGpuArray))
    assert b.device == "gpu"
    with pytest.raises(RuntimeError, match="cpu.*gpu.*to\\(device\\)"):
        a + b


def test_moving_to_gpu_without_cupy_is_a_clear_error():
    if mr.backend.gpu_available():
        pytest.skip("a GPU is present; the error path is for CPU-only machines")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is importable here (without a usable GPU); the message differs")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="CuPy"):
        mr.Tensor([1.0]).to("gpu")
    with pytest.raises(ValueError, match="device must be one of"):
        mr.Tensor([1.0]).to("tpu")


def test_to_device_and_back_is_differentiable(device):
    x = t64([1.0, 2.0])
    y = x.to(device)
    assert y.device == device
    (y * y).to("cpu").sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


# -- indexing and reductions: the conventions ------------------------------------------------------

def test_integer_array_indexing_accumulates_repeated_indices():
    x = t64(np.arange(4.0))
    x[np.array([0, 2, 2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0, 3, 0])
    y = t64(np.arange(6.0).reshape(2, 3))
    y[1, [0, 0]].sum().backward()
    np.testing.assert_array_equal(y.grad, [[0, 0, 0], [2, 0, 0]])


def test_max_shares_gradient_among_ties_and_maximum_gives_ties_to_first():
    x = t64([1.0, 3.0, 3.0])
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0, 0.5, 0.5])
    a, b = t64([1.0, 2.0]), t64([1.0, 1.0])
    a.maximum(b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1, 1])
    np.testing.assert_array_equal(b.grad, [0, 0])


def test_log_of_non_positive_values_is_an_error():
    with pytest.raises(ValueError, match="log"):
        t64([1.0, 0.0]).log()


# -- a broken backward is caught -------------------------------------------------------------------

class _WrongSquare(Function):
    """x**2 with a backward that forgets the factor 2."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.x


def test_gradcheck_catches_a_wrong_backward_and_says_where():
    xs = np.array([0.5, -1.5, 2.0])
    with pytest.raises(mr.GradcheckError) as info:
        mr.gradcheck(lambda x: _WrongSquare()(x), t64(xs), seed=0)
    # gradcheck contracts with v ~ N(0, 1) from seed 0: true dL/dx = 2 x v, the broken one x v.
    v = np.random.default_rng(0).standard_normal(3)
    worst = int(np.argmax(np.abs(xs * v)))
    msg = str(info.value)
    assert "input 0" in msg and "3 of 3 elements" in msg
    assert f"index ({worst},)" in msg
    assert f"numeric {2 * xs[worst] * v[worst]:.6g}"[:14] in msg
    assert f"analytic {xs[worst] * v[worst]:.6g}"[:15] in msg


def test_check_backward_finds_the_same_wrong_backward_over_generated_inputs():
    # minires.testing runs gradcheck on every example it generates; the smallest failing one is a
    # single element, and the report says which input and how to rerun it.
    from minires import testing as mt
    report = mt.check_backward(_WrongSquare, raise_on_failure=False, max_examples=5)
    assert not report and report.failure.check == "gradient" and report.failure.input == "x"
    assert report.failure.case.shapes() == {"x": (1,)}
    assert "check_backward(_WrongSquare, inputs=Case({'x': Values((1,), seed=0)}))" in str(report)


def test_gradcheck_passes_unused_inputs_and_rejects_float32():
    x, unused = t64([1.0, 2.0]), t64([3.0])
    assert mr.gradcheck(lambda x, u: x * x, x, unused)
    with pytest.raises(TypeError, match="float64"):
        mr.gradcheck(lambda x: x * x, mr.Tensor([1.0], requires_grad=True))


def test_second_backward_through_a_shared_freed_subgraph_is_the_retain_graph_error():
    """z1 and z2 share y's graph: z2 is new, but the part below it was freed by z1's backward."""
    x = mr.Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    (y * 3).sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        (y * 4).sum().backward()


def test_second_backward_through_a_shared_subgraph_works_with_retain_graph():
    x = mr.Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    (y * 3).sum().backward(retain_graph=True)
    (y * 4).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 14.0))  # d/dx (6x + 8x)


A = np.ones((1, 1, 3, 3), np.float32)


@pytest.mark.parametrize("call, kind", [
    (lambda: F.relu(A), "numpy.ndarray"),
    (lambda: F.relu([1.0, -1.0]), "list"),
    (lambda: F.relu(1.0), "float"),
    (lambda: F.conv2d(A, mr.Tensor(A)), "numpy.ndarray"),
    (lambda: F.conv2d(mr.Tensor(A), A), "numpy.ndarray"),
    (lambda: mr.nn.Conv2d(1, 1, 3)(A), "numpy.ndarray"),
    (lambda: mr.nn.BatchNorm2d(1)(np.ones((2, 1, 3, 3), np.float32)), "numpy.ndarray"),
    (lambda: mr.nn.Linear(3, 2)(np.ones((2, 3), np.float32)), "numpy.ndarray"),
    (lambda: F.softmax_cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1])),
     "numpy.ndarray"),
    (lambda: F.max_pool2d(A, 2), "numpy.ndarray"),
    (lambda: F.global_avg_pool2d(A), "numpy.ndarray")])
def test_an_op_given_a_non_tensor_says_what_to_pass(call, kind):
    with pytest.raises(TypeError,
                       match=rf"input \d is a {kind}, not a Tensor; wrap it: mr\.Tensor\("):
        call()


@pytest.mark.parametrize("a, b", [(1.0, 2.0), (np.ones(2, np.float32), 2.0),
                                  (2, np.ones(2, np.float32))])
def test_a_binary_op_without_any_tensor_says_to_wrap_one(a, b):
    with pytest.raises(TypeError, match=r"neither operand is a Tensor .*wrap one: mr\.Tensor"):
        F.add(a, b)
    with pytest.raises(TypeError, match="neither operand is a Tensor"):
        F.mul(a, b)
