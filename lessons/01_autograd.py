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
# # Lesson 1: Tensors and autograd
#
# He et al. train every network in the paper with mini-batch SGD (sec. 3.4). Each step needs
# dL/dW for every weight of a net that may be 152 layers deep, and nobody derives those gradients
# by hand. An *autograd engine* works them out. It records each operation as it runs, then
# replays the record backwards and applies the chain rule at every step. This lesson opens up the
# engine in `minires/autograd.py`.
#
# **By the end you will be able to**
#
# 1. say what a `Tensor` holds and what an operation records when it runs;
# 2. follow `backward()` as it walks the recorded graph in *reverse topological order*, and say
#    why the walk is a loop rather than a recursion;
# 3. explain why a tensor that is used twice gets the *sum* of the two gradients. The residual
#    unit y = F(x, {W_i}) + x (Eq. 1) uses x twice, and this sum is where its `1 +` comes from.
#    You will also see why gradients add up across `backward()` calls until you reset them;
# 4. check any backward numerically with `mr.gradcheck`, and say why the check multiplies the
#    output by a random vector instead of summing it.
#
# Run it as a notebook (`jupytext --to notebook lessons/01_autograd.py`), cell by cell in VS Code,
# or as a script: `python lessons/01_autograd.py`.
# Run time (full run: 1 s, quick: 1 s) on 2 CPU cores (`lessons/README.md` says more);
# `MINIRES_QUICK=1` is the quick run.

# %%
import contextlib
import io
import sys

import numpy as np

import minires as mr
from minires import functional as F
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py


rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A tensor is an array plus three fields for autograd
#
# `data` is a NumPy array (a CuPy one on the GPU, lesson 8). `grad` stays `None` until a backward
# pass fills it in. `requires_grad` says whether we want that gradient at all. `grad_fn` points to
# the operation that produced the tensor; a tensor you create yourself has none and is called a
# *leaf*. A Python list becomes float32, the dtype used for training. A float64 NumPy array stays
# float64, and this lesson needs float64 for its numerical checks.

# %%
t = mr.Tensor([1.0, 2.0, 3.0], requires_grad=True)
print(t)
print("dtype:", t.dtype, "| grad:", t.grad, "| leaf:", t.is_leaf, "| grad_fn:", t.grad_fn)

# %% [markdown]
# ## 2. A residual unit, built and differentiated by hand
#
# Here is the smallest thing that looks like Eq. 1. One weight layer with a ReLU is the residual
# function F, and the input is added back:
#
#     h = W x,   F = relu(h),   y = F + x,   L = sum(y * y)
#
# Running these lines on tensors computes the values *and* records a graph. Every operation leaves
# behind a `Function` object, which you can reach through `grad_fn`. Each one keeps what its
# backward will need, plus its *parents*: the functions (or leaves) that made its inputs.
#
# A few ops, `F.relu` among them, come in two versions that compute the same function: a
# readable *reference* one, written from its formula, and a fast twin that lesson 2 introduces.
# minires runs the fast ones by default; we build this graph inside `with mr.reference_ops():` so
# that it records the readable `ReLU`. (minires prints a note the first time the reference ops run,
# so that nobody trains at their speed by accident; we switch on purpose, so we catch the note.)

# %%
x = mr.Tensor(rng.standard_normal((3, 1)), requires_grad=True, name="x")  # a column vector
W = mr.Tensor(rng.standard_normal((3, 3)), requires_grad=True, name="W")

with contextlib.redirect_stderr(io.StringIO()), mr.reference_ops():  # the readable ops, no note
    h = W @ x
    f = F.relu(h)       # F(x, {W})
    y = f + x           # Eq. 1: the shortcut adds x back
    L = (y * y).sum()
print("L =", L.item(), "| recorded by:", type(L.grad_fn).__name__)

# %% [markdown]
# `backward()` walks this graph from `L` down to the leaves. A function may run its backward only
# after *every* function that consumed its output has run, because only then is its output
# gradient complete. Any order with that property is a **topological order** of the graph,
# listed consumers first. minires finds one with an iterative depth-first search
# (`minires.autograd.topological_order`, which `backward()` calls; we call it here to look inside).

# %%
from minires.autograd import topological_order


def label(node):
    return node.name if isinstance(node, mr.Tensor) else type(node).__name__


order = topological_order(L.grad_fn)
for step, fn in enumerate(order, 1):
    print(f"backward step {step}: {label(fn):7s} <- inputs from {[label(p) for p in fn.parents]}")


# %% [markdown]
# The picture shows the same graph with data flowing left to right. Each function is labelled
# with its step in the backward walk. The leaf `x` sends out two arrows, one into `MatMul` and one
# into `Add` (the shortcut), so its gradient arrives along two paths. `y * y` also uses `y` twice:
# there are two arrows from `Add` to `Mul`, drawn on top of each other.

# %%
def draw_graph(order, ax):
    """Columns by distance from the leaves; leaves in grey, functions in blue with their backward step."""
    level, nodes = {}, []
    for fn in reversed(order):  # producers first, so parents are placed before their consumers
        for p in fn.parents:
            if isinstance(p, mr.Tensor) and id(p) not in level:
                level[id(p)] = 0
                nodes.append(p)
        level[id(fn)] = 1 + max(level[id(p)] for p in fn.parents)
        nodes.append(fn)
    rows, pos = {}, {}
    for n in nodes:
        col = level[id(n)]
        pos[id(n)] = (col, -rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    step = {id(fn): i for i, fn in enumerate(order, 1)}
    for n in nodes:
        for p in getattr(n, "parents", ()):
            ax.annotate("", xy=pos[id(n)], xytext=pos[id(p)],
                        arrowprops=dict(arrowstyle="->", lw=1.2, shrinkA=18, shrinkB=18))
    for n in nodes:
        leaf = isinstance(n, mr.Tensor)
        text = label(n) if leaf else f"{label(n)}\nstep {step[id(n)]}"
        ax.text(*pos[id(n)], text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#dddddd" if leaf else "#cfe2ff"))
    ax.set_xlim(-0.5, max(level.values()) + 0.5)
    ax.set_ylim(-max(rows.values()) + 0.5, 0.5)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(9, 2.6))
draw_graph(order, ax)
ax.set_title("The recorded graph of L = sum((relu(W x) + x)^2); steps give the backward order")
show(fig, "01_graph.png")

# %% [markdown]
# Now run the backward pass and compare it with the chain rule done by hand. Write g = dL/dy = 2y.
# The `Add` node passes g unchanged to both of its inputs. On the branch, ReLU lets g through
# where h > 0, and the matrix product turns it into gradients for W and x:
#
#     dL/dW = (g * [h > 0]) x^T,      dL/dx = W^T (g * [h > 0])  +  g
#                                             ---- the branch ----   shortcut
#
# That last line is dL/dx = (dF/dx)^T dL/dy + dL/dy, the paper's identity shortcut seen from the
# backward side. Whatever F does, the incoming gradient reaches x unchanged. Lesson 4 measures this
# on a real block.

# %%
L.backward()

h_ = W.data @ x.data
g = 2 * (np.maximum(h_, 0) + x.data)
g_branch = g * (h_ > 0)
assert np.allclose(W.grad, g_branch @ x.data.T)
assert np.allclose(x.grad, W.data.T @ g_branch + g)
print("dL/dx from autograd:", x.grad.ravel())
print("hand-derived       :", (W.data.T @ g_branch + g).ravel())

# %% [markdown]
# ### Looking at intermediate gradients: hooks
#
# Only leaves keep their `grad`. For anything in the middle you can ask for it with
# `retain_grad()`, or watch it go past with `register_hook(fn)`. Lesson 5 uses these hooks to
# measure gradient norms at every block of a deep net. Here they confirm that the gradient
# reaching the branch output f is exactly the one at y:

# %%
x.grad = W.grad = None
f = F.relu(W @ x)
f_grads = []
f.register_hook(f_grads.append)  # called with dL/df during backward; returns None, so grad is unchanged
y = f + x
y.retain_grad()
(y * y).sum().backward()
assert np.array_equal(f_grads[0], y.grad)
print("dL/df == dL/dy:", np.array_equal(f_grads[0], y.grad))

# %% [markdown]
# ## 3. Why the walk is a loop, not a recursion
#
# The short way to write a topological sort is a recursive function. Python stops recursion at
# about 1000 frames, and the graph of a 1202-layer ResNet (sec. 4.2) is thousands of functions
# deep. minires sorts with an explicit stack instead, so depth costs memory, not stack frames.
# Here is a chain of thousands of residual steps z <- z + 0.001 z. By the chain rule its
# gradient is a product of (1 + 0.001) factors:

# %%
steps = 2000 if QUICK else 5000
z0 = mr.Tensor(np.array(1.0), requires_grad=True)
z = z0
for _ in range(steps):
    z = z + 0.001 * z
z.backward()
print(f"{2 * steps} recorded functions (Python's recursion limit is {sys.getrecursionlimit()})")
print(f"dz/dz0 = {z0.grad:.6g}, expected 1.001^{steps} = {1.001 ** steps:.6g}")
assert np.isclose(z0.grad, 1.001 ** steps)

# %% [markdown]
# ## 4. Gradients accumulate
#
# Accumulation happens in two places:
#
# * **Within one backward**, a tensor used several times gets the sum of its gradients. The
#   engine adds them up before it passes anything further down. That is why `x` above got
#   "branch + g".
# * **Across backward calls**, a leaf's `grad` is *added to*, never overwritten. This lets you
#   average gradients over several small batches before one SGD step. It also means an optimizer
#   has to reset `grad` (with `model.zero_grad()`) before every step. Forget that, and each step
#   uses the sum of all past gradients.

# %%
a = mr.Tensor(np.array([2.0]), requires_grad=True)
for call in range(1, 4):
    (a * a * a).sum().backward()  # d(a^3)/da = 3 a^2 = 12 each time
    print(f"after backward call {call}: a.grad = {a.grad}")
a.grad = None  # what zero_grad() does for every parameter

# %% [markdown]
# After a backward, each function drops what it saved, so the memory of a big net's activations
# is freed straight away. Going through the same graph a second time is therefore an error, and
# the error message says what to do:

# %%
b = (a * a).sum()
b.backward()
try:
    b.backward()
except RuntimeError as e:
    print("RuntimeError:", e)

# %% [markdown]
# ## 5. Trust, but check: `mr.gradcheck`
#
# A hand-written backward is easy to get subtly wrong. `mr.gradcheck(fn, *inputs)` compares it with
# central differences,
#
#     dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),
#
# for every element of every input that requires grad. The inputs must be float64. It returns
# `True`, or raises `GradcheckError` naming the input, the worst element and both values.
#
# First the residual unit from above:

# %%
print(mr.gradcheck(lambda x, W: ((F.relu(W @ x) + x) ** 2).sum(), x, W))

# %% [markdown]
# Next, your own operation. A `Function` subclass defines `forward` and `backward` on plain arrays.
# `backward` receives dL/d(output) and returns dL/d(input). Here is a cube with a deliberate
# slip in its backward:

# %%
class Cube(mr.Function):
    def forward(self, a):
        self.a = a
        return a ** 3

    def backward(self, gy):
        return gy * 3 * self.a ** 2


class SloppyCube(Cube):
    def backward(self, gy):
        return gy * 3 * self.a  # forgot the square


c = mr.Tensor(rng.uniform(0.5, 2.0, size=(2, 3)), requires_grad=True, name="c")
print("Cube:", mr.gradcheck(lambda c: Cube()(c), c))
try:
    mr.gradcheck(lambda c: SloppyCube()(c), c)
except mr.GradcheckError as e:
    print("SloppyCube:", e)

# %% [markdown]
# ### Why float64, and why that eps?
#
# The difference quotient has two kinds of error. Truncation error shrinks like eps^2. Rounding
# error in L(x + eps) - L(x - eps) grows like (machine epsilon) / eps. The total is smallest
# somewhere in between. The plot measures it for the cube. float32 has a machine epsilon near
# 1e-7: at gradcheck's eps = 1e-6 its error is a few percent, and below about 1e-7 the step
# x + eps rounds back to x and the quotient is 0. Its best point, near eps = 1e-2, works only
# because a^3 is so smooth. In float64 the error at eps = 1e-6 is around 1e-10, small enough to
# expose a real mistake.

# %%
def difference_error(dtype, eps):
    a0 = np.array([1.3], dtype=dtype)
    with mr.no_grad():
        up = Cube()(mr.Tensor(a0 + dtype(eps))).item()
        down = Cube()(mr.Tensor(a0 - dtype(eps))).item()
    return abs((up - down) / (2 * eps) - 3 * 1.3 ** 2) / (3 * 1.3 ** 2)


epsilons = np.logspace(-12, -1, 23 if QUICK else 45)
fig, ax = plt.subplots(figsize=(6, 3.5))
for dtype in (np.float32, np.float64):
    errors = [max(difference_error(dtype, e), 1e-17) for e in epsilons]
    ax.loglog(epsilons, errors, "o-", ms=3, label=np.dtype(dtype).name)
ax.axvline(1e-6, color="grey", ls=":", label="gradcheck's eps")
ax.set(xlabel="eps", ylabel="relative error of the central difference",
       title="Central differences of a^3: truncation vs rounding error")
ax.legend()
show(fig, "01_gradcheck_eps.png")

# %% [markdown]
# ### The trap: checking `sum(y)` instead of `y`
#
# A tempting shortcut is to check the scalar `y.sum()` instead of `y`. For most operations it
# works. For a *normalisation* it sees nothing. Standardising each column of a batch,
# xhat = (x - mean) / std, gives columns that always sum to exactly 0. So d sum(xhat)/dx = 0, and
# any backward that also returns 0 for an all-ones upstream gradient passes. Below is batch
# normalisation's core (lesson 3 covers it in full) with and without the term that comes from the
# batch variance. `mr.gradcheck` multiplies the output by a fixed *random* vector v and checks
# L = sum(v * y), which sees every term. Passing it `y.sum()` brings the blind spot back.

# %%
class Standardize(mr.Function):
    """xhat = (x - mean) / sqrt(var + eps), per column of an (N, D) batch."""

    def __init__(self, forget_variance_term=False):
        self.forget = forget_variance_term

    def forward(self, x):
        self.invstd = 1 / np.sqrt(x.var(axis=0) + 1e-5)
        self.xhat = (x - x.mean(axis=0)) * self.invstd
        return self.xhat

    def backward(self, gy):
        dx = gy - gy.mean(axis=0)
        if not self.forget:
            dx = dx - self.xhat * (gy * self.xhat).mean(axis=0)
        return dx * self.invstd


s = mr.Tensor(rng.standard_normal((5, 3)) * 2 + 1, requires_grad=True, name="s")
print("correct backward, random v:", mr.gradcheck(lambda s: Standardize()(s), s))
print("buggy backward, sum(y):    ", mr.gradcheck(lambda s: Standardize(True)(s).sum(), s), "  <- fooled")
try:
    mr.gradcheck(lambda s: Standardize(True)(s), s)
except mr.GradcheckError as e:
    print("buggy backward, random v:   caught:", str(e).splitlines()[0])

# %% [markdown]
# ## Summary
#
# * A `Tensor` is `data` plus `grad`, `requires_grad` and `grad_fn`. Each operation records a
#   `Function` that knows its parents and how to map dL/d(output) to dL/d(inputs).
# * `backward()` visits functions in reverse topological order, found with a loop (not a
#   recursion). Gradients of a tensor used twice add up, which is where the `1 +` of a residual
#   unit's gradient comes from.
# * Leaf gradients keep adding up across calls until you reset them.
# * `mr.gradcheck` compares against float64 central differences of sum(v * y) for a random v. It
#   is cheap insurance for every backward you write, and lessons 2 to 4 use it for convolution,
#   batch norm and the residual block.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end of the file, under **Solutions**.
#
# **Exercise 1: a two-layer residual unit by hand.** For
# L = sum((W2 relu(W1 x) + x)^2), with x a column vector, write `grad_x(W1, W2, x)` that returns
# dL/dx using NumPy only (no minires). Hint: start from g = dL/dy and follow both paths to x.

# %%
def check_exercise_1(grad_x):
    """Compares your NumPy formula with minires's backward on random inputs."""
    r = np.random.default_rng(11)
    for _ in range(3):
        x0, W1, W2 = r.standard_normal((4, 1)), r.standard_normal((5, 4)), r.standard_normal((4, 5))
        xt = mr.Tensor(x0, requires_grad=True)
        ((mr.Tensor(W2) @ F.relu(mr.Tensor(W1) @ xt) + xt) ** 2).sum().backward()
        np.testing.assert_allclose(grad_x(W1, W2, x0), xt.grad, rtol=1e-10, atol=1e-12)
    print("exercise 1: correct")


def grad_x(W1, W2, x):
    raise NotImplementedError("your NumPy formula for dL/dx")


# check_exercise_1(grad_x)

# %% [markdown]
# **Exercise 2: write an operation.** Complete `Sigmoid`, with y = 1 / (1 + exp(-a)). Its
# backward should reuse the forward's output (dy/da = y (1 - y)). The checker compares the values
# and runs `mr.gradcheck`.

# %%
def check_exercise_2(sigmoid_class):
    a = mr.Tensor(np.linspace(-4, 4, 12).reshape(3, 4), requires_grad=True)
    np.testing.assert_allclose(sigmoid_class()(a).data, 1 / (1 + np.exp(-a.data)), rtol=1e-12)
    assert mr.gradcheck(lambda a: sigmoid_class()(a), a)
    print("exercise 2: correct")


class Sigmoid(mr.Function):
    def forward(self, a):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


# check_exercise_2(Sigmoid)

# %% [markdown]
# **Exercise 3: predict the accumulation.** With `a = mr.Tensor(np.array([3.0]), requires_grad=True)`,
# you run `(a * a + a).sum().backward()` twice without resetting `a.grad`. What is `a.grad` then?
# Work it out on paper first. `check_exercise_3(your_number)` runs the experiment and compares.

# %%
def check_exercise_3(predicted):
    a = mr.Tensor(np.array([3.0]), requires_grad=True)
    for _ in range(2):
        (a * a + a).sum().backward()
    assert np.isclose(predicted, a.grad[0]), f"not quite: you predicted {predicted}"
    print("exercise 3: correct")


# check_exercise_3(...)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** With h = W1 x, r = relu(h), y = W2 r + x and g = 2y: the shortcut contributes g, and the
# branch contributes W1^T ((W2^T g) * [h > 0]).

# %%
def grad_x_solution(W1, W2, x):
    h = W1 @ x
    g = 2 * (W2 @ np.maximum(h, 0) + x)
    return W1.T @ ((W2.T @ g) * (h > 0)) + g


check_exercise_1(grad_x_solution)

# %% [markdown]
# **2.** Save the output in forward. Backward is then one multiplication.

# %%
class SigmoidSolution(mr.Function):
    def forward(self, a):
        self.y = 1 / (1 + np.exp(-a))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


check_exercise_2(SigmoidSolution)

# %% [markdown]
# **3.** d(a^2 + a)/da = 2a + 1 = 7 for each call. Within a call, `a` is used three times (twice
# in the product, once in the sum) and the three contributions add up to 7. The two calls then
# add: 14.

# %%
check_exercise_3(14.0)
