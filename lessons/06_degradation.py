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
# # Lesson 6: The degradation problem (Figure 6 in miniature)
#
# The paper starts from an observation, not a theory. Stack more layers onto a plain
# convolutional net and, beyond some depth, its *training* error goes up (Figure 1, Figure 6
# left). The paper calls this *degradation*. It is not overfitting, which would show up as a low
# training error and a high test error. The deeper net is simply worse at fitting the data it is
# trained on. This lesson trains plain and residual nets of two depths with one recipe and plots
# their curves the way Figure 6 does.
#
# **By the end you will be able to**
#
# 1. state the degradation problem, and the construction argument (sec. 1) that says it should
#    not happen;
# 2. say how the residual form y = F(x, {W_i}) + x (Eq. 1) makes that construction easy to reach;
# 3. train plain-20/56 and ResNet-20/56 with `minires.degradation.train_one` and plot their
#    training and test errors with `plot_degradation`;
# 4. judge what a small run on the bundled digits shows, and what it cannot, and run the full
#    version on CIFAR-10.
#
# Run time: the full run is the same as `python -m minires degradation`, four nets for 20 epochs
# on the 1,438 training digits, about 5 to 10 minutes on 2 CPU cores. `MINIRES_QUICK=1` trains
# 8- and 14-layer nets for one epoch on 64 images, in a few seconds. Those numbers are noise: quick
# mode only checks that every cell runs. Open as a notebook with
# `jupytext --to notebook lessons/06_degradation.py`, run cell by cell in VS Code, or run
# `python lessons/06_degradation.py`.

# %%
import os
import sys
import time

import numpy as np

import minires as mr
from minires import data, degradation, flow, models, nn, train
from lesson_setup import QUICK, OUT, plt, show  # quick mode and figures, see lesson_setup.py


def show_png(path):
    """Display a PNG that a minires plotting function wrote (in a notebook); print where it is."""
    print(f"figure saved to {path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))

# %% [markdown]
# ## 1. Why degradation is a puzzle
#
# Take a trained shallow net and add layers to it. One solution for the deeper net exists "by
# construction" (sec. 1): copy the shallow net's layers and make each added layer an identity
# mapping. It computes the same function, so the same training error. A deeper net should
# therefore never be worse at fitting the training set. When SGD nevertheless finds a worse
# solution, the fault lies with the *optimisation*, not with what the architecture can represent.
#
# The paper's answer (sec. 3.1) is to change what the layers are asked to learn. If H(x) is the
# mapping a few layers should compute, let them learn the residual F(x) = H(x) - x, and add x back
# through a shortcut: y = F(x, {W_i}) + x (Eq. 1). If the identity is what the deeper net needs,
# the solver only has to push F towards zero. A plain stack of conv-BN-ReLU layers has to
# *assemble* the identity out of its weights, which the paper suspects solvers find hard.
# Exercise 1 carries out the construction for a ResNet in a few lines.
#
# ## 2. The data: the bundled digits
#
# Figure 6 was made on CIFAR-10: 50,000 training images of 32x32x3. minires bundles a much smaller
# set that needs no download: 1,797 handwritten digits of 8x8 pixels, split 1,438 / 359 into
# training and test sets. The CIFAR nets of sec. 4.2 run on it unchanged (one input channel
# instead of three), but their three stages see maps of 8x8, 4x4 and 2x2 instead of 32x32,
# 16x16 and 8x8.

# %%
train_set, test_set = data.load_digits()
print(train_set, "|", test_set)

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for digit, ax in enumerate(axes):
    i = int(np.flatnonzero(train_set.labels == digit)[0])
    ax.imshow(train_set.images[i, 0], cmap="gray_r", vmin=0, vmax=train_set.max_value)
    ax.set(title=str(digit), xticks=[], yticks=[])
show(fig, "06_digits.png")

# %% [markdown]
# ## 3. One recipe for all four nets
#
# Sec. 4.2 trains every CIFAR net the same way: SGD with momentum 0.9 and weight decay 1e-4,
# mini-batches of 128, a learning rate of 0.1 divided by 10 at 32k and 48k iterations, stopping
# at 64k. The augmentation is 4-pixel padding with random 32x32 crops and horizontal flips.
# `python -m minires degradation` keeps this recipe and scales it to the digits: batches of 64,
# 20 epochs, the rate divided at 50% and 75% of them, shifts of at most one pixel and no flips (a
# mirrored 7 is not a digit). `degradation.train_one` builds a net, seeds it, trains it with
# `train.fit` one epoch at a time, and after each epoch records the gradient norms of lesson 5 on
# one fixed training batch (`flow.EpochRecorder`). Every net gets the same seed, and so the same
# batch order and the same augmentation.

# %%
DEPTHS = (8, 14) if QUICK else (20, 56)
EPOCHS = 1 if QUICK else degradation.EPOCHS["digits"]
LIMIT = 64 if QUICK else None            # quick mode: a tiny random subset of each split
_, BATCH, LR = train.DEFAULTS["digits"]
BATCH = min(BATCH, LIMIT or BATCH)
MILESTONES = [round(EPOCHS * 0.5), round(EPOCHS * 0.75)]
NAMES = [f"{kind}{d}" for kind in ("plain", "resnet") for d in DEPTHS]
print(f"{', '.join(NAMES)}: {EPOCHS} epochs of batch {BATCH}, lr {LR} (/10 at epochs {MILESTONES}), "
      f"momentum 0.9, weight decay 1e-4")

histories, records = {}, {}
start = time.perf_counter()
for name in NAMES:
    histories[name], records[name] = degradation.train_one(
        name, train_set, test_set, epochs=EPOCHS, batch_size=BATCH, lr=LR, milestones=MILESTONES,
        seed=0, device="cpu", limit=LIMIT, progress=not QUICK)
print(f"trained {len(NAMES)} nets in {time.perf_counter() - start:.0f} s")

# %%
print(f"{'net':>9} {'train error':>12} {'test error':>11} {'best test':>10}")
for name, h in histories.items():
    print(f"{name:>9} {h[-1]['train_error']:12.1%} {h[-1]['test_error']:11.1%} "
          f"{min(r['test_error'] for r in h):10.1%}")
show_png(degradation.plot_degradation(histories, os.path.join(OUT, "06_degradation.png"), MILESTONES,
                                      title="Plain (left) and residual (right) nets on the digits"))

# %% [markdown]
# ## 4. Reading the curves
#
# As in Figure 6, dashed lines are training error and bold lines test error; plain nets are on the
# left and ResNets on the right. The training error on the dashed lines is the running error over
# each epoch's augmented batches, measured while the net trains, which is how the paper plots it.
# The question is in the *training* error: does the deeper net end higher than the shallower one?

# %%
def deeper_minus_shallower(kind):
    """Final training error of the deeper net minus the shallower one, in percentage points."""
    shallow, deep = (histories[f"{kind}{d}"][-1]["train_error"] for d in DEPTHS)
    return 100 * (deep - shallow)


for kind in ("plain", "resnet"):
    gap = deeper_minus_shallower(kind)
    verdict = "worse" if gap > 0 else "no worse"
    where = "above" if gap > 0 else "at or below"
    print(f"{kind:>6}: {kind}{DEPTHS[1]} ends {abs(gap):.1f} points {where} {kind}{DEPTHS[0]} "
          f"in training error: deeper is {verdict}")
if QUICK:
    print("(quick mode: one epoch on 64 images, so these differences are noise)")

# %% [markdown]
# **What our full runs showed.** We ran the full version twice with the default settings (seed 0,
# 20 epochs). The two runs differed only in the number of threads of the BLAS library, which
# changes the order in which floating-point sums are added up. The final training errors were
#
#     plain-20   1.1% and 2.6%        ResNet-20   0.4% and 0.6%
#     plain-56  74.2% and 70.9%       ResNet-56   6.6% and 13.1%
#
# Plain-56 degrades dramatically: it barely learns at all. ResNet-56 does learn, and ends far below
# plain-56, but it starts slowly. After 7 epochs it was still near 50% training error, and it ends
# behind ResNet-20. So the miniature reproduces the main contrast of Figure 6, a deep plain net
# that fails where its residual twin trains, but not the rest of it: in the paper ResNet-56 ends
# *below* ResNet-20. In our short schedule the learning rate drops at epoch 10, while ResNet-56 is
# still on the steep part of its curve. That is also why its two runs land so far apart.
#
# Be careful about how far this goes.
#
# * **One seed.** A single run per net gives no error bars, and the two runs above show how far a
#   net can move without even changing the seed. Rerun with `--seed 1, 2, ...` before trusting a
#   gap of a few points: with 359 test images, one point is about 4 images.
# * **A tiny problem.** 20 epochs of 23 batches are 460 SGD steps, against the paper's 64,000. On
#   8x8 inputs the last stage works on 2x2 maps. A net that fails here may only be slow to start,
#   and a longer schedule, or the paper's warm-up for very deep nets (sec. 4.2, ResNet-110:
#   `python -m minires train --warmup`), can change the picture.
# * **Training error is the measure of degradation.** Test error mixes in generalisation, and on
#   359 images it is noisy.
#
# ## 5. The gradients during training
#
# `train_one` also recorded the per-layer weight-gradient norms of lesson 5 after every epoch,
# on one fixed batch of training images. The epoch-0 profile, taken before any training, is
# lesson 5's picture on real images. Watch how the first-to-last ratios change once SGD starts
# moving the weights.

# %%
print(f"{'net':>9} {'|dW first|/|dW last| at epoch 0':>32} {'after the last epoch':>22}")
for name, recs in records.items():
    print(f"{name:>9} {flow.first_last_ratio(recs[0]['weights']):32.3g} "
          f"{flow.first_last_ratio(recs[-1]['weights']):22.3g}")
show_png(flow.plot_flow_over_training(records, os.path.join(OUT, "06_flow_over_training.png"),
                                      title="Conv weight-gradient norms on one training batch, per epoch"))

# %% [markdown]
# In our full runs, plain-56's ratio was about 1,900 at initialisation, as in lesson 5, and about
# 0.02 after the first epoch. Its first layers went from receiving by far the largest gradients to
# receiving gradients tens of times smaller than the last layer's, and the ratio stayed well below
# 1 to the end. One explanation fits lesson 5's Exercise 1: BN makes a layer's loss independent of
# its weight scale, so the huge first steps mostly inflate the early layers' weights, and a larger
# weight gets a smaller gradient. We have not checked this here. For the other three nets the
# ratio settles within a factor of a few of 1.
#
# ## 6. The full experiment
#
# The command line runs the same code with more options, and writes the curves, a JSON history and
# the flow plot to `--out`:
#
#     python -m minires degradation                         # this lesson's full run (digits)
#     python -m minires degradation --depths 20 32 44 56    # Figure 6's depths
#     python -m minires degradation --data cifar10 --download --device gpu    # the real thing
#
# On CIFAR-10 the defaults become the paper's: batches of 128 and 164 epochs (64k iterations), with
# the rate divided at epochs 82 and 123 (Exercise 2). That takes hours even on a GPU, and is out of
# reach on a laptop CPU. For comparison, the paper's results are these. In Figure 6 (left) the
# training error of the plain nets rises steadily from 20 to 56 layers, and plain-110's error is
# above 60%. In Table 6 the ResNets' test error falls with depth, 8.75% (20 layers), 7.51% (32),
# 7.17% (44), 6.97% (56) and 6.43% (110, the best of five runs), before rising again to 7.93% at
# 1,202 layers, which the paper puts down to overfitting.
#
# ## Summary
#
# * Degradation: a deeper plain net reaches a *higher training error*, although a solution as good
#   as the shallower net's exists by construction. It is an optimisation failure, not overfitting.
# * The residual form makes that solution trivial to reach: F = 0 makes a block the identity.
# * `degradation.train_one` and `plot_degradation` give Figure 6 in miniature. On the digits, with
#   one seed, plain-56 fails to train while ResNet-56 trains, though in 20 epochs not quite as well
#   as ResNet-20.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the construction, for real.** Write `embed(shallow, deep)`. It changes the
# ResNet-56 `deep` in place so that it computes exactly the same function as the ResNet-20
# `shallow`, whatever weights `shallow` has. Copy the stem, the first three blocks of every stage
# and the fc layer, and turn every other block of `deep` into the identity. Hints: the first three
# blocks have the same names in both nets (`layer2.1.conv1.weight`, ...), so `state_dict` helps. A
# block's output is relu(F(x) + x), and x >= 0 because it comes out of a ReLU.

# %%
def check_exercise_1(embed):
    mr.manual_seed(3)
    shallow = models.resnet20(in_channels=1)
    for m in shallow.modules():  # BN parameters far from their initial 1 and 0
        if isinstance(m, nn.BatchNorm2d):
            for p in (m.weight, m.bias):
                nn.init.normal_(p, 0.5, 0.2)
    deep = models.resnet56(in_channels=1)
    embed(shallow, deep)
    x = mr.Tensor(next(iter(data.DataLoader(test_set, 32)))[0])
    shallow.eval()
    deep.eval()
    with mr.no_grad():
        a, b = shallow(x).data, deep(x).data
    assert np.allclose(a, b, rtol=1e-6, atol=1e-6), f"outputs differ by up to {np.abs(a - b).max():.3g}"
    print(f"exercise 1: correct, the 56-layer net computes the 20-layer net's function "
          f"(largest difference {np.abs(a - b).max():.1g})")


def embed(shallow, deep):
    raise NotImplementedError


# check_exercise_1(embed)

# %% [markdown]
# **Exercise 2: iterations into epochs.** The paper counts iterations, and minires counts epochs.
# Write `paper_schedule(n_train=50_000, batch_size=128)`. It should return the number of epochs
# and the two milestone epochs for the paper's 64k iterations with drops at 32k and 48k, each
# rounded to the nearest epoch. The checker compares with what `python -m minires degradation
# --data cifar10` uses.

# %%
def check_exercise_2(paper_schedule):
    epochs, milestones = paper_schedule(50_000, 128)
    assert epochs == degradation.EPOCHS["cifar10"] == train.DEFAULTS["cifar10"][0], f"epochs: {epochs}"
    assert list(milestones) == [round(epochs * 0.5), round(epochs * 0.75)], f"milestones: {milestones}"
    print(f"exercise 2: correct, {epochs} epochs with drops at {list(milestones)}")


def paper_schedule(n_train=50_000, batch_size=128):
    raise NotImplementedError


# check_exercise_2(paper_schedule)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Load the shallow net's state dict on top of the deep one's; the names of the stem, the fc
# layer and the first three blocks of each stage coincide. In every other block, set the last
# BN's gamma and beta to zero: then F(x) = 0 and the block outputs relu(x) = x. This is why the
# paper expects a ResNet to find near-identity layers easily. A plain block can represent the
# identity too, but only with the right kernels (a 1 in the centre of each channel's own filter)
# and a BN that undoes its own normalisation. That is a very particular point in weight space,
# far from where SGD starts.

# %%
def embed_solution(shallow, deep):
    state = deep.state_dict()
    state.update(shallow.state_dict())
    deep.load_state_dict(state)
    for stage_shallow, stage_deep in zip(shallow.stages(), deep.stages()):
        for block in list(stage_deep)[len(stage_shallow):]:
            nn.init.zeros_(block.bn2.weight)
            nn.init.zeros_(block.bn2.bias)


check_exercise_1(embed_solution)

# %% [markdown]
# **2.** One epoch is n_train / batch_size iterations (390.6 here), so 64k iterations are 163.84
# epochs, which rounds to 164, and the drops at 32k and 48k fall at epochs 81.92 and 122.88,
# which round to 82 and 123. These are 50% and 75% of the run, the fractions minires uses for
# every data set.

# %%
def paper_schedule_solution(n_train=50_000, batch_size=128):
    per_epoch = n_train / batch_size
    return round(64_000 / per_epoch), [round(32_000 / per_epoch), round(48_000 / per_epoch)]


check_exercise_2(paper_schedule_solution)
