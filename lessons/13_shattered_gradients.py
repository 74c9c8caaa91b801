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
# # Lesson 13: Shattered gradients
#
# Batch norm and He initialisation keep the *size* of the gradient under control in deep nets
# (lesson 5). Balduzzi, Frean, Leary, Lewis, Ma and McWilliams (2017, "The shattered gradients
# problem: if resnets are the answer, then what is the question?") point at something else: its
# *shape*. Take a net with one input x and one output y, and look at dy/dx as x moves. In a
# shallow net it is a step function; in a deep feedforward net it becomes white noise, so a
# gradient measured at one input says nothing about the gradient a tiny step away. A ResNet's
# gradient stays correlated, like brown noise. This lesson measures that with minires's own
# layers and autograd, in the paper's setting (sec. 2, Fig. 1): 256 points x in [-2, 2], 200
# rectifier units per layer, no training.
#
# **By the end you will be able to**
#
# 1. derive the gradient of a one-layer rectifier net and see that it is a step function;
# 2. compute dy/dx at many points with one backward pass, and say what batch norm's batch
#    statistics do to that derivative;
# 3. measure how correlated a gradient is with the autocorrelation r(k), and compare it with
#    white and brown noise;
# 4. watch the correlation of a feedforward net's gradient fall with depth and a ResNet's hold,
#    and fit the decay, as `python -m minires shatter` does.
#
# Run time (full run: 4 s, quick: 2 s) on 2 CPU cores, most of it in the depth sweep at the
# end; `MINIRES_QUICK=1` shrinks the nets (its numbers are then only a smoke test).
# Open as a notebook with `jupytext --to notebook lessons/13_shattered_gradients.py`, run cell by
# cell in VS Code, or run `python lessons/13_shattered_gradients.py`.

# %%
import numpy as np

import minires as mr
from minires.experiments import shatter
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py

WIDTH = 50 if QUICK else shatter.WIDTH    # the paper's 200 rectifiers per layer
x = shatter.inputs()                       # 256 points in [-2, 2]
print(f"{len(x)} points from {x[0]} to {x[-1]}, step {x[1] - x[0]:.4f}; {WIDTH} units per layer")

# %% [markdown]
# ## 1. One layer: a step function
#
# A net with one hidden layer computes y = sum_j w_j ReLU(W_j x + b_j) + b. Differentiate:
#
#     dy/dx = sum_j w_j W_j [W_j x + b_j > 0]
#
# Each unit contributes a constant w_j W_j while it is on, and nothing while it is off. So dy/dx is
# constant between the points x = -b_j / W_j where a unit switches, and jumps there: a step
# function with at most one step per unit. `shatter.ShatterNet("feedforward", 1)` is this net (He
# initialisation, `nn.Linear`'s default biases), and `shatter.derivative` takes dy/dx at every
# point with one backward pass of sum_i y_i: y_i depends on x_i only, so d(sum_i y_i)/dx_i = dy_i/dx_i.

# %%
mr.manual_seed(0)
one = shatter.ShatterNet("feedforward", 1, WIDTH, dtype=np.float64)
g = shatter.derivative(one, x)

W, b = one.input.weight.data[:, 0], one.input.bias.data
w = one.output.weight.data[0]
closed_form = ((W[None, :] * x[:, None] + b[None, :] > 0) * (w * W)).sum(axis=1)
print("autograd == closed form:", np.allclose(g, closed_form, rtol=1e-12, atol=1e-12))
switches = -b / W
inside = np.sort(switches[(switches > -2) & (switches < 2)])
print(f"{len(inside)} of {WIDTH} units switch inside [-2, 2]; dy/dx changes value "
      f"{np.count_nonzero(np.diff(g))} times along the grid")

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(x, g, lw=1.2, label="dy/dx (autograd)")
for s in inside:
    ax.axvline(s, color="grey", lw=0.4, alpha=0.6)
ax.set_xlabel("x")
ax.set_title("a one-layer net's gradient: constant between the units' switches (grey)")
ax.legend()
show(fig, "13_one_layer_steps.png")

# %% [markdown]
# ## 2. Depth shatters the feedforward gradient
#
# Stack layers and every unit of every layer switches somewhere; the switches of layer l move
# with those of the layers below. The number of linear pieces grows quickly with depth and dy/dx
# jumps between them. Batch norm (here in the feedforward net, h -> ReLU(BN(W h))) makes the
# effect fast. The residual net h -> h + W ReLU(BN(h)) carries x through its identities: each
# layer only *adds* a correction, and its gradient keeps its shape.
#
# **Batch norm and the derivative.** In training mode every output depends on all 256 inputs
# through the batch mean and variance, so the backward of sum_i y_i would mix in how x_i moves the
# statistics that all the other points see. `derivative` therefore lets the BN layers see the
# batch of 256 points once (train mode, momentum 1: the running statistics become this batch's)
# and then differentiates in eval mode: the slope, at each x_i, of the function those statistics
# define. The cell below shows how much the other choice would differ.

# %%
def gradient(variant, depth, seed=0):
    mr.manual_seed(seed)
    return shatter.derivative(shatter.ShatterNet(variant, depth, WIDTH), x)


depths_shown = (1, 5, 20) if not QUICK else (1, 3, 6)
fig, axes = plt.subplots(2, len(depths_shown), figsize=(11, 4.5), sharex=True)
for row, variant in enumerate(("feedforward_bn", "resnet_bn")):
    for col, depth in enumerate(depths_shown):
        gv = gradient(variant, depth)
        r1 = shatter.autocorrelation(gv, 1)[1]
        axes[row, col].plot(x, gv, lw=0.8, color=f"C{row}")
        axes[row, col].set_title(f"{shatter.LABELS[variant]}, depth {depth}: r(1) = {r1:.2f}", fontsize=9)
for ax in axes[1]:
    ax.set_xlabel("x")
show(fig, "13_depth.png")

# Train-mode batch statistics: d(sum_j y_j)/dx_i is no longer dy_i/dx_i.
mr.manual_seed(0)
net = shatter.ShatterNet("feedforward_bn", 3, WIDTH, dtype=np.float64)
frozen = shatter.derivative(net, x)
xt = mr.Tensor(x.reshape(-1, 1), requires_grad=True)
net.train()
net(xt).sum().backward()
print(f"train-mode gradient vs frozen statistics: relative difference "
      f"{np.linalg.norm(xt.grad[:, 0] - frozen) / np.linalg.norm(frozen):.2f}")

# %% [markdown]
# ## 3. How correlated is a gradient? White and brown noise
#
# The autocorrelation of a signal g_0 .. g_{n-1} at lag k compares it with itself shifted by k points:
#
#     r(k) = sum_i (g_i - mean g)(g_{i+k} - mean g) / sum_i (g_i - mean g)^2
#
# r(0) = 1. White noise (independent draws) has r(k) near 0 for every k >= 1; brown noise (a random
# walk, the running sum of white noise) stays near 1 for small lags and decays slowly. Balduzzi et
# al. compare gradients with exactly these two.

# %%
rng = np.random.default_rng(0)
white, brown = shatter.white_noise(len(x), rng), shatter.brown_noise(len(x), rng)
fig, ax = plt.subplots(figsize=(7, 3.5))
for label, sig, style in (("white noise", white, "--"), ("brown noise", brown, "--"),
                          (f"feedforward + BN, depth {depths_shown[-1]}", gradient("feedforward_bn", depths_shown[-1]), "-"),
                          (f"ResNet + BN, depth {depths_shown[-1]}", gradient("resnet_bn", depths_shown[-1]), "-")):
    r = shatter.autocorrelation(sig, 40)
    ax.plot(r, style, label=f"{label}: r(1) = {r[1]:.2f}, r < 0.5 from lag {shatter.half_lag(r)}")
ax.axhline(0.5, color="grey", lw=0.5)
ax.set_xlabel("lag k")
ax.set_ylabel("r(k)")
ax.legend(fontsize=7)
show(fig, "13_autocorrelation.png")

# %% [markdown]
# ## 4. The decay with depth, and a fit
#
# `shatter.measure` repeats this for every variant, depth and seed; `shatter.fit_decay` fits
# log r(1) against depth with a straight line (an exponential, r(1) = A exp(-L / tau)) and against
# log depth (a power law, r(1) = A L^-beta). The paper's theory says the feedforward correlation
# falls exponentially and a BN ResNet's like a power law. The full experiment, depths 1..50 at
# width 200 over 3 seeds, is `python -m minires shatter` (its figures and numbers are in
# `results/shatter.md`); here a coarser sweep.

# %%
depths = [1, 2, 4, 8] if QUICK else [1, 2, 4, 8, 16, 32]
seeds = [0] if QUICK else [0, 1, 2]
res = shatter.measure(variants=shatter.VARIANTS, depths=depths, seeds=seeds, width=WIDTH, progress=False)
floor = 2 / np.sqrt(len(x))  # below it, r(1) is as small as white noise's own r(1) (noise)
fig, ax = plt.subplots(figsize=(7, 4))
for c, (variant, r) in enumerate(res.items()):
    mean = r["r1"].mean(axis=1)
    # A log axis cannot show r(1) <= 0: draw such points, and any below the floor, on the floor.
    ax.plot(depths, np.maximum(mean, floor), "o-", color=f"C{c}", label=shatter.LABELS[variant])
    low = mean <= floor
    ax.plot(np.array(depths)[low], np.full(low.sum(), floor), "o", color=f"C{c}", mfc="white")
    fit = shatter.fit_decay(depths, mean, floor=floor)
    if fit:
        print(f"{shatter.LABELS[variant]:>30}: r(1) = {' '.join(f'{v:.2f}' for v in mean)};  "
              f"exponential tau = {fit['exponential']['tau']:.3g} layers (rms {fit['exponential']['rms_log']:.3f}), "
              f"power beta = {fit['power']['beta']:.3f} (rms {fit['power']['rms_log']:.3f})")
ax.axhline(floor, color="grey", lw=0.8, ls="--",
           label=f"noise floor 2/sqrt({len(x)}); hollow: r(1) at or below it, drawn on it")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("depth L")
ax.set_ylabel("r(1), mean over seeds")
ax.legend(fontsize=7)
show(fig, "13_decay.png")

# %% [markdown]
# Read the numbers above, not only the curves: which variant's r(1) falls fastest? Does the
# no-BN feedforward net shatter as fast as the BN one? (In this setting it does not: with He
# initialisation and no BN, a deep ReLU net maps nearby inputs to nearly parallel features, so
# fewer units switch between neighbouring points.) Which fit has the smaller residual for each?
#
# ## Summary
#
# * A one-layer rectifier net's dy/dx is a step function: constant between the units' switches.
# * `derivative` gives dy_i/dx_i at all points with one backward of sum_i y_i, because each y_i
#   depends on x_i only; with batch norm that needs the batch statistics frozen.
# * The autocorrelation r(k) tells white noise (r(1) ~ 0) from brown noise (r(1) ~ 1); a deep
#   feedforward + BN net's gradient drifts towards white noise, a ResNet's stays correlated.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the autocorrelation.** Write `autocorr(g, max_lag)` returning r(0..max_lag) as in
# section 3 (a NumPy array).

# %%
def check_exercise_1(autocorr):
    r = np.random.default_rng(1)
    for sig in (r.standard_normal(50), np.cumsum(r.standard_normal(80)), np.sin(np.arange(64) / 3)):
        np.testing.assert_allclose(autocorr(sig, 10), shatter.autocorrelation(sig, 10), rtol=1e-10, atol=1e-12)
    print("exercise 1: correct")


def autocorr(g, max_lag):
    raise NotImplementedError


# check_exercise_1(autocorr)

# %% [markdown]
# **Exercise 2: a one-layer ResNet by hand.** `ShatterNet("resnet", 1)` computes h0 = W0 x + b0,
# h1 = h0 + W1 ReLU(h0) + b1, y = w^T h1 + b. Write `resnet1_gradient(net, x)` returning dy/dx at
# every point from the net's weights (`net.input`, `net.layers[0]`, `net.output`), without autograd.

# %%
def check_exercise_2(resnet1_gradient):
    for seed in (0, 1):
        mr.manual_seed(seed)
        net = shatter.ShatterNet("resnet", 1, 20, dtype=np.float64)
        np.testing.assert_allclose(resnet1_gradient(net, x), shatter.derivative(net, x),
                                   rtol=1e-10, atol=1e-10)
    print("exercise 2: correct")


def resnet1_gradient(net, x):
    raise NotImplementedError


# check_exercise_2(resnet1_gradient)

# %% [markdown]
# **Exercise 3: count the steps.** For a one-layer feedforward net, write `n_steps(net, x)`: the
# number of grid intervals [x_i, x_{i+1}] in which dy/dx changes value, computed from the
# switching points -b_j / W_j alone (an interval with one or more switches counts once; assume no
# two switches cancel).

# %%
def check_exercise_3(n_steps):
    for seed in (0, 1, 2):
        mr.manual_seed(seed)
        net = shatter.ShatterNet("feedforward", 1, 30, dtype=np.float64)
        want = np.count_nonzero(np.diff(shatter.derivative(net, x)))
        assert n_steps(net, x) == want, f"seed {seed}: {n_steps(net, x)} != {want}"
    print("exercise 3: correct")


def n_steps(net, x):
    raise NotImplementedError


# check_exercise_3(n_steps)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Remove the mean, then one dot product per lag, divided by the lag-0 one.

# %%
def autocorr_solution(g, max_lag):
    d = np.asarray(g, dtype=np.float64) - np.mean(g)
    return np.array([d[: len(d) - k] @ d[k:] for k in range(max_lag + 1)]) / (d @ d)


check_exercise_1(autocorr_solution)

# %% [markdown]
# **2.** dh0/dx = W0; dh1/dx = W0 + W1 diag([h0 > 0]) W0; dy/dx = w^T dh1/dx. Biases only move the
# switches.

# %%
def resnet1_gradient_solution(net, x):
    W0, b0 = net.input.weight.data[:, 0], net.input.bias.data
    W1, w = net.layers[0].weight.data, net.output.weight.data[0]
    h0 = W0[None, :] * x[:, None] + b0[None, :]          # (points, width)
    dh1 = W0[None, :] + ((h0 > 0) * W0[None, :]) @ W1.T  # (points, width)
    return dh1 @ w


check_exercise_2(resnet1_gradient_solution)

# %% [markdown]
# **3.** An interval (x_i, x_{i+1}] changes the set of active units exactly when a switch lies in it.

# %%
def n_steps_solution(net, x):
    s = -net.input.bias.data / net.input.weight.data[:, 0]
    return sum(bool(np.any((s > lo) & (s <= hi))) for lo, hi in zip(x[:-1], x[1:]))


check_exercise_3(n_steps_solution)
