"""check_backward finds each planted bug (broken_ops.py), shrinks it to a small case, and says so.

Each bug is one a gradient check on a fixed input misses; each test also runs the op without its
bug (the control, which must pass) and, where it teaches something, the fixed-input gradcheck
that misses it. The report must name the check, the input, the largest error and the line that
reruns the case, and running that line must fail the same way.
"""
import numpy as np
import pytest
from hypothesis import strategies as st

import minires as mr
from minires import functional as F, testing as mt

import broken_ops as broken

EXAMPLES = 15


def failed(op, inputs=None, oracle=None, **options):
    report = mt.check_backward(op, inputs, oracle, max_examples=EXAMPLES,
                               raise_on_failure=False, **options)
    assert not report, f"{op.__name__} should have failed:\n{report}"
    return report


def passes(op, inputs=None, oracle=None, **options):
    report = mt.check_backward(op, inputs, oracle, max_examples=EXAMPLES, **options)
    assert report.examples > 1
    return report


def rerun(report, op, **names):
    """Run the report's rerun line; it must raise CheckFailed with the same check and case."""
    namespace = dict(check_backward=mt.check_backward, Case=mt.Case, Values=mt.Values, np=np,
                     F=F, **{op.__name__: op}, **names)
    with pytest.raises(mt.CheckFailed) as info:
        eval(report.rerun, namespace)
    again = info.value.report.failure
    assert (again.check, again.input) == (report.failure.check, report.failure.input)
    assert repr(again.case) == repr(report.failure.case)
    assert info.value.report.examples == 1  # exactly that case, no search


def leftover(case):
    """Rows and columns no window reaches: (H + 2p - kh) % s, (W + 2p - kw) % s."""
    (_, _, H, W), (_, _, kh, kw) = case.shapes()["x"], case.shapes()["w"]
    s, p = case.params["stride"], case.params["padding"]
    return (H + 2 * p - kh) % s, (W + 2 * p - kw) % s


# -- the four bugs that hide from a fixed input ----------------------------------------------------

def test_wrong_padding_for_stride_2_on_odd_sizes_is_found_and_shrunk():
    report = failed(broken.ConvTransposedDx, mt.conv_cases())
    f = report.failure
    assert (f.check, f.input) == ("gradient", "x")
    assert f.case.params["stride"] >= 2 and any(leftover(f.case))  # rows no window reached
    assert max(max(s) for s in f.case.shapes().values()) <= 3      # and small
    text = str(report)
    assert "the gradient of 'x' is wrong" in text and "worst at index" in text
    assert "rerun exactly this case" in text
    rerun(report, broken.ConvTransposedDx)


def test_a_fixed_input_gradcheck_misses_the_padding_bug_and_the_fix_passes():
    # ResNet's 3x3/2, padding 1 on a 7x7 image: (7 + 2 - 3) % 2 == 0, every row is reached.
    rng = np.random.default_rng(0)
    x = mr.Tensor(rng.standard_normal((1, 2, 7, 7)), requires_grad=True)
    w = mr.Tensor(rng.standard_normal((2, 2, 3, 3)), requires_grad=True)
    assert mr.gradcheck(lambda x, w: broken.ConvTransposedDx(2, 1)(x, w), x, w)
    passes(broken.fixed(broken.ConvTransposedDx), mt.conv_cases())


def test_backward_right_only_for_batch_1_is_found_with_two_images():
    report = failed(broken.BatchNormPerImage, mt.batch_norm_cases(training=True, ndim=4))
    f = report.failure
    assert (f.check, f.input) == ("gradient", "x")
    assert f.case.shapes()["x"][0] == 2
    rerun(report, broken.BatchNormPerImage)
    # one image: the fixed-input check passes
    x = mr.Tensor(np.random.default_rng(1).standard_normal((1, 2, 3, 3)), requires_grad=True)
    g, b = (mr.Tensor(np.array([1.5, -0.7]), requires_grad=True) for _ in range(2))
    op = lambda x, g, b: broken.BatchNormPerImage(True, None, None, 0.1, 1e-5)(x, g, b)
    assert mr.gradcheck(op, x, g, b)
    passes(broken.fixed(broken.BatchNormPerImage), mt.batch_norm_cases(training=True, ndim=4))


@st.composite
def square_linear_cases(draw):
    n, N = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    return mt.Case({"x": mt.Values((N, n), draw(mt.seeds)),
                    "w": mt.Values((n, n), draw(mt.seeds) + 1)})


def test_swapped_transpose_is_a_shape_error_or_a_wrong_square_gradient():
    report = failed(broken.LinearSwappedTranspose, mt.linear_cases())
    f = report.failure
    assert (f.check, f.input) == ("shapes", "w")
    assert "the gradient of 'w' has shape (1, 2), its input (2, 1)" in f.message
    rerun(report, broken.LinearSwappedTranspose)
    # square weights: the shapes agree, the numbers do not (unless w is 1x1)
    f = failed(broken.LinearSwappedTranspose, square_linear_cases()).failure
    assert (f.check, f.input) == ("gradient", "w") and f.case.shapes()["w"] == (2, 2)
    passes(broken.fixed(broken.LinearSwappedTranspose), mt.linear_cases())


def test_wrong_gradient_dtype_is_found_on_one_element():
    report = failed(broken.ReLUFloat64Gradient)
    f = report.failure
    assert (f.check, f.input) == ("dtype", "x") and f.case.shapes() == {"x": (1,)}
    assert "the gradient of 'x' is float64 for a float32 input" in f.message
    rerun(report, broken.ReLUFloat64Gradient)
    passes(broken.fixed(broken.ReLUFloat64Gradient))
    # every float64 check passes it
    passes(broken.ReLUFloat64Gradient, float32=False)


# -- the other checks ------------------------------------------------------------------------------

def test_code_that_assumes_contiguous_memory_fails_the_layout_check():
    report = failed(broken.ReLUContiguousOnly, mt.cases(x=mt.values(mt.nchw())))
    f = report.failure
    assert f.check == "layout" and f.input == "x"
    N, C = f.case.shapes()["x"][:2]
    assert N == 2 and C == 2  # with one image or one channel both layouts are the same memory
    assert "channel_major gy" in f.message
    passes(broken.fixed(broken.ReLUContiguousOnly), mt.cases(x=mt.values(mt.nchw())))


def test_an_oracle_finds_a_forward_that_its_backward_agrees_with():
    right = lambda x: np.where(x > 0, x, 0.1 * x)
    passes(broken.LeakyReLUWrongSide, mt.elementwise_cases(margin=0.05))  # no oracle: passes
    report = failed(broken.LeakyReLUWrongSide, mt.elementwise_cases(margin=0.05), right)
    f = report.failure
    assert f.check == "forward" and f.case.shapes() == {"x": (1,)}
    assert "largest error" in f.message and "at index (0,)" in f.message
    assert report.rerun.endswith(", oracle=oracle)")  # a lambda: the reader names their own


def offset_batch_norm_cases(low):
    """Batch-norm cases whose x lies in [low, low + 1]: a large mean against a small spread."""
    def shift(case):
        x = case.inputs["x"]
        inputs = dict(case.inputs, x=mt.Values(x.shape, x.seed, (low, low + 1), distinct=True))
        return mt.Case(inputs, **case.params)
    return mt.batch_norm_cases(training=True).map(shift)


def test_float32_cancellation_fails_the_float32_check_only():
    report = failed(broken.BatchNormOnePassVariance, offset_batch_norm_cases(10.0))
    assert report.failure.check == "float32" and "float32 (against float64)" in str(report)
    passes(broken.BatchNormOnePassVariance, offset_batch_norm_cases(10.0), float32=False)
    passes(broken.fixed(broken.BatchNormOnePassVariance), offset_batch_norm_cases(10.0))


def test_an_exception_is_reported_with_its_line_and_shrunk():
    f = failed(broken.ConvFailsOnOneByOne, mt.conv_cases()).failure
    assert f.check == "raised" and f.case.shapes()["x"][2] == 1
    assert "IndexError" in f.message and "broken_ops.py" in f.message


class TooFewGradients(mr.Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        return gy


class WritesIntoGy(mr.Function):
    def forward(self, a):
        return 2 * a

    def backward(self, gy):
        gy *= 2
        return gy


class WritesIntoItsInput(mr.Function):
    def forward(self, a):
        a += 0  # harmless value, but an in-place write all the same
        a[...] = a * 1.0
        a.flat[0] = a.flat[0] + 1.0
        return a.copy()

    def backward(self, gy):
        return gy


@pytest.mark.parametrize("op, words", [
    (TooFewGradients, "TooFewGradients.backward returned 1 gradient(s) for 2 inputs (a, b)"),
    (WritesIntoGy, "WritesIntoGy.backward wrote into gy"),
    (WritesIntoItsInput, "the op wrote into its input 'a'"),
])
def test_a_malformed_backward_is_named(op, words):
    f = failed(op).failure
    assert f.check == "shapes" and words in f.message


# -- how it runs -----------------------------------------------------------------------------------

def test_the_same_examples_every_run_and_others_for_a_seed():
    def record(seed):
        seen = []

        def op(x):
            seen.append(x.shape)
            return F.relu(x)
        mt.check_backward(op, max_examples=8, layouts=False, float32=False, seed=seed)
        return seen
    assert record(None) == record(None)
    assert record(3) == record(3) != record(None)


def test_one_case_is_checked_alone():
    case = mt.Case({"x": mt.Values((2, 3, 3, 3), seed=4), "w": mt.Values((2, 3, 3, 3), seed=5)},
                   stride=2, padding=1)
    report = mt.check_backward(F.conv2d, case)
    assert report.examples == 1 and report.slowest[1] is case


def test_a_function_of_tensors_and_its_inferred_inputs():
    report = mt.check_backward(lambda a, b: a * b + a, max_examples=5)
    assert report.examples == 5
    assert set(report.slowest[1].names) == {"a", "b"}


def test_an_op_can_carry_its_own_inputs_and_oracle():
    class Scale(mr.Function):
        check_inputs = mt.cases(x=mt.values(mt.nchw()), factor=st.sampled_from([0.5, 3.0]))
        check_oracle = staticmethod(lambda x, factor: factor * x)

        def __init__(self, factor):
            self.factor = factor

        def forward(self, x):
            return self.factor * x

        def backward(self, gy):
            return gy * self.factor

    assert "forward" in mt.check_backward(Scale, max_examples=5).checks


@pytest.mark.parametrize("thing, words", [
    (42, "42 is not an op"), (np.ones(3), "is not an op"), (dict, "is not an op")])
def test_something_that_is_not_an_op_is_refused_in_one_line(thing, words):
    with pytest.raises(TypeError, match=words):
        mt.check_backward(thing)


def test_a_function_instance_is_refused_the_class_is_asked_for():
    with pytest.raises(TypeError, match=r"pass the class ReLU, not an instance"):
        mt.check_backward(broken.fixed(broken.ReLUFloat64Gradient)())


def test_an_op_of_unknown_arity_asks_for_inputs():
    with pytest.raises(TypeError, match=r"cannot tell how many tensors .* pass inputs="):
        mt.check_backward(lambda *xs: xs[0])
