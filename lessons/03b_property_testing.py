# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3b: Property-testing backprop
#
# Lessons 1 to 3 checked every backward with `mr.gradcheck` on one small input. That check is
# exact about the input it is given and blind to every other one. A backward can be right on a
# 4x4 image and wrong on a 3x3 one; right for a batch of one image and wrong for two; right in
# float64 and quietly wrong in float32, the dtype training runs in. A fixed example is exactly
# where such bugs hide, because the person who wrote the bug also chose the example.
#
# *Property-based testing* turns the check around: state what must hold for every input (the
# backward agrees with central differences; the output agrees with a slow, obvious oracle), let a
# library generate the inputs, and when one fails, let it *shrink* the failure to the smallest
# input that still fails. `minires.testing` does this for ops, with the
# [hypothesis](https://hypothesis.readthedocs.io) library underneath.
#
# **By the end you will be able to**
#
# 1. check an op of your own with `check_backward`, over generated shapes, strides, paddings and
#    values, in both dtypes and both memory layouts;
# 2. read its report: which check failed, for which input, the largest error and where, the
#    smallest failing case, and the one line that reruns exactly that case;
# 3. say why a fixed-input gradcheck missed each of three planted bugs, and which check found it;
# 4. use four metamorphic properties (convolution's linearity and adjoint, batch norm's
#    invariance, ReLU's idempotence) and say what each can and cannot catch;
# 5. run the same checks from the command line: `python -m minires check my_ops.py:MyOp`.
#
# `minires.testing` needs hypothesis, which is a test-time dependency of minires:
# `pip install -e '.[dev]'` installs it. Open as a notebook with
# `jupytext --to notebook lessons/03b_property_testing.py`, run cell by cell in VS Code, or run
# `python lessons/03b_property_testing.py`. Run time (full run: 4 s, quick: 3 s), on 2 CPU cores;
# `MINIRES_QUICK=1` is the quick run, with fewer generated examples per check.

# %%
import contextlib
import io
import os
import textwrap

import numpy as np

import minires as mr
from minires import functional as F, testing as mt
from minires.cli import main as minires_command
from lesson_setup import OUT, QUICK  # quick mode and the output folder, see lesson_setup.py

EXAMPLES = 10 if QUICK else mt.MAX_EXAMPLES  # generated examples per check


def shrinking(report):
    """The failing cases hypothesis went through, the first it found to the smallest."""
    steps = []
    for case in report.failing:
        if not steps or steps[-1] != case.describe():
            steps.append(case.describe())
    return steps


# %% [markdown]
# ## 1. An op of our own, checked over many inputs
#
# Here is a leaky ReLU, y = x for x > 0 and y = slope * x otherwise, written as lesson 1 wrote
# its cube: a `Function` with a forward and a backward on plain arrays.

# %%
class LeakyReLU(mr.Function):
    def __init__(self, slope=0.1):
        self.slope = slope

    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, self.slope * x)

    def backward(self, gy):
        return gy * np.where(self.positive, 1, self.slope).astype(gy.dtype)


report = mt.check_backward(LeakyReLU, max_examples=EXAMPLES,
                           oracle=lambda x: np.maximum(x, 0.1 * x))
print(report)

# %% [markdown]
# One call, and for every generated example it checked:
#
# * **shapes**: `backward` returns one gradient per input, each shaped like its input, and writes
#   neither into `gy` nor into the inputs;
# * **forward**: the output equals the *oracle*, a slow or obvious NumPy version we trust;
# * **layout**: 4-D inputs laid out channel-major (lesson 2, section 6: the memory layout minires's
#   convolutions hand to the next layer) give the same numbers as NCHW ones;
# * **float32**: float32 inputs give float32 outputs and gradients, equal to the float64 ones up
#   to float32's rounding;
# * **gradient**: every input's gradient equals central differences in float64, with a random
#   upstream gradient (this part is `mr.gradcheck` itself).
#
# Where do the examples come from? The op takes one tensor, so `check_backward` drew arrays of
# one to four axes of one to four elements each. Each example is a `Case`: the shapes, plus a
# *seed* for the numbers, so that hypothesis searches and shrinks over a handful of integers
# rather than thousands of floats. The examples are the same on every run (hypothesis is
# derandomized, and keeps no database), so a check that passed yesterday passes today;
# `seed=` asks for other ones. For ops that take more than tensors, `minires.testing` has
# strategies that draw whole problems: `conv_cases()` draws valid convolutions (N, C, H, W,
# kernel, stride, padding), including the awkward ones: 1x1 images, odd sizes with stride 2,
# kernels as large as the padded input. `mt.sample` shows what a strategy draws: hypothesis
# starts from the simplest example and then spreads out.

# %%
print("the first convolutions conv_cases() draws:")
for case in mt.sample(mt.conv_cases(), 6):
    print("   ", case.describe())

# %% [markdown]
# ## 2. A bug that shows only when the batch has two images
#
# Batch norm subtracts each channel's mean over the batch and all positions (lesson 3). Take only
# that half: y = x - mean(x), the mean over (N, H, W) for each channel. Its backward is
# dx = g - mean(g), over the same axes. Below is a version with a planted slip, the kind one
# makes when writing code for one image: the mean is over (H, W) only. With one image in the
# batch, (H, W) *are* all the positions, and the slip changes nothing.

# %%
class Centre(mr.Function):
    """y = x - mean of x over (N, H, W), per channel; x is (N, C, H, W)."""

    def forward(self, x):
        return x - x.mean(axis=(0, 2, 3), keepdims=True)

    def backward(self, gy):
        return gy - gy.mean(axis=(0, 2, 3), keepdims=True)


class CentreOneImage(Centre):
    def backward(self, gy):
        return gy - gy.mean(axis=(2, 3), keepdims=True)  # forgot the batch axis


x1 = mr.Tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)), requires_grad=True)
print("gradcheck on one 4x4 image:", mr.gradcheck(lambda x: CentreOneImage()(x), x1))

images = mt.cases(x=mt.values(mt.nchw()))  # (N, C, H, W) batches of one to three images
report = mt.check_backward(CentreOneImage, images, max_examples=EXAMPLES,
                           raise_on_failure=False)
print(report)

# %% [markdown]
# Read the report from the top. *Which check* failed (the gradient) and *for which input* ('x').
# The *smallest failing case* is two images of one channel and one pixel: the smallest input
# where the mean over the batch and the mean over each image differ. gradcheck's line says how
# many elements disagree, and the *largest error and where*: both elements, by about a tenth.
# With one pixel per image the buggy dx is g - g = 0, while the true one is g - mean(g). The last
# line *reruns exactly this case* (no search), for a debugger or a print statement.
#
# Hypothesis found the bug on a larger batch first, then shrank it step by step, keeping each
# smaller case that still failed:

# %%
for step in shrinking(report):
    print("   ", step)
assert report.failure.case.shapes()["x"][0] == 2
mt.check_backward(Centre, images, max_examples=EXAMPLES)  # and the op without the slip passes
print("Centre: passed")

# %% [markdown]
# ## 3. A bug that shows only on odd sizes
#
# A 2x2 average pool with stride 2 spreads each output's gradient over its window: dx is dy
# repeated twice along both axes, divided by 4. When H is odd, the last row is in no window, the
# repeated dy is one row short, and the missing row must be filled with zeros *at the bottom*.
# The version below pads on the wrong side. A check on a 4x4 image never meets the problem.

# %%
class AvgPool2x2WrongPad(mr.Function):
    """2x2 average pooling, stride 2: (N, C, H, W) -> (N, C, H // 2, W // 2)."""

    def forward(self, x):
        self.in_shape = x.shape
        N, C, H, W = x.shape
        x = x[:, :, :H // 2 * 2, :W // 2 * 2]
        return (x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2]
                + x[:, :, 1::2, 1::2]) / 4

    def backward(self, gy):
        H, W = self.in_shape[2:]
        g = np.repeat(np.repeat(gy / 4, 2, axis=2), 2, axis=3)
        rows, cols = H - g.shape[2], W - g.shape[3]  # 1 when the size is odd
        return np.pad(g, ((0, 0), (0, 0), (rows, 0), (cols, 0)))  # should be (0, rows), (0, cols)


x4 = mr.Tensor(np.random.default_rng(1).standard_normal((2, 3, 4, 4)), requires_grad=True)
print("gradcheck on a 4x4 image:", mr.gradcheck(lambda x: AvgPool2x2WrongPad()(x), x4))

pool_inputs = mt.cases(x=mt.values(mt.nchw(min_size=2)))
report = mt.check_backward(AvgPool2x2WrongPad, pool_inputs, max_examples=EXAMPLES,
                           oracle=lambda x: mt.avg_pool2d_formula(x, 2), raise_on_failure=False)
print(report.summary(), "| smallest case:", report.failure.case.describe())
print(report.failure.message)

# %% [markdown]
# The smallest case has a side of 3 (or 2 and 3): an odd size, where one row or column is in
# no window. The gradcheck message points at the element with the largest error: a pixel of the
# uncovered row or column (numeric 0: it changes nothing) or one of its neighbours. Exercise 3
# asks for the fix.
#
# ## 4. A bug no float64 check can see
#
# The leaky ReLU again, with its backward written the obvious way:
# `gy * np.where(x > 0, 1.0, slope)`. NumPy turns the Python floats into a float64 array, so a
# float32 input gets a float64 gradient. Every value is right. gradcheck runs in float64 (it has
# to: lesson 1 showed central differences need it), so it passes. In a float32 network the rest
# of the backward would then run in float64: twice the memory, half the speed, and every
# gradient of a parameter cast back at the end.

# %%
class LeakyReLUFloat64(LeakyReLU):
    def backward(self, gy):
        return gy * np.where(self.positive, 1.0, self.slope)


x5 = mr.Tensor(np.random.default_rng(2).standard_normal((3, 4)), requires_grad=True)
print("gradcheck:", mr.gradcheck(lambda x: LeakyReLUFloat64()(x), x5))
report = mt.check_backward(LeakyReLUFloat64, max_examples=EXAMPLES, raise_on_failure=False)
print(report)
assert report.failure.check == "dtype"

# %% [markdown]
# The smallest case is a single number: the dtype is wrong whatever the shape. The hint says how
# to mend it: build the gradient from `gy` (its dtype is the input's) or cast it.
#
# ## 5. Metamorphic properties: checks without an oracle
#
# An oracle is the strongest forward check, but somebody has to write it. Some properties need
# none: they relate the op to *itself* on transformed inputs, a *metamorphic* relation. Each is
# a ready check in `minires.testing`. Each also has blind spots, and knowing them matters as
# much as knowing the property.
#
# **Linearity.** A convolution is linear in x and in w:
# conv(a x1 + c x2, w) = a conv(x1, w) + c conv(x2, w). `check_linearity` tests it with
# a + c != 1, so any constant that sneaks in shows: a bias, or padding with a value other than 0.
# It *cannot* see a wrong linear map. The convolution that flips its kernel (the mathematician's
# convolution, not the cross-correlation every framework computes) is linear, and wrong.

# %%
def conv_padded_with_ones(x, w, stride=1, padding=0):
    xp = np.pad(x.data, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2), constant_values=1.0)
    return F.conv2d(mr.Tensor(xp), w, stride=stride)


def conv_flipped(x, w, b=None, stride=1, padding=0):
    return F.conv2d(x, w[:, :, ::-1, ::-1], b, stride=stride, padding=padding)


print(mt.check_linearity(F.conv2d, wrt=("x", "w"), max_examples=EXAMPLES).summary(),
      " <- F.conv2d")
r = mt.check_linearity(conv_padded_with_ones, max_examples=EXAMPLES, raise_on_failure=False)
print(r.summary(), " <- padded with ones; smallest case:", r.failure.case.describe())
print(mt.check_linearity(conv_flipped, wrt=("x", "w"), max_examples=EXAMPLES).summary(),
      " <- flipped kernel: linear, so linearity cannot tell")
r = mt.check_backward(conv_flipped, mt.conv_cases(), oracle=mt.conv2d_formula,
                      max_examples=EXAMPLES, raise_on_failure=False)
print(r.summary(), " <- ...the oracle can; smallest case:", r.failure.case.describe())

# %% [markdown]
# **The adjoint.** For an op linear in x, the backward is its *transpose*: for every x and v,
# <conv(x), v> = <x, conv^T(v)>. This is the identity behind col2im (lesson 2): im2col copies
# each pixel into several columns, so its transpose must *add* the copies back. `check_adjoint`
# tests it with the op's own backward as conv^T (or with a transposed op you pass, such as
# `mt.conv_transpose2d`). It needs no finite differences, so it is exact and cheap on inputs of
# any size. It catches a backward that is not the transpose of its forward: below, overlapping
# windows *assigned* instead of summed. It *cannot* catch a forward and backward that are wrong
# together: the flipped convolution's backward is the exact transpose of its wrong forward.

# %%
from minires.functional.conv import Conv2d, check_geometry, im2col  # noqa: E402
from minires.functional.layout import channels_first_2d  # noqa: E402


def col2im_assigning(cols, shape, kh, kw, stride, padding):
    """col2im with '=' where it needs '+=': overlapping windows overwrite each other."""
    N, C, H, W = shape
    OH, OW = check_geometry("col2im", shape, kh, kw, stride, padding)
    out = np.zeros((C, N, H + 2 * padding, W + 2 * padding))
    blocks = cols.reshape(C, kh, kw, N, OH, OW)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] = blocks[:, i, j]
    return out[:, :, padding:padding + H, padding:padding + W].swapaxes(0, 1)


class ConvAssigning(Conv2d):
    def backward(self, gy):
        C_out, _, kh, kw = self.w.shape
        g = channels_first_2d(gy)
        gw = (g @ im2col(self.x, kh, kw, self.stride, self.padding).T).reshape(self.w.shape)
        cols = self.w.reshape(C_out, -1).T @ g
        return col2im_assigning(cols, self.x.shape, kh, kw, self.stride, self.padding), gw


print(mt.check_adjoint(F.conv2d, max_examples=EXAMPLES).summary(), " <- F.conv2d's backward")
print(mt.check_adjoint(F.conv2d, mt.conv_transpose2d, max_examples=EXAMPLES).summary(),
      " <- col2im(W^T v)")
r = mt.check_adjoint(ConvAssigning, max_examples=EXAMPLES, raise_on_failure=False)
print(r.summary(), " <- overlaps assigned; smallest case:", r.failure.case.describe())
print(mt.check_adjoint(conv_flipped, max_examples=EXAMPLES).summary(),
      " <- flipped kernel: wrong forward, matching backward")

# %% [markdown]
# **Batch norm's invariance.** In training mode batch norm subtracts each channel's mean and
# divides by its standard deviation, so shifting a channel by b and scaling it by a > 0 changes
# nothing: BN(a x + b) = BN(x). (Exactly with eps = 0, which the check's default inputs use; with
# eps > 0 to about eps / var.) It catches statistics over the wrong axes or a mean not
# subtracted. It *cannot* see the unbiased variance used to normalise: that only rescales xhat by
# a constant, sqrt((M - 1) / M), and a constant survives the shift and the scale. The oracle sees
# it. Nor does it say anything about eval mode, which normalises with fixed statistics.

# %%
def bn_without_mean(x, weight, bias, running_mean, running_var, training, momentum, eps):
    m = channels_first_2d(x.data)
    y = m / np.sqrt(m.var(axis=1, keepdims=True) + eps)
    return mr.Tensor((y * weight.data[:, None] + bias.data[:, None]).reshape(
        (x.shape[1], x.shape[0]) + x.shape[2:]).swapaxes(0, 1))


def bn_unbiased(x, weight, bias, running_mean, running_var, training, momentum, eps):
    M = x.size // x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) * (x - mu)).sum(axis=axes, keepdims=True) / (M - 1)
    view = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mu) / (var + eps) ** 0.5 * weight.reshape(view) + bias.reshape(view)


print(mt.check_batch_norm_invariance(F.batch_norm, max_examples=EXAMPLES).summary(),
      " <- F.batch_norm")
r = mt.check_batch_norm_invariance(bn_without_mean, max_examples=EXAMPLES,
                                   raise_on_failure=False)
print(r.summary(), " <- mean not subtracted")
print(mt.check_batch_norm_invariance(bn_unbiased, max_examples=EXAMPLES).summary(),
      " <- unbiased variance: invariant all the same")
r = mt.check_backward(bn_unbiased, mt.batch_norm_cases(training=True), mt.batch_norm_formula,
                      max_examples=EXAMPLES, raise_on_failure=False)
print(r.summary(), " <- ...the oracle is not fooled")

# %% [markdown]
# **ReLU's idempotence.** ReLU projects onto x >= 0, so applying it twice changes nothing:
# relu(relu(x)) = relu(x). A leaky ReLU is not idempotent (its negative outputs shrink again),
# so a slope that should be 0 shows at once. The property *cannot* tell ReLU from other
# idempotent maps: the identity and the zero map pass it too. A property narrows the space of
# correct ops; only an oracle pins one down.

# %%
for name, op in (("F.relu", F.relu), ("leaky", lambda x: x.maximum(0.1 * x)),
                 ("identity", lambda x: x * 1.0), ("zero", lambda x: x * 0.0)):
    r = mt.check_idempotence(op, max_examples=EXAMPLES, raise_on_failure=False)
    print(f"{name:8s} {r.summary()}")

# %% [markdown]
# ## 6. From the command line
#
# `python -m minires check` runs all of this on every built-in op, each with its oracle (written
# from the definitions with NumPy's sliding windows, independently of minires's im2col, pooling and
# norm code), the fast twins and the reference ops both, then the four properties. It prints a
# table and exits with status 1 if anything failed. `python -m minires check conv2d` runs the rows
# of one op. For an op of your own, name the file and the op, `FILE.py:NAME`; its inputs are
# arrays of one random shape per argument unless the op carries a `check_inputs` strategy (and
# a `check_oracle`, if you have one). Here we write the leaky ReLU to a file and check it that way.

# %%
path = os.path.join(OUT, "my_ops.py")
with open(path, "w") as f:
    f.write(textwrap.dedent('''
        import numpy as np
        import minires as mr


        class LeakyReLU(mr.Function):
            def __init__(self, slope=0.1):
                self.slope = slope

            def forward(self, x):
                self.positive = x > 0
                return np.where(self.positive, x, self.slope * x)

            def backward(self, gy):
                return gy * np.where(self.positive, 1.0, self.slope)
    '''))
status = minires_command(["check", f"{path}:LeakyReLU", "--examples", str(EXAMPLES)])
print("exit status:", status)

# %% [markdown]
# The same bug as section 4, and the report ends with the shell line that reruns its smallest
# case (`--case`). `python -m minires check relu` shows what a passing table looks like. Its rows
# run the reference ops as well as the fast ones, and minires prints a note the first time the
# reference ops run (so that nobody trains at their speed by accident); the command switches on
# purpose, so we catch that note.

# %%
with contextlib.redirect_stderr(io.StringIO()):  # the reference-ops note: switched on purpose
    status = minires_command(["check", "relu", "--examples", str(EXAMPLES)])
print("exit status:", status)

# %% [markdown]
# ## Summary
#
# * A gradient check on one input checks that input. `check_backward` checks the forward against
#   an oracle, the gradients against central differences, both memory layouts, float32 against
#   float64, and the gradients' shapes and dtypes, over generated inputs that include the awkward
#   ones. On a failure it shrinks the input to the smallest one that still fails.
# * A report names the check, the input, the largest error and where; the rerun line checks just
#   that case again.
# * Three bugs a fixed input missed: a mean over the wrong axes (needs two images), padding on the
#   wrong side (needs an odd size), a float64 gradient (needs float32).
# * Metamorphic properties need no oracle. Linearity catches constants, not wrong linear maps. The
#   adjoint catches a backward that is not the transpose of its forward, not a forward that is
#   wrong with it. Batch norm's invariance catches wrong statistics, not a wrong constant factor.
#   Idempotence catches a leak, not an identity. An oracle is the check that pins an op down.
#
# ## Exercises
#
# Each exercise has a checker, and the checker is `check_backward`: your class is the op under
# test, over generated inputs. Write your answer, then uncomment the `check_exercise_...` line.
# A failure raises `CheckFailed` with the report: read it as in section 2. Worked solutions are at
# the very end, under **Solutions**.
#
# **Exercise 1: softplus, stable.** Write `Softplus`, y = log(1 + exp(x)), with dy/dx =
# sigmoid(x) = 1 / (1 + exp(-x)). The checker draws values in [-100, 100] and checks float32 as
# well, where exp(89) is already infinite: `np.log(1 + np.exp(x))` will not do. Hint:
# log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)).

# %%
def check_exercise_1(softplus_class):
    mt.check_backward(softplus_class, mt.elementwise_cases(bounds=(-100.0, 100.0)),
                      oracle=lambda x: np.logaddexp(0.0, x), max_examples=EXAMPLES)
    print("exercise 1: correct")


class Softplus(mr.Function):
    def forward(self, x):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


# check_exercise_1(Softplus)

# %% [markdown]
# **Exercise 2: a linear layer.** Write `Linear`, y = x @ w.T + b for x (N, in), w (out, in) and
# an optional b (out,), with its backward (three gradients when there is a bias, two without).
# Mind the transposes: the checker draws every N, in and out from 1 to 5, square and not.

# %%
def check_exercise_2(linear_class):
    mt.check_backward(linear_class, mt.linear_cases(), max_examples=EXAMPLES,
                      oracle=lambda x, w, b=None: x @ w.T + (0.0 if b is None else b))
    print("exercise 2: correct")


class Linear(mr.Function):
    def forward(self, x, w, b=None):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


# check_exercise_2(Linear)

# %% [markdown]
# **Exercise 3: the 2x2 average pool, right for every size.** Write `AvgPool2x2`, forward and
# backward, correct for odd sizes too (section 3). The checker draws batches with sides from 2 to
# 6 and compares the forward with `mt.avg_pool2d_formula(x, 2)`.

# %%
def check_exercise_3(pool_class):
    mt.check_backward(pool_class, mt.cases(x=mt.values(mt.nchw(min_size=2))),
                      oracle=lambda x: mt.avg_pool2d_formula(x, 2), max_examples=EXAMPLES)
    print("exercise 3: correct")


class AvgPool2x2(mr.Function):
    def forward(self, x):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


# check_exercise_3(AvgPool2x2)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Split x into its positive part and the rest: log(1 + e^x) = max(x, 0) + log1p(e^-|x|),
# where e^-|x| <= 1 never overflows. The derivative, sigmoid(x), is computed from the same
# e^-|x|: 1 / (1 + e) for x >= 0 and e / (1 + e) otherwise. Both stay in the input's dtype.

# %%
class SoftplusSolution(mr.Function):
    def forward(self, x):
        self.e = np.exp(-np.abs(x))
        self.nonnegative = x >= 0
        return np.maximum(x, 0) + np.log1p(self.e)

    def backward(self, gy):
        sigmoid = np.where(self.nonnegative, 1, self.e) / (1 + self.e)
        return gy * sigmoid


check_exercise_1(SoftplusSolution)

# %% [markdown]
# **2.** With y = x @ w.T + b: dx = dy @ w (N, in), dw = dy.T @ x (out, in), db = sum of dy over
# the batch. Writing dw = x.T @ dy gives an (in, out) array: a shape error when in != out, and the
# transpose of the right answer when they are equal.

# %%
class LinearSolution(mr.Function):
    def forward(self, x, w, b=None):
        self.x, self.w, self.has_bias = x, w, b is not None
        y = x @ w.T
        return y + b if b is not None else y

    def backward(self, gy):
        gx, gw = gy @ self.w, gy.T @ self.x
        return (gx, gw, gy.sum(axis=0)) if self.has_bias else (gx, gw)


check_exercise_2(LinearSolution)

# %% [markdown]
# **3.** The forward drops the last row and column when the size is odd; the backward gives them
# zero gradient, at the bottom and on the right, where they are.

# %%
class AvgPool2x2Solution(AvgPool2x2WrongPad):
    def backward(self, gy):
        H, W = self.in_shape[2:]
        g = np.repeat(np.repeat(gy / 4, 2, axis=2), 2, axis=3)
        return np.pad(g, ((0, 0), (0, 0), (0, H - g.shape[2]), (0, W - g.shape[3])))


check_exercise_3(AvgPool2x2Solution)
