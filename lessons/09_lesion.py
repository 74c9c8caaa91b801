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
# # Lesson 9: Deleting blocks at test time (the lesion study)
#
# The paper explains *how* to build a very deep net. It leaves open *what* such a net computes.
# Veit, Wilber and Belongie (2016, "Residual networks behave like ensembles of relatively shallow
# networks", NeurIPS) asked with a blunt experiment borrowed from neuroscience: take a trained
# network and, at test time, cut out a layer. A plain chain of layers should break, since every
# signal passes through every layer. A ResNet, they found, barely notices. This lesson repeats
# their experiment on the bundled digits.
#
# **By the end you will be able to**
#
# 1. write a ResNet as a sum of 2^n paths by unrolling its shortcuts (Veit, eq. 3), and say which
#    paths a deleted block removes;
# 2. delete blocks from a trained net with `minires.experiments.lesion.lesioned`, and say why a
#    deleted residual block is exactly its shortcut;
# 3. run both of Veit's experiments (one block at a time, Fig. 3; k random blocks, Fig. 5) on a
#    ResNet and its plain twin, and read the curves;
# 4. say what the miniature shows, and how our plain baseline differs from Veit's.
#
# Run time (full run: 2.0 min, quick: 7 s) on 2 CPU cores. The full run trains ResNet-20 and
# plain-20 for 30 epochs on the 1,438 training digits, runs about 60 lesioned evaluations, and
# trains two plain-14s for Exercise 3's solution. `MINIRES_QUICK=1` trains 14-layer nets for one
# epoch on 128 images; those numbers are noise. The command `python -m minires lesion` runs the
# same experiment on the 20- and 56-layer nets.
# Open as a notebook with `jupytext --to notebook lessons/09_lesion.py`, run cell by cell in VS
# Code, or run `python lessons/09_lesion.py`.

# %%
import itertools
import math
import os
import time

import numpy as np

import minires as mr
from minires import data, models, nn, optim, train
from minires import functional as F
from minires.experiments import lesion, nets, surgery
from lesson_setup import QUICK, OUT, show  # quick mode and figures, see lesson_setup.py

# %% [markdown]
# ## 1. A ResNet is a sum of paths
#
# Drop the ReLU after the sum for a moment and write three blocks one after the other,
# y_{i+1} = y_i + F_{i+1}(y_i). Substituting each line into the next,
#
#     y_3 = y_2 + F_3(y_2)
#         = [y_1 + F_2(y_1)] + F_3(y_1 + F_2(y_1))
#         = ...
#
# every block offers the signal two roads, its residual function F_i or its shortcut, and n
# blocks offer 2^n roads from input to output (Veit, eq. 3 and Fig. 1). A *path* is one choice per
# block; its *length* is how many residual functions it passes. In a plain net each block has one
# road, so the net is a single path of length n.
#
# Deleting block i removes every path that goes through F_i, exactly half of them, and keeps the
# other half untouched. If the paths behave like the members of an ensemble, losing half of them
# should cost a little accuracy, not all of it.

# %%
for depth in (20, 56, 110):
    n = 3 * (depth - 2) // 6
    print(f"ResNet-{depth}: {n} blocks, 2^{n} = {2 ** n:.3g} paths; "
          f"deleting one block leaves 2^{n - 1} of them")

# %% [markdown]
# ## 2. What "deleting a block" means in code
#
# A residual block computes y = ReLU(F(x) + shortcut(x)), with shortcut(x) = x, or on the first
# block of a stage the option-A shortcut (every second pixel, zero channels appended). Delete F
# and y = ReLU(shortcut(x)). Since x came out of a ReLU it is >= 0, and so is its shortcut, so the
# last ReLU changes nothing: **a deleted residual block is its shortcut**. `lesion.Lesioned(block)`
# is a module that computes exactly that, through the block's public `shortcut` method.
#
# In a plain block there is no shortcut; Veit replaces a deleted plain layer by the identity,
# which is possible only where the block keeps the shape (stride 1, as many output as input
# channels). `lesion.deletable(model)` lists those blocks. `lesion.lesioned(model, names)` swaps
# `Lesioned` modules into the model for a `with` block and puts the blocks back afterwards.

# %%
mr.manual_seed(0)
resnet = models.resnet20(in_channels=1)
print("blocks:", [name for name, _ in surgery.blocks(resnet)])
print("shape-preserving (deletable in a plain net):", lesion.deletable(resnet))

x = mr.Tensor(np.abs(np.random.default_rng(0).standard_normal((2, 16, 8, 8))).astype(np.float32))
down = dict(surgery.blocks(resnet))["layer2.0"]
y = lesion.Lesioned(down)(x)
print(f"deleted layer2.0 maps {x.shape} -> {y.shape}; equals F.pad_channels(x, 32, 2):",
      np.array_equal(y.data, mr.functional.pad_channels(x, 32, 2).data))

# %% [markdown]
# A constructed check of the claim "a deleted block is its shortcut": zero every residual function
# (the last BN's weight and bias of every block). Then every block already *is* its shortcut, and
# no set of deletions can change the output.

# %%
mr.manual_seed(1)
zeroed = models.resnet20(in_channels=1)
for _, block in surgery.blocks(zeroed):
    nn.init.zeros_(block.last_bn().weight)
    nn.init.zeros_(block.last_bn().bias)
zeroed.eval()
images = mr.Tensor(next(iter(data.DataLoader(data.load_digits()[1], 16)))[0])
with mr.no_grad():
    intact = zeroed(images).data
    worst = 0.0
    K = 1 if QUICK else 3
    for chosen in itertools.combinations([n for n, _ in surgery.blocks(zeroed)], K):
        with lesion.lesioned(zeroed, chosen):
            worst = max(worst, float(np.abs(zeroed(images).data - intact).max()))
print(f"largest change over all {math.comb(9, K)} ways of deleting {K} of 9 zero blocks: {worst}")

# %% [markdown]
# ## 3. Two trained nets
#
# The lesion study needs trained nets. `nets.train_one` trains a ResNet or plain net with the
# recipe of lesson 6 (`nets.RECIPES["digits"]`: SGD, momentum 0.9, weight decay 1e-4, batch 32,
# lr 0.025 divided by 10 at 50% and 75% of the epochs, one-pixel shifts, and the paper's warm-up
# of sec. 4.2 at a tenth of the lr until the training error is below 80%). Both nets get the same
# seed, so the same batches.

# %%
train_set, test_set = data.load_digits()
DEPTH_RES, DEPTH_PLAIN = (14, 14) if QUICK else (20, 20)
LIMIT = 128 if QUICK else None
recipe = nets.RECIPES["digits"]
if QUICK:  # one epoch; the milestones follow the epochs
    recipe = recipe.replace(epochs=1, batch_size=min(recipe.batch_size, LIMIT))
print("recipe:", recipe.as_dict())
_, test_loader, _ = nets.build_loaders(train_set, test_set, recipe.batch_size, 0, LIMIT)
trained_nets = {}
start = time.perf_counter()
for name in (f"resnet{DEPTH_RES}", f"plain{DEPTH_PLAIN}"):
    trained = nets.train_one(name, train_set, test_set, recipe, seed=0, limit=LIMIT,
                             progress=not QUICK)
    trained_nets[name], history = trained.model, trained.history
    print(f"{name}: training error {history[-1]['train_error']:.1%}, "
          f"test error {history[-1]['test_error']:.1%}")
print(f"trained in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 4. One block at a time (Veit, Fig. 3)
#
# `lesion.single_lesions` deletes each block on its own and measures the test error. In the
# ResNet every block can go, the shape-changing ones becoming their option-A shortcut; in the
# plain net only the shape-preserving ones.

# %%
results = {}
for name, model in trained_nets.items():
    results[name] = lesion.measure(model, test_loader, ks=range(1, 8), draws=1 if QUICK else 5,
                                   seed=0)
for name, r in results.items():
    print(f"{name}: intact {r['intact']:.1%}; one block deleted:",
          ", ".join(f"{b} {e:.1%}" for b, e in r["single"].items()))

# %% [markdown]
# ## 5. k blocks at random (Veit, Fig. 5)
#
# `lesion.random_lesions` deletes k random shape-preserving blocks, several draws for each k.
# If the ResNet is an ensemble of paths, the error should grow *smoothly* with k: deleting k
# blocks keeps 2^-k of the paths, and the ones left are the shorter ones.

# %%
print(lesion.table(results))
show(lesion.plot_lesions(results, os.path.join(OUT, "09_lesion.png"),
                         title="Deleting blocks at test time, ResNet vs plain"))
if QUICK:
    print("(quick mode: one epoch on 128 images, so these errors are noise)")

# %% [markdown]
# **What the full run shows.** `python -m minires lesion` runs this on the 20- and 56-layer nets
# (`results/lesion.md` has its figure and numbers). Read your own curves with these questions:
#
# * In the ResNet, how far above the intact line does a single lesion of a shape-preserving
#   block go? Veit saw almost no change on CIFAR-10.
# * Are the shape-changing blocks (the crosses) worse to lose? Veit saw a modest rise there. With
#   option A it is easy to see why they might be: a deleted first block of a stage hands the next
#   block the old channels, subsampled, and zeros in all the new ones, which only that block's
#   residual function filled.
# * In the plain net, does one deletion send the error toward chance (90%)?
# * Which blocks are the exceptions? In the run of `results/lesion.md` the first two blocks after
#   the stem cost the most, in both ResNets (in ResNet-56 the first, in ResNet-20 the second).
#
# **Our plain baseline is not Veit's.** Veit's plain net (a VGG-style network) had no batch
# normalisation; ours keeps a BN after every conv, as the paper's plain nets do (sec. 4.1). BN
# rescales every layer's output to zero mean and unit variance with fixed learned statistics, so
# a deleted plain block hands the next layer an input of about the right scale, which might
# soften the damage. Exercise 3 trains plain nets with and without BN and looks.
#
# ## Summary
#
# * Unrolled, a ResNet of n blocks is a sum of 2^n paths; deleting a block removes half of them.
# * A deleted residual block is exactly its shortcut (`lesion.Lesioned`), because its input is
#   the output of a ReLU.
# * In the ResNet most single lesions cost little, as in an ensemble; in a plain net a lesion
#   cuts the only path and the error goes to chance.
# * Not every block is equal: on the digits the first blocks after the stem are critical, so
#   the error grows with k in jumps, whenever a draw hits one of them (`results/lesion.md`).
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: a lesion by hand.** Write `delete_block(block, x)`, the output of a deleted
# residual block for input x (a Tensor), using only the block's attributes (`downsample`, and
# `F.pad_channels` for option A), not `Lesioned` or `shortcut`.

# %%
def check_exercise_1(delete_block):
    mr.manual_seed(4)
    model = models.cifar_resnet(14, in_channels=1)
    rng = np.random.default_rng(5)
    for name, block in surgery.blocks(model):
        x = np.abs(rng.standard_normal((2, block.conv1.in_channels, 8, 8)))
        x = mr.Tensor(x.astype(np.float32))
        expected = lesion.Lesioned(block)(x).data
        got = delete_block(block, x)
        got = got.data if isinstance(got, mr.Tensor) else got
        assert got.shape == expected.shape and np.array_equal(got, expected), f"{name} differs"
    print("exercise 1: correct, your deleted blocks equal lesion.Lesioned's")


def delete_block(block, x):
    raise NotImplementedError


# check_exercise_1(delete_block)

# %% [markdown]
# **Exercise 2: how many paths survive.** Write `surviving_paths(n, k, length)`: of the paths
# of a given `length` through a ResNet of n blocks, how many survive when k blocks are deleted?
# (A path survives when none of its residual functions is deleted.)

# %%
def check_exercise_2(surviving_paths):
    for n, k, length in ((9, 1, 3), (27, 5, 10), (27, 0, 27), (10, 10, 0), (10, 10, 1)):
        chosen = list(range(k))  # which k blocks does not matter
        expected = sum(1 for p in itertools.combinations(range(n), length)
                       if not set(p) & set(chosen))
        assert surviving_paths(n, k, length) == expected, \
            f"n={n}, k={k}, length={length}: expected {expected}"
    print("exercise 2: correct")


def surviving_paths(n, k, length):
    raise NotImplementedError


# check_exercise_2(surviving_paths)

# %% [markdown]
# **Exercise 3: the training loop, and a plain baseline without batch norm.** `nets.train_one`
# has trained every net so far; here you write the loop it runs. Write `train_plain(depth,
# batch_norm, epochs, lr)`: build `nets.build_net(f"plain{depth}", 10, 1)`; if `batch_norm` is
# False, replace its every BN by the identity with `surgery.strip_batch_norm(model)`; train it on
# `train_set` with `optim.SGD` (momentum 0.9, weight decay 1e-4), batches of 32 from
# `data.DataLoader(train_set, 32, shuffle=True, seed=0, augment=data.paper_augment(train_set))`, and
# the lr divided by 10 at half and at three quarters of the epochs (`optim.MultiStepLR`, stepped
# once per epoch). Each step is a forward pass, the loss `F.softmax_cross_entropy(logits, labels)`,
# `zero_grad`, `backward` and the optimizer's `step`. Return the model in eval mode.
#
# The checker trains plain-14 with and without BN with your function (16 epochs at lr 0.02, with
# no warm-up; without BN a plain-20 does not train at all with this recipe), deletes each
# shape-preserving block in turn and prints the test errors: is a lesion worse without BN? (It
# deletes a block by swapping in `nn.Identity()` with `surgery.swapped`: `lesion.lesioned` reads a
# block's width from its last BN, which a net without BN does not have.)

# %%
def check_exercise_3(train_plain):
    depth, epochs = (8, 1) if QUICK else (14, 16)
    names = lesion.deletable(nets.build_net(f"plain{depth}", 10, 1))
    print(f"{'plain-' + str(depth):>14} {'intact':>7}  " + " ".join(f"{n:>9}" for n in names))
    for batch_norm in (True, False):
        model = train_plain(depth, batch_norm, epochs, 0.02)
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert has_bn == batch_norm, (
            f"batch_norm={batch_norm}, but the net {'has' if has_bn else 'has no'} BN")
        assert not model.training, "return the model in eval mode (model.eval())"
        intact = train.evaluate(model, test_loader).error
        assert QUICK or intact < 0.5, (
            f"batch_norm={batch_norm}: test error {intact:.1%} after training; is every step "
            "taken?")
        deleted = []
        for name in names:
            with surgery.swapped(model, {name: nn.Identity()}):  # a deleted plain block: identity
                deleted.append(train.evaluate(model, test_loader).error)
        print(f"{'with BN' if batch_norm else 'without BN':>14} {intact:7.1%}  "
              + " ".join(f"{e:9.1%}" for e in deleted))
    print("exercise 3: correct")


def train_plain(depth, batch_norm, epochs, lr):
    raise NotImplementedError


# check_exercise_3(train_plain)

# %% [markdown]
# ## Solutions
#
# **1.** An identity block returns x; a block with a `downsample` module returns
# `block.downsample(x)`, which for option A is `F.pad_channels(x, planes, stride)` and for option B
# the 1x1 projection with its BN. No ReLU is needed, because x >= 0.

# %%
def delete_block_solution(block, x):
    return x if block.downsample is None else block.downsample(x)


check_exercise_1(delete_block_solution)

# %% [markdown]
# **2.** A surviving path picks its `length` residual functions among the n - k blocks that are
# left: C(n - k, length). Summed over lengths that is 2^(n-k), a fraction 2^-k of all paths. The
# survivors are also *shorter* on average, (n - k)/2 instead of n/2: Veit's explanation of why
# the error grows smoothly with k.

# %%
def surviving_paths_solution(n, k, length):
    return math.comb(n - k, length)


check_exercise_2(surviving_paths_solution)


# %% [markdown]
# **3.** The loop of `nets.train_one` without its extras (the warm-up, the gradient records, the
# test after every epoch): per epoch, every batch through forward, loss, backward and step, then
# one step of the schedule. In the full run, both plain-14s end near chance (between about 75%
# and 95% error) whichever block is deleted, with BN and without, and the one without BN trains
# far less well to begin with (tens of points of test error, against a few with BN). So here BN
# does not soften a lesion by much: a plain net is one path, and cutting a layer out of it breaks
# the net either way.

# %%
def train_plain_solution(depth, batch_norm, epochs, lr):
    mr.manual_seed(0)
    model = nets.build_net(f"plain{depth}", 10, 1)
    if not batch_norm:
        surgery.strip_batch_norm(model)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = optim.MultiStepLR(optimizer, [epochs // 2, 3 * epochs // 4], gamma=0.1)
    loader = data.DataLoader(train_set, 32, shuffle=True, seed=0,
                             augment=data.paper_augment(train_set))
    model.train()
    for epoch in range(epochs):
        for images, labels in loader:
            loss = F.softmax_cross_entropy(model(mr.Tensor(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


check_exercise_3(train_plain_solution)
