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
# # Lesson 15: Signal propagation, and training without batch norm
#
# Lessons 5 and 6 showed that a deep ResNet trains where its plain twin does not. But every
# ResNet so far had batch norm after every convolution. Take it out, and a ResNet-56 no longer
# trains. Why? De and Smith (2020, "Batch normalization biases residual blocks towards the
# identity function in deep networks") answer with the size of the signal at initialisation,
# block by block; Brock, De and Smith (2021, "Characterizing signal propagation to close the
# performance gap in unnormalized ResNets") made that picture a tool, the *signal propagation
# plot*. Two remedies start every residual block as the identity without any normalisation:
# SkipInit (De and Smith: a scalar on each branch, at 0) and Fixup (Zhang, Dauphin and Ma 2019,
# "Fixup initialization: residual learning without normalization").
#
# **By the end you will be able to**
#
# 1. derive what a residual block does to the variance of its input, with batch norm (it grows by
#    about one per block) and without (it about doubles), and see it in a few lines of NumPy;
# 2. build the nets, `models.resnet56(norm=None)`, `init="skipinit"` and `init="fixup"`, and check
#    their parameters and initialisation against the papers;
# 3. draw a signal propagation plot with `minires.experiments.signal` and read it;
# 4. train the four nets with one recipe (`minires.experiments.normfree`) and judge what the plot
#    predicted, and what holds in the miniature and what does not.
#
# Run time (full run: 33 s, quick: 4 s) on 2 CPU cores, most of it in the training of section 5;
# `MINIRES_QUICK=1` shrinks everything (its numbers are then only a smoke test). Open as a
# notebook with `jupytext --to notebook lessons/15_signal_propagation.py`, run cell by cell in VS
# Code, or run `python lessons/15_signal_propagation.py`.

# %%
import json
import math
import os

import numpy as np

import minires as mr
from minires import data, models, nn
from minires.experiments import normfree, signal
from minires.models.normfree import FixupBasicBlock, SkipInit, SkipInitBasicBlock
from lesson_setup import OUT, QUICK, plt, show  # quick mode and figures, see lesson_setup.py


def n_params(module):
    return sum(p.size for p in module.parameters())


# %% [markdown]
# ## 1. The variance of a residual stream, by hand
#
# A block of the original ResNet computes x_{l+1} = ReLU(x_l + F(x_l)). At initialisation the
# branch F and the stream x_l are roughly independent, so the variance of the sum is the sum of
# the variances:
#
#     Var(x_l + F(x_l)) ~ Var x_l + Var F(x_l)
#
# * **With batch norm** at the end of the branch (in training mode, gamma = 1), F(x_l) has
#   variance 1 per channel whatever x_l is: the stream grows by about 1 per block (a little less,
#   as the ReLU clips part of the sum), Var x_l ~ l. The branch's share of the stream,
#   sqrt(Var F / Var x_l) ~ 1/sqrt(l), shrinks with depth: a deep net starts close to the identity.
# * **Without it**, He initialisation makes each layer keep (or double) the second moment of its
#   input, so Var F(x_l) is at least Var x_l and every block about doubles the stream: 2^l.
# * **SkipInit** multiplies F by a scalar alpha = 0: nothing changes from block to block.
# * **Fixup** sets the last layer of every branch to 0: the same, at initialisation.
#
# Check it with vectors instead of images: 256 samples of 128 features, a branch of two He
# layers, W2 ReLU(W1 x).

# %%
rng = np.random.default_rng(0)
d, L = 128, (10 if QUICK else 40)
x0 = np.maximum(rng.standard_normal((256, d)), 0)


def he(d):
    return rng.standard_normal((d, d)) * np.sqrt(2 / d)


def toy_stream(kind):
    """The average feature variance of x_l, l = 0..L, through L blocks of ``kind``."""
    x, var = x0.copy(), [x0.var(axis=0).mean()]
    for _ in range(L):
        W1, W2 = he(d), he(d)
        if kind.startswith("Fixup"):
            W1 = W1 * L ** -0.5            # rule 2: the branch's other layers scaled by L^-1/2
        if kind == "Fixup":
            W2 = np.zeros((d, d))          # rule 1: the last layer of the branch at 0
        h = np.maximum(x @ W1, 0) @ W2
        if kind == "batch norm":
            h = (h - h.mean(axis=0)) / h.std(axis=0)
        if kind == "SkipInit":
            h = 0 * h                      # alpha = 0
        x = np.maximum(x + h, 0)
        var.append(x.var(axis=0).mean())
    return np.array(var)


kinds = ("batch norm", "no normalisation", "SkipInit", "Fixup", "Fixup, rule 2 alone")
fig, ax = plt.subplots(figsize=(7, 3.5))
for kind in kinds:
    v = toy_stream(kind)
    ax.semilogy(v, label=kind)
    print(f"{kind:>20}: Var x_0 = {v[0]:.3f}, Var x_{L} = {v[-1]:.4g}, "
          f"x{(v[-1] / v[0]) ** (1 / L):.3f} per block")
ax.set_xlabel("block l")
ax.set_ylabel("average feature variance of x_l")
ax.legend(fontsize=8)
show(fig, "15_toy_stream.png")

# %% [markdown]
# Batch norm: a straight line (on a log axis, a curve that flattens); no normalisation: a
# straight line on the log axis, an exponential. The last line is Fixup with rule 2 alone (the
# last layers left He-initialised): each branch now adds about Var x / L, and over L blocks the
# stream grows by a bounded factor, about (1 + 1/L)^L, instead of 2^L. Rule 1 makes the start
# exactly flat; rule 2 keeps the growth bounded once training moves the last layers off zero.
#
# ## 2. The nets
#
# Every builder takes the options (`norm` plays the part of torchvision's `norm_layer`):
#
#     models.resnet56()                              # batch norm, He init: the paper's
#     models.resnet56(norm=None)                     # an Identity where each BN was
#     models.resnet56(norm=None, init="skipinit")    # y = ReLU(alpha F(x) + x), alpha = 0
#     models.resnet56(norm=None, init="fixup")       # Fixup's rules 1-3
#
# Fixup's block (the paper's Fig. 1, right) is F(x) = scale * conv2(ReLU(conv1(x + b1a) + b1b) +
# b2a) + b2b: a scalar bias before each conv and activation, a scalar multiplier, no BN. The
# parameter counts follow: batch norm has 2 per channel after every conv; SkipInit one alpha per
# block; Fixup 5 scalars per block and 2 for the net.

# %%
depth = 20 if QUICK else 56
n = (depth - 2) // 6
nets = {}
for variant in signal.VARIANTS:
    nets[variant] = signal.build_net(variant, depth, seed=0)
    print(f"ResNet-{depth}, {signal.LABELS[variant]:>16}: {n_params(nets[variant]):,} parameters")
bn_params = 2 * (16 + 2 * n * (16 + 32 + 64))
print(f"closed forms: no norm = BN - {bn_params:,}; SkipInit = no norm + {3 * n}; "
      f"Fixup = no norm + {5 * 3 * n + 2}")

fixup = nets["fixup"]
blocks = [m for m in fixup.modules() if isinstance(m, FixupBasicBlock)]
w = np.concatenate([b.conv1.weight.data.ravel() for b in blocks[-n:]])  # stage 3
print(f"Fixup: {fixup.num_branches} branches; stage-3 conv1 std {w.std():.4f}, "
      f"He std x L^-1/2 = {math.sqrt(2 / (9 * 64)) * fixup.num_branches ** -0.5:.4f}; "
      f"every conv2 zero: {all(not b.conv2.weight.data.any() for b in blocks)}; "
      f"fc zero: {not fixup.fc.weight.data.any()}")
alphas = [float(m.alpha.data[0]) for m in nets["skipinit"].modules() if isinstance(m, SkipInit)]
print(f"SkipInit: {len(alphas)} alphas, all {set(alphas)}")

# %% [markdown]
# ## 3. A signal propagation plot
#
# For the activations x of a batch at one point of the net, shape (N, C, H, W), two numbers:
#
#     average squared channel mean   mean_c ( mean_{n,h,w} x[n, c, h, w] )^2
#     average channel variance       mean_c  var_{n,h,w} x[n, c, h, w]
#
# `signal.measure(model, x)` puts a forward hook on every block and records both numbers for the
# residual stream (the stem's output, then every block's output), and the average channel
# variance of each branch's output F(x_l), the term the block adds to its shortcut (for that it
# runs `block.residual_function` on the block's input). It measures in training mode, as the
# first training step sees the net, and leaves the model as it was. The batch: the first
# training digits, normalised as the training loader normalises them (`signal.batch`).

# %%
spp_depth = 20 if QUICK else 110
x, labels = next(iter(data.DataLoader(data.load_digits()[0], 32 if QUICK else 128)))
records = {v: signal.measure(signal.build_net(v, spp_depth, seed=0), x) for v in signal.VARIANTS}
show(signal.plot_signal(records, os.path.join(OUT, "15_signal.png"),
                        title=f"ResNet-{spp_depth} at initialisation"))
print(signal.table({spp_depth: {v: signal.summarise(r) for v, r in records.items()}}))

# %% [markdown]
# Read it block by block. Batch norm (blue): the variance climbs within each stage along a
# nearly straight line and the branch's variance (right) is exactly 1; the drops are the first
# blocks of stages 2 and 3, where the option-A shortcut subsamples and appends as many zero
# channels, so the average over channels falls. Without normalisation (red) the same convolutions
# multiply the stream at every block, and the branch follows it up. SkipInit and Fixup lie on one
# line: every branch is exactly 0, the stream is flat within each stage, and only the zero
# channels of the transitions change it.
#
# How does the picture change with depth? `signal.run` measures every variant at several depths
# and writes the plot above for the deepest and this one: the stream's variance after the last
# block against depth (left), and batch norm's branch share against the block (right).

# %%
depths = (8, 14) if QUICK else (20, 56, 110)
report = signal.run(os.path.join(OUT, "15_signal_run"), depths=depths, batch_size=len(x),
                    progress=False, log=lambda *a: None)
show(os.path.join(OUT, "15_signal_run", "signal.png"))
show(os.path.join(OUT, "15_signal_run", "signal_depth.png"))
for d in depths:
    s = report["summary"][d]
    share = s["batch_norm"]["branch_share_last"]
    print(f"ResNet-{d:<4} batch norm: final Var x {s['batch_norm']['final_variance']:7.3f}, "
          f"share {share:.3f}, share x sqrt(blocks per stage) {share * math.sqrt((d - 2) // 6):.3f}"
          f";  no norm: final Var x {s['no_norm']['final_variance']:.3g}, "
          f"x{s['no_norm']['growth_per_block']:.2f} per block")

# %% [markdown]
# With batch norm the final variance grows about in proportion to the blocks per stage, and
# share x sqrt(blocks per stage) stays about constant: the 1/sqrt(depth) of De and Smith. Without
# normalisation the stream grows by a factor of about 1.4 to 1.8 per block, so by 2^27 ~ 10^8 in
# ResNet-56 and 10^16 in ResNet-110, minus what the zero channels take at the transitions.
#
# ## 4. What the plot predicts
#
# The classifier sees the stream after the last block. An exploding stream means exploding
# logits, a loss far above chance (log 10 = 2.30), and gradients to match: SGD's first steps
# throw the weights far away. `normfree.at_init` measures the loss and the spread of the logits
# on one batch at initialisation.

# %%
for variant in signal.VARIANTS:
    model = normfree.build_net(variant, spp_depth, seed=0)
    init = normfree.at_init(model, x, labels)
    print(f"ResNet-{spp_depth}, {signal.LABELS[variant]:>16}: loss {init['loss']:10.4g}, "
          f"logit std {init['logit_std']:.4g}")

# %% [markdown]
# The prediction, for ResNet-110 and (section 3's table) already for ResNet-56: without
# normalisation SGD's first steps diverge; batch norm, SkipInit and Fixup start at a loss near
# log 10 and can train. Fixup's logits are exactly 0 (its classifier starts at 0) and SkipInit's
# are those of a linear classifier on the stem's features (every block is the identity). For
# ResNet-20 the plot predicts something else: its stream without normalisation starts small (no
# BN after the stem) and 9 blocks only bring its variance to about 0.27, below batch norm's. The
# explosion is geometric, and at depth 20 it has not happened yet.
#
# ## 5. Train them
#
# `normfree.run` trains the four nets with one recipe (`normfree.RECIPE`: the shared digits
# recipe, batch 32, lr 0.025, momentum 0.9, weight decay 1e-4, /10 at 50% and 75% of the epochs,
# no warm-up), records the loss at initialisation, where a run diverged, the errors per epoch and
# how fast each net trained, and checks the predictions in every seed. The full run,
# `python -m minires normfree`, trains ResNet-56 for 10 epochs, three seeds (the results page,
# `results/normfree.md`); here ResNet-20 for 5 epochs, one seed, which takes a minute or two,
# and tests the other prediction: at this depth the net without normalisation should not
# diverge.

# %%
quick = dict(depths=(8,), seeds=(0,), recipe=normfree.RECIPE.replace(epochs=1), limit=64)
full = dict(depths=(20,), seeds=(0,), recipe=normfree.RECIPE.replace(epochs=5))
run = normfree.run(os.path.join(OUT, "15_normfree"), progress=False, log=lambda *a: None,
                   **(quick if QUICK else full))
show(os.path.join(OUT, "15_normfree", "normfree.png"))
print(normfree.table(run["outcomes"]))
with open(os.path.join(OUT, "15_signal_propagation.json"), "w") as f:  # the numbers quoted below
    json.dump({"outcomes": run["outcomes"]}, f, indent=1)
for c in run["claims"].values():
    print(f"{'holds' if c['holds'] else 'does not hold'}: {c['claim']} ({c['detail']})")

# %% [markdown]
# (The claims printed are the ones the command checks for ResNet-56; at depth 20 the first one,
# "does not train", is the prediction that should fail.)
#
# ## What holds in the miniature, and what does not
#
# In this lesson's full run (seed 0, ResNet-20, 5 epochs) batch norm ended
# at 4.7% training error; the net without normalisation did not diverge and ended at 26.0%, as
# the plot predicted for this depth; SkipInit and Fixup ended at 85.3% and 87.0%: in 5 epochs
# their branches had barely left 0. In the reference run of the full command (ResNet-56, 10
# epochs, seeds 0, 1 and 2; `results/normfree.md`):
#
# * **the plot's prediction holds**: without normalisation ResNet-56 diverged in every seed, at
#   step 2 or 3 of the first epoch, from a loss at initialisation of 17 to 421;
# * **batch norm trains**: 2.2% to 3.9% training error, below 10% after epoch 5 or 6;
# * **SkipInit and Fixup learn without any normalisation**, but slowly: they end at 44% to 77%
#   training error. The papers' claim that they train as well as batch norm **does not hold in
#   this budget** (both papers train for far longer); a flat plot says a net will not blow up,
#   not how fast its branches grow from 0;
# * the plots themselves (`results/signal.md`) hold as the argument says: batch norm's stream
#   grows like depth^1.09 and its branches' share like depth^-0.55; without normalisation the
#   stream grows by 1.7 per block, to 3e10 after the last block of ResNet-110; SkipInit and Fixup
#   are exactly flat within each stage. But the growth with batch norm is about 0.4 of variance
#   per block, not 1: the ReLU after each sum turns part of it into mean (the second moment grows
#   by 0.8 to 0.9 per block).
#
# How the recipe was chosen, on tuning seeds, is on the results page: no single lr let batch
# norm, SkipInit and Fixup all train within 10 epochs. SkipInit does better at twice the lr
# (below 10% training error), batch norm worse, and Fixup, whose scalars get the same lr as every
# weight here (the authors' code gives them a tenth), collapses to chance there.
#
# ## Summary
#
# * Var(x + F(x)) ~ Var x + Var F: with batch norm the stream grows linearly and each branch's
#   share shrinks like 1/sqrt(depth); without it the stream grows geometrically.
# * The signal propagation plot shows it block by block, at initialisation, in two numbers per
#   block: the average squared channel mean and the average channel variance.
# * SkipInit (alpha = 0) and Fixup (the last layer of each branch and the classifier at 0, the
#   other branch layers scaled by L^(-1/(2m-2)), scalar biases) start every block as the identity
#   without normalisation: flat plots.
# * What the plot predicts, the training checks: an exploding stream diverges.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the two numbers of the plot.** Write `channel_stats(x)` returning (average
# squared channel mean, average channel variance) of an array (N, C, H, W), as in section 3.

# %%
def check_exercise_1(channel_stats):
    r = np.random.default_rng(1)
    for shape in ((4, 3, 5, 5), (2, 16, 1, 1), (7, 1, 3, 2)):
        a = r.standard_normal(shape) * r.uniform(0.5, 3, (1, shape[1], 1, 1)) + r.uniform(-1, 1)
        got, want = channel_stats(a), signal.channel_stats(a)
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=f"shape {shape}")
    print("exercise 1: correct")


def channel_stats(x):
    raise NotImplementedError


# check_exercise_1(channel_stats)

# %% [markdown]
# **Exercise 2: Fixup by hand.** Write `fixup_rules(model)`: given a CIFAR ResNet built with
# `norm=None` (He-initialised, no BN), apply Fixup's rules 1 and 2 in place: with L the number of
# blocks, scale every block's `conv1` weight by L^(-1/(2m-2)) for m = 2 layers per branch, set
# every `conv2` weight and the classifier `fc` (weight and bias) to 0. The checker compares the
# weights with `models.cifar_resnet(depth, init="fixup")` for the same seed.

# %%
def check_exercise_2(fixup_rules):
    for depth, seed in ((8, 0), (20, 3)):
        mr.manual_seed(seed)
        mine = models.cifar_resnet(depth, in_channels=1, norm=None)
        fixup_rules(mine)
        mr.manual_seed(seed)
        ref = models.cifar_resnet(depth, in_channels=1, init="fixup")
        got = dict(mine.named_parameters())
        for name, p in ref.named_parameters():
            if name in got:  # Fixup's scalars are new parameters, not yours to make here
                np.testing.assert_allclose(got[name].data, p.data, rtol=1e-6, atol=0,
                                           err_msg=f"depth {depth}: {name}")
    print("exercise 2: correct")


def fixup_rules(model):
    raise NotImplementedError


# check_exercise_2(fixup_rules)

# %% [markdown]
# **Exercise 3: SkipInit's first gradient.** At alpha = 0 a SkipInit block computes
# y = ReLU(x + alpha F(x)) = ReLU(x), so its branch weights get no gradient (every path to them
# passes through alpha). alpha itself does. Write `alpha_gradient(block, x, g)`: dL/dalpha for an
# upstream gradient g = dL/dy, from `block.residual_function` (which is alpha F(x)) and the chain
# rule, without calling backward. (Hint: at alpha = 0 the ReLU's gate is [x > 0]; you need F(x),
# not alpha F(x).)

# %%
def check_exercise_3(alpha_gradient):
    r = np.random.default_rng(2)
    for planes, stride in ((4, 1), (8, 2)):
        mr.manual_seed(stride)
        block = SkipInitBasicBlock(4, planes, stride, "A").double()
        x = mr.Tensor(np.abs(r.standard_normal((2, 4, 6, 6))) - 0.2)
        y = block(x)
        g = r.standard_normal(y.shape)
        block.zero_grad()
        y.backward(g)
        np.testing.assert_allclose(alpha_gradient(block, x, g), block.alpha.grad[0], rtol=1e-8,
                                   err_msg=f"stride {stride}")
        assert not block.conv1.weight.grad.any(), "the branch weights should get no gradient"
    print("exercise 3: correct")


def alpha_gradient(block, x, g):
    raise NotImplementedError


# check_exercise_3(alpha_gradient)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Means and variances over (N, H, W), one per channel, then averaged over the channels.

# %%
def channel_stats_solution(x):
    m = x.mean(axis=(0, 2, 3))
    return float((m ** 2).mean()), float(x.var(axis=(0, 2, 3)).mean())


check_exercise_1(channel_stats_solution)

# %% [markdown]
# **2.** L = blocks; m = 2, so the factor is L^(-1/2). The stem keeps its He draw.

# %%
def fixup_rules_solution(model):
    blocks = [m for m in model.modules() if isinstance(m, models.BasicBlock)]
    L = len(blocks)
    for b in blocks:
        b.conv1.weight.data *= L ** (-1 / (2 * 2 - 2))
        nn.init.zeros_(b.conv2.weight)
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    return model


check_exercise_2(fixup_rules_solution)

# %% [markdown]
# **3.** y = ReLU(s) with s = alpha F(x) + shortcut(x), so dL/dalpha = sum(g * [s > 0] * F(x)).
# At alpha = 0, s is the shortcut alone. F(x) is the branch without alpha: set alpha to 1 for a
# moment, or divide (not at 0). Here: run the branch with alpha = 1, under `no_grad`.

# %%
def alpha_gradient_solution(block, x, g):
    with mr.no_grad():
        s = block.shortcut(x).data
        saved = block.alpha.data.copy()
        block.alpha.data[:] = 1
        branch = block.residual_function(x).data
        block.alpha.data[:] = saved
    return float((g * (s > 0) * branch).sum())


check_exercise_3(alpha_gradient_solution)
