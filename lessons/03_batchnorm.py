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
# # Lesson 3: Batch normalisation
#
# Section 3.4 of the paper puts batch normalisation (BN, Ioffe & Szegedy 2015) right after every
# convolution and before every activation. Inside a residual block, F(x, {W_i}) is therefore
# conv-BN-ReLU-conv-BN. BN also carries part of the paper's argument in sec. 4.1: with BN the
# plain nets' signals keep a non-zero variance going forwards and their gradients keep healthy
# norms going backwards. So the degradation of deep plain nets (lesson 6) is not a
# vanishing-gradient problem. This lesson derives BN's backward pass and checks it three ways.
#
# **By the end you will be able to**
#
# 1. write BN's forward pass per channel, and say what "per channel" means for a convolution's output;
# 2. derive the compact backward
#    dx = (1/M) * gamma/sigma * (M*g - sum(g) - xhat*sum(g*xhat)), and say what each term is for;
# 3. check it against `F.batch_norm`, against the engine differentiating BN built from basic ops,
#    and with `mr.gradcheck`, and say why a check on sum(y) would see nothing;
# 4. explain train mode and eval mode, and how the running statistics are updated.
#
# Open as a notebook with `jupytext --to notebook lessons/03_batchnorm.py`, run cell by cell in
# VS Code, or run `python lessons/03_batchnorm.py`. Run time (full run: 2 s, quick: 2 s), on 2 CPU
# cores; `MINIRES_QUICK=1` is the quick run.

# %%
import contextlib
import inspect
import io
import time

import numpy as np

import minires as mr
from minires import functional as F, nn
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py


rng = np.random.default_rng(0)
AXES = (0, 2, 3)  # a conv output is (N, C, H, W); BN pools each channel over batch and positions


def per_channel(v):
    """A (C,) vector shaped to broadcast against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


# %% [markdown]
# ## 1. Forward: normalise each channel over the batch
#
# A convolution applies the same filter at every position, so BN treats each *channel* as a single
# feature. Its statistics pool all M = N*H*W values of that channel in the batch. (A fully
# connected layer has M = N.) With eps a small constant that keeps the division safe:
#
#     mu = mean(x),   var = mean((x - mu)^2)       per channel, over the M values (biased variance)
#     xhat = (x - mu) / sigma,   sigma = sqrt(var + eps)
#     y = gamma * xhat + beta                       gamma, beta: learned, one per channel
#
# After the first line every channel has mean 0 and variance 1 (almost: eps). gamma and beta then
# give the network back the freedom to pick any scale and shift. Setting gamma = sigma and
# beta = mu undoes the normalisation altogether.

# %%
N, C, H = (32, 3, 6) if QUICK else (64, 3, 8)
x = (rng.standard_normal((N, C, H, H)) * per_channel(np.array([3.0, 0.5, 1.0]))
     + per_channel(np.array([5.0, -2.0, 0.0])))
gamma, beta, eps = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0]), 1e-5

mu, var = x.mean(axis=AXES), x.var(axis=AXES)
xhat = (x - per_channel(mu)) / per_channel(np.sqrt(var + eps))
y_by_hand = per_channel(gamma) * xhat + per_channel(beta)

y = F.batch_norm(mr.Tensor(x), mr.Tensor(gamma), mr.Tensor(beta), None, None, training=True).data
print("max |by hand - F.batch_norm|:", np.abs(y_by_hand - y).max())
assert np.allclose(y_by_hand, y)

fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for c in range(C):
    axes[0].hist(x[:, c].ravel(), bins=40, alpha=0.6, label=f"channel {c}")
    axes[1].hist(xhat[:, c].ravel(), bins=40, alpha=0.6, label=f"channel {c}")
axes[0].set(title="x: own mean and scale per channel", xlabel="value")
axes[1].set(title="xhat = (x - mu) / sigma: mean 0, var 1", xlabel="value")
axes[0].legend()
show(fig, "03_normalised.png")

# %% [markdown]
# ## 2. Backward: the derivation
#
# Let g = dL/dy, and take one channel with its M values. The parameters come first, because y is
# a plain affine function of them:
#
#     dL/dbeta = sum_m g_m,        dL/dgamma = sum_m g_m * xhat_m
#
# For x the work is in the statistics. Every x_k moves mu and sigma, so every xhat_m depends on
# every x_k. Use  d mu/dx_k = 1/M  and  d sigma/dx_k = (x_k - mu) / (M sigma) = xhat_k / M. (The
# second needs sum_m (x_m - mu) = 0.) The quotient rule then gives
#
#     d xhat_m / d x_k = (1/sigma) * ( [m == k] - 1/M - xhat_m * xhat_k / M ).
#
# Multiply by dL/dxhat_m = gamma * g_m and sum over m. The result is the compact closed form:
#
#     dx_k = (1/M) * (gamma / sigma) * ( M g_k  -  sum_m g_m  -  xhat_k * sum_m g_m xhat_m )
#          = (1/M) * (gamma / sigma) * ( M g_k  -  dbeta      -  xhat_k * dgamma )
#
# Each term has a job. `M g` is what you would get if mu and sigma were constants. `- dbeta`
# is there because x also moves the mean. `- xhat * dgamma` is there because x also moves the
# variance. Together the two subtractions remove the parts of g along "all ones" and along xhat.
# Those are exactly the directions in which shifting or rescaling x leaves y unchanged. So for
# each channel, sum(dx) = 0. Likewise sum(dx * xhat) = 0, apart from a remainder of order
# eps / var, since eps makes xhat's variance var / (var + eps), a hair below 1.

# %%
def batch_norm_backward(x, gamma, g, eps=1e-5):
    """dx, dgamma, dbeta of training-mode BN, by the compact closed form (NumPy only)."""
    M = x.size // x.shape[1]
    sigma = per_channel(np.sqrt(x.var(axis=AXES) + eps))
    xhat = (x - per_channel(x.mean(axis=AXES))) / sigma
    dbeta, dgamma = g.sum(axis=AXES), (g * xhat).sum(axis=AXES)
    dx = per_channel(gamma) / sigma * (M * g - per_channel(dbeta) - xhat * per_channel(dgamma)) / M
    return dx, dgamma, dbeta


g = rng.standard_normal(x.shape)
dx, dgamma, dbeta = batch_norm_backward(x, gamma, g)
print("per channel, sum(dx)        =", dx.sum(axis=AXES))
print("per channel, sum(dx * xhat) =", (dx * xhat).sum(axis=AXES))

# %% [markdown]
# ## 3. Three independent checks
#
# **(a) Against `F.batch_norm`.** minires's reference `BatchNorm` (`minires/functional/norm.py`)
# works on a (C, M) matrix view of the activation, one row per channel (lesson 2 explained why that
# view is free), and evaluates the same formula line for line. Here is its backward:

# %%
from minires.functional.norm import BatchNorm

print(inspect.getsource(BatchNorm.backward))

# %% [markdown]
# By default `F.batch_norm` runs its fast twin, `BlockedBatchNorm` in `minires/fast/blocked_norm.py`:
# the same formula over blocks of channels on several threads, with its temporaries in the output's
# buffer. We check our NumPy derivation against both. (minires prints a note the first time the
# reference ops run, so that nobody trains at their speed by accident; we switch on purpose, and
# catch it, as in lesson 2.)

# %%
for reference in (True, False):
    xt, gt, bt = (mr.Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    with contextlib.redirect_stderr(io.StringIO()), mr.reference_ops(reference):  # on purpose
        F.batch_norm(xt, gt, bt, None, None, training=True).backward(g)
    for name, ours, theirs in (("dx", dx, xt.grad), ("dgamma", dgamma, gt.grad), ("dbeta", dbeta, bt.grad)):
        print(f"{'reference' if reference else 'fast':9s} {name:6s} max |formula - F.batch_norm| = "
              f"{np.abs(ours - theirs).max():.2e}")
        assert np.allclose(ours, theirs)

# %% [markdown]
# **(b) Against the engine.** We write BN with nothing but minires's basic operations (mean,
# subtract, power, divide) and let autograd differentiate the composition. No formula goes in, and
# the same gradients come out. The fused operation gives the same answer with one recorded
# function instead of about ten, and far fewer saved arrays. The timing shows what that buys.

# %%
def batch_norm_composed(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=AXES, keepdims=True)
    centred = x - mu
    var = (centred * centred).mean(axis=AXES, keepdims=True)
    return centred / (var + eps) ** 0.5 * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


xc, gc, bc = (mr.Tensor(a, requires_grad=True) for a in (x, gamma, beta))
batch_norm_composed(xc, gc, bc).backward(g)
assert np.allclose(xc.grad, dx) and np.allclose(gc.grad, dgamma) and np.allclose(bc.grad, dbeta)
print("composed from basic ops: same dx, dgamma, dbeta")

shape = (8, 16, 8, 8) if QUICK else (32, 16, 16, 16)
xb = mr.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
wb = mr.Tensor(np.ones(16, np.float32), requires_grad=True)
bb = mr.Tensor(np.zeros(16, np.float32), requires_grad=True)
gb = rng.standard_normal(shape).astype(np.float32)


def step(fn):
    start = time.perf_counter()
    fn().backward(gb)
    return time.perf_counter() - start


repeats = 3 if QUICK else 7
t_fused = np.median([step(lambda: F.batch_norm(xb, wb, bb, None, None, True)) for _ in range(repeats)])
t_composed = np.median([step(lambda: batch_norm_composed(xb, wb, bb)) for _ in range(repeats)])
print(f"forward + backward on {shape}: fused {t_fused * 1e3:.2f} ms, composed {t_composed * 1e3:.2f} ms")

# %% [markdown]
# **(c) Against finite differences.** `mr.gradcheck` checks dx, dgamma and dbeta at once on a tiny
# float64 batch:

# %%
xs = mr.Tensor(rng.standard_normal((4, 3, 2, 2)) * 2 + 1, requires_grad=True, name="x")
gs = mr.Tensor(rng.uniform(0.5, 1.5, 3), requires_grad=True, name="gamma")
bs = mr.Tensor(rng.standard_normal(3), requires_grad=True, name="beta")
print("gradcheck:", mr.gradcheck(lambda x, g, b: F.batch_norm(x, g, b, None, None, True), xs, gs, bs))

# %% [markdown]
# Why does gradcheck multiply y by a random vector instead of checking sum(y)? For every x,
# sum over a channel of y is M * beta: BN's output always sums to the same number. The true
# d sum(y)/dx is therefore zero, and a backward that drops one or both of the correction terms
# still gets zero for an all-ones g. Lesson 1 showed such a buggy backward passing the sum check.
# Here is the zero:

# %%
xz = mr.Tensor(x, requires_grad=True)
F.batch_norm(xz, mr.Tensor(gamma), mr.Tensor(beta), None, None, True).sum().backward()
print("max |d sum(y) / dx| =", np.abs(xz.grad).max(), "(zero up to rounding)")

# %% [markdown]
# ## 4. Train mode, eval mode and running statistics
#
# In training, BN normalises with the *batch's* own statistics, so one example's output depends on
# the other examples in its batch. At test time we want a fixed function of each image. So while
# it trains, `nn.BatchNorm2d` keeps exponential moving averages, as PyTorch does:
#
#     running_mean <- (1 - momentum) * running_mean + momentum * mu
#     running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)
#
# The running variance uses the unbiased estimate, hence the factor M / (M - 1). `model.eval()`
# switches every BN layer to these running values. BN is then a fixed affine map per channel,
# and its gradient is just gamma / sqrt(running_var + eps) times g.
#
# One update, checked by hand:

# %%
bn = nn.BatchNorm2d(2)
batch = rng.standard_normal((8, 2, 4, 4)).astype(np.float32) * 2 + 3
bn(mr.Tensor(batch))
M = 8 * 4 * 4
expect_mean = 0.9 * 0 + 0.1 * batch.mean(axis=AXES)
expect_var = 0.9 * 1 + 0.1 * batch.var(axis=AXES) * M / (M - 1)
assert np.allclose(bn.running_mean, expect_mean, rtol=1e-5) and np.allclose(bn.running_var, expect_var, rtol=1e-5)
print("running_mean:", bn.running_mean, "| running_var:", bn.running_var)

# %% [markdown]
# Over many batches the running values approach the statistics of the data. With momentum 0.1
# the remaining gap shrinks by a factor 0.9 per step, so after 20 steps only 12% of it is left.
# The batches below come from a distribution with per-channel means (3, -1) and variances (4, 0.25):

# %%
true_mean, true_std = np.array([3.0, -1.0]), np.array([2.0, 0.5])
bn = nn.BatchNorm2d(2)
history = []
for _ in range(30 if QUICK else 60):
    b = rng.standard_normal((16, 2, 4, 4)) * per_channel(true_std) + per_channel(true_mean)
    bn(mr.Tensor(b.astype(np.float32)))
    history.append((bn.running_mean.copy(), bn.running_var.copy()))
means, variances = np.array([h[0] for h in history]), np.array([h[1] for h in history])

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for c, color in zip(range(2), ("tab:blue", "tab:orange")):
    axes[0].plot(means[:, c], color=color, label=f"channel {c}")
    axes[0].axhline(true_mean[c], color=color, ls="--", lw=0.8)
    axes[1].plot(variances[:, c], color=color, label=f"channel {c}")
    axes[1].axhline(true_std[c] ** 2, color=color, ls="--", lw=0.8)
axes[0].set(title="running_mean (dashed: the data's mean)", xlabel="training step")
axes[1].set(title="running_var (dashed: the data's variance)", xlabel="training step")
axes[0].legend()
show(fig, "03_running_stats.png")

# %% [markdown]
# Now the difference between the modes. We put the same example into two different batches.
# In train mode its output changes with its batch-mates. In eval mode it does not:

# %%
example = rng.standard_normal((1, 2, 4, 4)) * per_channel(true_std) + per_channel(true_mean)
mates_a = rng.standard_normal((7, 2, 4, 4)) * per_channel(true_std) + per_channel(true_mean)
mates_b = rng.standard_normal((7, 2, 4, 4)) * 3  # a very different batch
batch_a = mr.Tensor(np.concatenate([example, mates_a]).astype(np.float32))
batch_b = mr.Tensor(np.concatenate([example, mates_b]).astype(np.float32))
for mode in ("train", "eval"):
    getattr(bn, mode)()
    diff = np.abs(bn(batch_a).data[0] - bn(batch_b).data[0]).max()
    print(f"{mode:5s} mode: max change of the example's output between the two batches = {diff:.4f}")
assert diff == 0.0

# %% [markdown]
# ## Summary
#
# * BN standardises each channel over the batch and all positions (M = N*H*W values). gamma and
#   beta then rescale and shift, so BN loses no expressive power.
# * Backward: dbeta = sum(g), dgamma = sum(g*xhat), and
#   dx = (1/M) gamma/sigma (M g - dbeta - xhat dgamma). The two corrections exist because x moves
#   its own mean and variance.
# * A sum-based gradient check cannot see those corrections. A random upstream gradient can.
# * Train mode uses batch statistics and updates running averages (unbiased variance). Eval mode
#   uses the averages, which makes BN a fixed affine map per channel.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the eval-mode backward.** In eval mode mu and sigma are constants. Write
# `bn_eval_backward(g, gamma, running_var, eps)`, which returns dL/dx for an (N, C, H, W) g. The
# checker puts it in the backward of minires's `BatchNorm` and property-tests that op with
# `check_backward` (lesson 3b; needs `pip install -e '.[dev]'`) over generated batches, in float32
# and float64.

# %%
def check_exercise_1(bn_eval_backward):
    from minires.functional.norm import BatchNorm
    from minires.testing import batch_norm_cases, check_backward

    class BatchNormWithYourEvalBackward(BatchNorm):
        def backward(self, gy):
            _, dgamma, dbeta = super().backward(gy)
            return bn_eval_backward(gy, self.gamma, self.running_var, self.eps), dgamma, dbeta

    # eps = 0.1 rather than 1e-5, so that an eps left out is a 3-10% error, not a rounding one
    cases = batch_norm_cases(training=False, ndim=4, eps=0.1)
    check_backward(BatchNormWithYourEvalBackward, cases, max_examples=10 if QUICK else 30)
    print("exercise 1: correct")


def bn_eval_backward(g, gamma, running_var, eps):
    raise NotImplementedError


# check_exercise_1(bn_eval_backward)

# %% [markdown]
# **Exercise 2: fold BN into the convolution.** At inference, conv (without bias) followed by
# eval-mode BN is a single convolution with a bias. Write
# `fold(w, gamma, beta, running_mean, running_var, eps)`, returning `(w_folded, b_folded)` with
# F.conv2d(x, w_folded, b_folded) equal to bn(conv(x)). Deployed ResNets often run this way.

# %%
def check_exercise_2(fold):
    mr.manual_seed(2)
    r = np.random.default_rng(2)
    conv, bn2 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
    bn2.weight.data[...] = r.uniform(0.5, 2, 4)
    bn2.bias.data[...] = r.standard_normal(4)
    for _ in range(5):  # give the running statistics non-trivial values
        bn2(conv(mr.Tensor(r.standard_normal((8, 3, 6, 6)).astype(np.float32) * 2 + 1)))
    bn2.eval()
    xe = mr.Tensor(r.standard_normal((2, 3, 6, 6)).astype(np.float32))
    wf, bf = fold(conv.weight.data, bn2.weight.data, bn2.bias.data, bn2.running_mean, bn2.running_var, bn2.eps)
    got = F.conv2d(xe, mr.Tensor(np.asarray(wf, np.float32)), mr.Tensor(np.asarray(bf, np.float32)), padding=1)
    np.testing.assert_allclose(got.data, bn2(conv(xe)).data, rtol=1e-4, atol=1e-4)
    print("exercise 2: correct")


def fold(w, gamma, beta, running_mean, running_var, eps):
    raise NotImplementedError


# check_exercise_2(fold)

# %% [markdown]
# **Exercise 3: the running mean in closed form.** A fresh BN layer (running_mean r0 = 0) sees K
# batches, and every one of them has mean exactly mu in some channel. Write
# `running_mean_after(K, momentum, r0, mu)`. The checker feeds an `nn.BatchNorm2d` such batches.

# %%
def check_exercise_3(running_mean_after):
    r = np.random.default_rng(3)
    mu_c = np.array([2.0, -0.5])
    for K, momentum in ((1, 0.1), (7, 0.1), (25, 0.3)):
        layer = nn.BatchNorm2d(2, momentum=momentum, dtype=np.float64)
        for _ in range(K):
            z = r.standard_normal((6, 2, 3, 3))
            layer(mr.Tensor(z - z.mean(axis=AXES, keepdims=True) + per_channel(mu_c)))
        want = [running_mean_after(K, momentum, 0.0, m) for m in mu_c]
        np.testing.assert_allclose(want, layer.running_mean, rtol=1e-9, atol=1e-12)
    print("exercise 3: correct")


def running_mean_after(K, momentum, r0, mu):
    raise NotImplementedError


# check_exercise_3(running_mean_after)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** In eval mode y = gamma (x - mu) / sigma + beta, with mu and sigma fixed, is affine in x:
# dx = g * gamma / sqrt(running_var + eps). Neither correction term appears.

# %%
check_exercise_1(lambda g, gamma, running_var, eps: g * per_channel(gamma / np.sqrt(running_var + eps)))

# %% [markdown]
# **2.** Let s = gamma / sqrt(running_var + eps). BN(conv(x)) = s * conv(x) + (beta - s * mean),
# and scaling output channel o by s[o] is the same as scaling filter o.

# %%
def fold_solution(w, gamma, beta, running_mean, running_var, eps):
    s = gamma / np.sqrt(running_var + eps)
    return w * s[:, None, None, None], beta - s * running_mean


check_exercise_2(fold_solution)

# %% [markdown]
# **3.** Each step keeps a fraction (1 - momentum) of the distance to mu:
# r_K - mu = (1 - momentum)^K (r0 - mu).

# %%
check_exercise_3(lambda K, momentum, r0, mu: mu + (1 - momentum) ** K * (r0 - mu))
