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
# # Lesson 5: Gradient flow in plain and residual nets
#
# Section 4.1 of the paper makes a careful claim about deep plain nets. Their training error rises
# with depth (Figure 6, lesson 6), yet the authors "argue that this optimization difficulty is
# unlikely to be caused by vanishing gradients": the nets have batch norm (BN), and the authors
# checked that forward signals have non-zero variance and backward gradients "exhibit healthy
# norms". This lesson measures those backward gradients, layer by layer, in plain and residual
# nets of 20, 56 and 110 layers, and then takes the two things that keep them alive in a plain
# net, BN and the initialisation, away one at a time.
#
# **By the end you will be able to**
#
# 1. measure ||dL/dx_l|| (block outputs) and ||dL/dW_l|| (conv weights) at every layer with
#    `minires.experiments.probes`, which uses the engine's hooks and changes nothing inside the
#    models;
# 2. read the log-scale profile: a plain net's gradient changes by a *constant factor per layer*,
#    so its first-to-last ratio grows exponentially with depth, while a ResNet's grows slowly;
# 3. say what BN and He initialisation each contribute, and why a plain net without BN and with
#    Xavier initialisation loses its gradient completely;
# 4. say what these measurements support in the paper's argument, and what they cannot show.
#
# Everything is measured at initialisation, on one batch of random images with random labels.
# No data is involved yet; lesson 6 trains the same nets.
#
# Run time (full run: 10 s, quick: 2 s), on 2 CPU cores; `MINIRES_QUICK=1` shrinks the depths to
# 8/14/20 and the batch to 4 images of 16x16. Open as a notebook with
# `jupytext --to notebook lessons/05_gradient_flow.py`, run cell by cell in VS Code, or run
# `python lessons/05_gradient_flow.py`.

# %%
import os

import numpy as np
from matplotlib import ticker

from minires import nn
from minires.experiments import flow, probes
from lesson_setup import QUICK, OUT, plt, show  # quick mode and figures, see lesson_setup.py


# The paper's CIFAR depths 6n + 2 (sec. 4.2); the CLI `python -m minires flow` uses the same.
DEPTHS = (8, 14, 20) if QUICK else (20, 56, 110)
BATCH, IMAGE = (4, (3, 16, 16)) if QUICK else (16, (3, 32, 32))
x, y = flow.random_batch(BATCH, shape=IMAGE, seed=0)
print(f"depths {DEPTHS}; one batch of {BATCH} random {IMAGE} images with random labels")

# %% [markdown]
# ## 1. Why the shortcut should matter: a product of Jacobians
#
# Let x_l be the output of block l, and L the loss. The chain rule through blocks l+1 .. L gives
#
#     plain:    dL/dx_l = dL/dx_L  J_{L-1} ... J_{l+1} J_l          with J_i = dF_i/dx_i
#     residual: dL/dx_l = dL/dx_L (I + J_{L-1}) ... (I + J_l)       from y = F(x, {W_i}) + x (Eq. 1)
#
# The plain product has L - l factors. If each one scales a gradient by about the same factor a,
# the gradient at layer l is a^(L-l) times the one at the top: it vanishes for a < 1 and explodes
# for a > 1, *exponentially in depth*. Multiply out the residual product and one term is the bare
# identity, dL/dx_L itself. That term reaches every block whatever the J_i are, and the other
# terms add to it. (The paper's block has a ReLU after the sum, which passes the gradient wherever
# the sum is positive; lesson 4 measured a single block.) So we predict: plain profiles are
# straight lines on a log scale, residual profiles are much flatter.
#
# ## 2. How minires measures it
#
# `probes.record_gradients(model, x, labels)` does one forward and one backward pass. A forward hook
# on every block tags the block's output tensor with a backward hook, which the engine calls with
# dL/d(output). After the backward it also reads every conv weight's gradient. It returns L2 norms
# in forward order and restores whatever it touched (BN running statistics, gradients, modes).
# `flow.build_model(depth, residual)` builds the CIFAR net of sec. 4.2: option-A shortcuts for
# the ResNet, no shortcuts at all for its plain twin. Everything else is identical, down to the
# random weights.

# %%
model = flow.build_model(DEPTHS[0], residual=True)
record = probes.record_gradients(model, x, y)
print(f"loss {record['loss']:.3f}")
print("||dL/dx|| at the input and after each block:")
for name, norm in record["activations"].items():
    print(f"  {name:10s} {norm:.3e}")
print(f"{len(record['weights'])} conv weights, first {list(record['weights'])[:3]} ...")

# %% [markdown]
# ## 3. The paper's setting: BN and He initialisation
#
# `flow.measure` runs this for every depth, plain and residual, on 32x32 images. We write the
# loop out, so that you can see the three calls and so that quick mode can use smaller images.
# The ratio first / last compares the layer nearest the input with the one nearest the loss:
# 1 means the gradient arrives undiminished, and >> 1 or << 1 means it grew or shrank on the way
# down.

# %%
def measure(depths, batch_norm=True, init="he"):
    """Plain and residual nets of each depth at initialisation, on the batch (x, y): a list of
    runs."""
    runs = []
    for depth in depths:
        for residual in (False, True):
            net = flow.build_model(depth, residual, batch_norm=batch_norm, init=init, seed=0)
            rec = probes.record_gradients(net, x, y)
            runs.append({"name": f"{'resnet' if residual else 'plain'}{depth}", "depth": depth,
                         "residual": residual, **rec,
                         "weight_ratio": flow.first_last_ratio(rec["weights"]),
                         "activation_ratio": flow.first_last_ratio(rec["activations"])})
    return runs


runs = measure(DEPTHS)
print(flow.table(runs))
show(flow.plot_flow(runs, os.path.join(OUT, "05_flow.png"),
                    title="Gradient norms at initialisation: BN (train mode), He init"))

# %% [markdown]
# Read the top row first. Each line is one net and each point one conv layer, with the input on
# the left. Three things stand out.
#
# * **Nothing vanishes.** With BN, the plain nets' gradients do not shrink towards the input; they
#   *grow*. That agrees with the paper: whatever makes plain-56 train worse, it is not a
#   vanishing gradient.
# * **Plain profiles are straight lines.** A constant factor per layer, as the Jacobian product
#   predicts. The factor is above 1 here. BN in train mode is known to make deep plain nets'
#   gradients explode at initialisation (Yang et al., 2019, "A mean field theory of batch
#   normalization").
# * **Residual profiles are flat by comparison.** They still rise towards the input, but by a
#   small factor.
#
# The ratios turn this into numbers. A 6n + 2 net has 6n + 1 convs, so there are depth - 2 steps
# from the first to the last, and the (depth - 2)-th root of the ratio is the average growth per
# layer.

# %%
print(f"{'net':>10} {'|dW first| / |dW last|':>24} {'growth per layer':>18}")
for r in runs:
    per_layer = r["weight_ratio"] ** (1 / (r["depth"] - 2))
    print(f"{r['name']:>10} {r['weight_ratio']:24.3g} {per_layer:18.3f}")

fig, ax = plt.subplots(figsize=(5.5, 3.8))
for residual, style in ((False, "o-"), (True, "s--")):
    rs = [r for r in runs if r["residual"] == residual]
    ax.semilogy([r["depth"] for r in rs], [r["weight_ratio"] for r in rs], style,
                label="ResNet" if residual else "plain")
ax.axhline(1, color="grey", lw=0.8)
ax.yaxis.set_minor_locator(ticker.NullLocator())  # minor log ticks cost more to draw than the data
ax.set(xlabel="depth (layers)", ylabel="||dL/dW|| first conv / last conv",
       title="First-to-last gradient ratio against depth")
ax.grid(alpha=0.3)
ax.legend()
show(fig, "05_ratio_vs_depth.png")

# %% [markdown]
# For the plain nets the growth per layer stays roughly constant as they get deeper, so the ratio
# rises as a straight line on the log axis: exponential in depth. For the ResNets the growth per
# layer falls as depth rises, and the ratio grows far more slowly. At 110 layers the plain net's
# first conv receives a gradient millions of times larger than its last conv; the ResNet's, a few
# tens of times.
#
# ## 4. Take BN and He init away, one at a time
#
# Two things keep a plain net's gradient alive, and the paper mentions both in sec. 1:
# "normalized initialization ... and intermediate normalization layers". We switch each off.
# `batch_norm=False` replaces every BN by the identity (`surgery.strip_batch_norm`), and
# `init="xavier"` redraws the convs from Glorot's N(0, 2 / (fan_in + fan_out)) instead of He's
# N(0, 2 / fan_out) (`flow.init_conv_weights`). With C_in = C_out, Xavier's variance is half of
# He's. He et al. (2015, "Delving deep into rectifiers") doubled it to make up for the ReLU, which
# zeroes half of every signal. We do this at the deepest depth.

# %%
DEEP = DEPTHS[-1]
settings = [("BN, He init (the paper)", True, "he"), ("BN, Xavier init", True, "xavier"),
            ("no BN, He init", False, "he"), ("no BN, Xavier init", False, "xavier")]
grid = {}
for title, bn, init in settings:
    paper_setting = (bn, init) == (True, "he")  # measured above already
    grid[title] = runs[-2:] if paper_setting else measure([DEEP], batch_norm=bn, init=init)

print(f"depth {DEEP}: {'setting':>24} {'net':>10} {'loss':>10} {'|dL/dx| input':>14} "
      f"{'|dW| first/last':>16}")
for title, pair in grid.items():
    for r in pair:
        print(f"{title:>33} {r['name']:>10} {r['loss']:10.4g} {r['activations']['input']:14.3e} "
              f"{r['weight_ratio']:16.3g}")

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (title, pair) in zip(axes, grid.items()):
    for r in pair:
        a = list(r["activations"].values())
        ax.semilogy(range(len(a)), a, "s--" if r["residual"] else "o-", ms=3, lw=1,
                    label="ResNet" if r["residual"] else "plain")
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.set(title=title, xlabel="block (0 = input image)")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("||dL/dx_l||")
axes[0].legend()
fig.suptitle(f"Block-output gradients at depth {DEEP}: each panel has its own scale", y=1.03)
show(fig, "05_bn_and_init.png")

# %% [markdown]
# Panel by panel (the numbers quoted are from the full run, at 110 layers):
#
# * **BN, Xavier.** The block gradients are practically the same as with He. BN divides each
#   channel by its own standard deviation, so the scale of the weights before it drops out of the
#   forward pass. Only the deepest plain net's curves drift apart a little. Tiny differences near
#   the input (BN's eps, rounding) are amplified by the same Jacobian product that amplifies the
#   gradient: even running plain-110 in float64 instead of float32 moves its input gradient by
#   about 20%. Exercise 1 shows what the weight scale does to the *weight* gradients instead.
# * **No BN, He init.** The plain net's gradient now stays within a factor of about 20 over 110
#   layers. This is what He init is designed for: with `fan_out` it keeps the variance of the
#   backward signal constant through conv + ReLU. The ResNet without BN blows up instead. Each
#   block adds a branch of about the same variance as its input, so the signal roughly doubles in
#   variance per block, going forwards and backwards, and the loss is astronomically large. The
#   paper never trains ResNets without BN; later work makes it possible by scaling the branches
#   down.
# * **No BN, Xavier init.** The classic vanishing gradient. Each conv + ReLU halves the variance
#   of the backward signal, so the plain net's input gradient shrinks by about 2^(-1/2) per layer,
#   to around 1e-20 at 110 layers. The ResNet still gets its gradient through, because the
#   identity terms do not pass through the shrinking convs.
#
# ## 5. What this does and does not tell us about degradation
#
# The measurements support the paper's narrow claim. With BN, the plain nets' gradients do not
# vanish; the signal is there. The vanishing gradient appears only once both remedies are gone,
# and either one on its own prevents it.
#
# They also show something the paper does not dwell on. A BN plain net's gradient is far from
# uniform across layers: at initialisation its first layers receive gradients orders of magnitude
# larger than its last ones. Whether to call that "healthy" is a matter of taste. It is also not
# a whole explanation. BN makes each conv's output independent of its weight scale, so a large
# step mostly inflates ||W||, which then shrinks that layer's later gradients (Exercise 1). The
# profile changes as training proceeds, and lesson 6 records it epoch by epoch.
#
# What these norms cannot show is whether SGD makes *progress*. A gradient can be large and still
# be a poor direction, for instance if it is close to noise across neighbouring inputs (Balduzzi
# et al., 2017, "The shattered gradients problem"). The paper's own guess is that deep plain nets
# "may have exponentially low convergence rates". The honest summary: vanishing gradients are
# ruled out, the mechanism is not pinned down, and the fix, shortcuts that keep an identity path
# in the Jacobian product, works whatever the mechanism turns out to be.
#
# ## Summary
#
# * Plain: dL/dx_l is a product of L - l Jacobians, so its norm changes by a roughly constant
#   factor per layer. The first/last ratio is exponential in depth.
# * Residual: the product (I + J) contains the identity, so the ratio grows slowly with depth.
# * With BN, plain nets' gradients do not vanish at initialisation; at depth they grow towards the
#   input. Without BN, He init keeps them level and Xavier init makes them vanish.
# * `probes.record_gradients`, `flow.measure`, `flow.plot_flow`, and `python -m minires flow
#   [--no-bn] [--init xavier]` reproduce all of this.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: BN and the weight scale.** In a net with BN, multiply the weight of
# `layer1.0.conv1` by 2. By what factor does ||dL/dW|| of that layer change? Hint: BN(2z) = BN(z),
# so the loss as a function of W satisfies L(2W) = L(W). Differentiate both sides.

# %%
def check_exercise_1(predicted_factor):
    net = flow.build_model(DEPTHS[0], residual=True)
    before = probes.record_gradients(net, x, y)["weights"]["layer1.0.conv1.weight"]
    net.layer1[0].conv1.weight.data *= 2
    after = probes.record_gradients(net, x, y)["weights"]["layer1.0.conv1.weight"]
    measured = after / before
    assert np.isclose(predicted_factor, measured, rtol=1e-3), \
        f"not quite: you predicted {predicted_factor}, the net says {measured:.4f}"
    print(f"exercise 1: correct (measured {measured:.4f})")


# check_exercise_1(...)

# %% [markdown]
# **Exercise 2: how much Xavier loses.** In a plain net *without* BN, the convs have no bias and
# ReLU is positively homogeneous (relu(c z) = c relu(z) for c > 0). So multiplying one conv's
# weights by c multiplies the logits, and every gradient below that conv, by c. The `xavier` and
# `he` nets of `flow.build_model` draw the same random numbers at different scales. Write
# `predicted_ratio(net)`, returning ||dL/dx_input|| (Xavier) / ||dL/dx_input|| (He) as a product
# over the net's `nn.Conv2d` layers, using fan_in = C_in k^2 and fan_out = C_out k^2. The checker
# measures it at depth 20 (8 in quick mode) and expects agreement within 2%: the logits are small in
# both nets, so dL/dlogits barely changes.

# %%
def check_exercise_2(predicted_ratio):
    depth = DEPTHS[0] if QUICK else 20
    input_grad = {}
    for init in ("he", "xavier"):
        net = flow.build_model(depth, residual=False, batch_norm=False, init=init)
        input_grad[init] = probes.record_gradients(net, x, y)["activations"]["input"]
    measured = input_grad["xavier"] / input_grad["he"]
    predicted = predicted_ratio(net)
    assert np.isclose(predicted, measured, rtol=0.02), \
        f"predicted {predicted:.4g}, measured {measured:.4g}"
    print(f"exercise 2: correct (predicted {predicted:.4g}, measured {measured:.4g} "
          f"at depth {depth})")


def predicted_ratio(net):
    raise NotImplementedError


# check_exercise_2(predicted_ratio)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Differentiate L(cW) = L(W) with respect to W: c L'(cW) = L'(W), so L'(cW) = L'(W) / c.
# Doubling the weight halves its gradient. In Section 4, BN + Xavier convs are about 1/sqrt(2)
# the scale of BN + He convs (for C_in = C_out), so their weight gradients are about sqrt(2)
# larger, while the block gradients match. (BN's eps = 1e-5 breaks the invariance very slightly.)

# %%
check_exercise_1(0.5)

# %% [markdown]
# **2.** He draws std sqrt(2 / fan_out) and Xavier std sqrt(2 / (fan_in + fan_out)), from the
# same normal numbers. Each conv is therefore scaled by c = sqrt(fan_out / (fan_in + fan_out)), and
# the input gradient by the product of all the c. That is 2^(-1/2) per conv with C_in = C_out,
# and closer to 1 where fan_out > fan_in: at the stem and at the first conv of each new stage.

# %%
def predicted_ratio_solution(net):
    ratio = 1.0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            c_out, c_in, kh, kw = m.weight.shape
            fan_in, fan_out = c_in * kh * kw, c_out * kh * kw
            ratio *= np.sqrt(fan_out / (fan_in + fan_out))
    return ratio


check_exercise_2(predicted_ratio_solution)
