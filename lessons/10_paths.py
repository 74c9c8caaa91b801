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
# # Lesson 10: Where the gradient comes from (gradient by path length)
#
# Lesson 9 unrolled a ResNet of n blocks into 2^n paths and found that deleting blocks hurts
# little. Veit, Wilber and Belongie (2016, sec. 5 and Fig. 6) went one step further: during
# training, *which* of those paths does the gradient actually come through? Their answer, for a
# ResNet-110 on CIFAR-10: almost all of it comes through paths 5 to 17 blocks long, out of 54,
# which are only 0.45% of the paths. The deep net trains as a collection of fairly shallow ones.
# This lesson measures the same thing in a minires ResNet, at initialisation and after training.
#
# **By the end you will be able to**
#
# 1. say why the lengths of the 2^n paths follow a binomial distribution, and compute it;
# 2. explain why the backward pass, once the forward pass is done, splits exactly into one term
#    per path, and check it numerically;
# 3. measure the gradient that reaches the input through one path with a stop-gradient
#    (`paths.PathGate`), and repeat Veit's sampling for every path length;
# 4. read Veit's three panels (path lengths, gradient per path, total gradient by length) and
#    say how short the "effective" paths are.
#
# Run time (full run: 1.3 min, quick: 2 s), on 2 CPU cores: the full run trains a ResNet-32 for 30
# epochs on the digits (lesson 6's recipe) and does about 150 forward/backward passes, most of the
# time training. `MINIRES_QUICK=1` uses a ResNet-14 trained for one epoch on 128 images; its
# numbers are noise. `python -m minires paths` runs the experiment on ResNet-56. Open as a
# notebook with `jupytext --to notebook lessons/10_paths.py`, or run `python lessons/10_paths.py`.

# %%
import itertools
import json
import math
import os

import numpy as np

import minires as mr
from minires import data, models
from minires.experiments import nets, paths, surgery
from lesson_setup import QUICK, OUT, plt, show  # quick mode and figures, see lesson_setup.py

# %% [markdown]
# ## 1. How long are the paths?
#
# A path makes one choice per block, residual function or shortcut, and its length k is the
# number of residual functions it passes. There are C(n, k) paths of length k, so if you picked a
# path at random its length would be binomial: mean n/2, standard deviation sqrt(n)/2. For a
# ResNet-56 (27 blocks) most paths pass 10 to 17 residual functions (Veit, Fig. 6a).

# %%
n = 27
counts = paths.path_counts(n)
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(range(n + 1), [c / 2 ** n for c in counts], color="grey")
ax.set(xlabel="path length k", ylabel="fraction of the 2^27 paths",
       title="Path lengths in ResNet-56")
show(fig, "10_path_lengths.png")
share = sum(counts[10:18]) / 2 ** n
print(f"paths of length 10..17: {share:.1%} of all; mean length {n / 2}, "
      f"std {math.sqrt(n) / 2:.2f}")

# %% [markdown]
# ## 2. The backward pass is a sum over paths
#
# A block computes y = ReLU(F(x) + s(x)), s the shortcut. After the forward pass the ReLU's mask
# m (1 where the sum was positive) is fixed, and the chain rule gives
#
#     dL/dx = (dF/dx)^T (m * dL/dy) + (ds/dx)^T (m * dL/dy)
#
# a sum of a branch term and a shortcut term, each *linear* in dL/dy. Going back through n blocks
# and multiplying out, dL/dy_0 (the gradient at the input of the first block) is a sum of 2^n
# terms, one per path. No approximation is involved: the nonlinearity is in the forward pass,
# which all paths share.
#
# To get one term, let the gradient through only one half of each block. `paths.PathGate(block,
# through)` computes the same forward value but puts a stop-gradient (`Tensor.detach()`) on the
# other half: y = ReLU(F(x) + sg(s(x))) lets the gradient through the branch only, y =
# ReLU(sg(F(x)) + s(x)) through the shortcut only. `paths.first_block_gradient(model, x, labels,
# kept)` gives the gradient, at the input of the first block, of the path through the residual
# functions of the blocks in `kept`.
#
# A check you can run: in a ResNet-8 (3 blocks), the 8 single-path gradients add up to the
# gradient of the whole net, in float64 to round-off.

# %%
mr.manual_seed(0)
small = models.cifar_resnet(8, in_channels=1).to(dtype=np.float64)
train_set, test_set = data.load_digits()
xb, yb = next(iter(data.DataLoader(train_set, 16)))
xb = xb.astype(np.float64)
names = [name for name, _ in surgery.blocks(small)]
whole = paths.first_block_gradient(small, xb, yb)
per_path = {kept: paths.first_block_gradient(small, xb, yb, list(kept))
            for k in range(len(names) + 1) for kept in itertools.combinations(names, k)}
total = sum(per_path.values())
print(f"{len(per_path)} paths; largest |sum of paths - whole gradient| = "
      f"{np.abs(total - whole).max():.1e} (the gradient itself is up to {np.abs(whole).max():.1e})")
for kept, g in per_path.items():
    print(f"  through {list(kept) or 'shortcuts only'}: |dL/dy0| = {np.linalg.norm(g):.4f}")

# %% [markdown]
# ## 3. Veit's sampling, at initialisation and after training
#
# With 2^27 paths we cannot measure them all. Veit's method: for each length k, pick k blocks at
# random, let the gradient through their residual functions and through the shortcut of every
# other block, and record the norm of what reaches the input. Repeat a few times and average:
# that is the gradient *per path* of length k. Times C(n, k) it is the total that paths of length k
# carry (a sum of norms, so an upper bound on the norm of their sum, as in Veit's Fig. 6c).
# `paths.measure` does this; batch norm runs in training mode, as during SGD.

# %%
DEPTH = 14 if QUICK else 32
LIMIT = 128 if QUICK else None
DRAWS = 2 if QUICK else 5
recipe = nets.RECIPES["digits"]
if QUICK:  # one epoch; the milestones follow the epochs
    recipe = recipe.replace(epochs=1, batch_size=min(recipe.batch_size, LIMIT))
mr.manual_seed(0)  # the seed train_one starts from: `initial` is the trained net before training
initial = nets.build_net(f"resnet{DEPTH}", 10, 1)
result = nets.train_one(f"resnet{DEPTH}", train_set, test_set, recipe, seed=0, limit=LIMIT,
                        progress=not QUICK)
trained, history = result.model, result.history
print(f"resnet{DEPTH}: test error {history[-1]['test_error']:.1%} after {recipe.epochs} epochs")
x, labels = next(iter(data.DataLoader(train_set, 64)))
results = {label: paths.measure(model, x, labels, draws=DRAWS, seed=0)
           for label, model in (("init", initial), ("trained", trained))}
summaries = {label: paths.effective_paths(r) for label, r in results.items()}
print(paths.table(results, summaries))
with open(os.path.join(OUT, "10_paths.json"), "w") as f:  # the numbers section 4 quotes
    json.dump({"net": f"resnet{DEPTH}", "test_error": history[-1]["test_error"],
               "summary": summaries}, f, indent=1)
show(paths.plot_paths(results, os.path.join(OUT, "10_paths.png"),
                      title=f"Gradient by path length, ResNet-{DEPTH}"))
if QUICK:
    print("(quick mode: a net trained for one epoch on 128 images, so these numbers are noise)")

# %% [markdown]
# ## 4. Reading the three panels
#
# * **(a)** is pure counting: most paths are of middle length.
# * **(b)** is the gradient of a single path. Each residual function on a path multiplies the
#   gradient by its Jacobian, the shortcut by (nearly) the identity; where a branch's Jacobian
#   is small, the gradient per path falls geometrically with k. Veit saw a steep fall in a
#   trained ResNet-110.
# * **(c)** is the product of the two. Where (b) falls steeply enough it pulls the peak of (c)
#   to the left of (a)'s: the gradient comes mostly from paths *shorter* than the typical path,
#   and far shorter than the net. The table's "90% of the gradient" gives the narrowest range of
#   lengths that holds 90% of the total, and "share of paths" what fraction of the 2^n paths
#   have those lengths.
#
# Compare the two rows and the two curves of panel (b). After training, each residual function on
# a path shrinks the gradient more than at the start, so the gradient per path falls far more
# steeply with k, and the peak of (c) moves to shorter paths, as in Veit's ResNet-110. The dots of
# (b) spread over orders of magnitude at one k: which blocks a path passes matters, so with a few
# draws per length the curves of (c) are jagged.
#
# **How few paths is that? Here, not few.** In this lesson's full run (ResNet-32, 15 blocks), 90%
# of the gradient comes from paths of these lengths, at initialisation and after training:
# init: lengths 4-10, 92.32% of the paths; trained: lengths 2-7, 49.95% of the paths. Training
# moves the gradient to shorter paths (a mean length of 3.9 against the 7.5 of all paths), but
# those lengths are still half of all 2^15 paths: with 15 blocks the binomial distribution of
# panel (a) is wide, and any range of lengths that holds 90% of the gradient holds many paths.
# "A few short paths" needs depth. In `python -m minires paths` (`results/paths.md`), a
# ResNet-56 (27 blocks) after training: 6.1% of its paths carry 90% of the gradient, against
# ResNet-56's 77.6% at initialisation, and Veit's ResNet-110 (54 blocks) gets it from 0.45%
# (Exercise 2). Read this lesson's run for the shift to shorter paths, which it shows; the small
# share of paths is what the deeper nets add.
#
# ## Summary
#
# * A ResNet of n blocks has C(n, k) paths of length k; with the forward pass fixed, the
#   gradient is exactly the sum of one gradient per path (`paths.first_block_gradient`, checked
#   above).
# * Veit's measurement samples k blocks whose branch the gradient may pass, and the shortcut
#   everywhere else (`paths.PathGate`, `paths.measure`).
# * Multiplying the gradient per path by the number of paths shows which lengths carry the
#   gradient (`paths.effective_paths`).
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: a stop-gradient by hand.** Write `branch_only(block, x)`: the block's output
# ReLU(F(x) + s(x)), with the gradient allowed through F only. Use `block.residual_function`,
# `block.shortcut`, `block.relu` and `Tensor.detach`.

# %%
def check_exercise_1(branch_only):
    mr.manual_seed(2)
    block = models.BasicBlock(16, 32, stride=2, shortcut="A").to(dtype=np.float64)
    rng = np.random.default_rng(3)
    x_data = np.abs(rng.standard_normal((4, 16, 8, 8)))
    upstream = rng.standard_normal((4, 32, 4, 4))
    grads = []
    for fn in (branch_only, lambda b, x: paths.PathGate(b, "branch")(x)):
        x = mr.Tensor(x_data, requires_grad=True)
        y = fn(block, x)
        assert np.allclose(y.data, block(mr.Tensor(x_data)).data), \
            "the forward value must not change"
        (y * mr.Tensor(upstream)).sum().backward()
        grads.append(x.grad)
    assert np.allclose(grads[0], grads[1]), \
        f"gradients differ by up to {np.abs(grads[0] - grads[1]).max():.3g}"
    print("exercise 1: correct, the gradient goes through the branch only")


def branch_only(block, x):
    raise NotImplementedError


# check_exercise_1(branch_only)

# %% [markdown]
# **Exercise 2: Veit's 0.45%.** Write `share_of_paths(n, lo, hi)`, the fraction of the 2^n paths
# whose length is in lo..hi. Veit's ResNet-110 has 54 blocks and effective paths of length 5..17.

# %%
def check_exercise_2(share_of_paths):
    assert share_of_paths(3, 0, 3) == 1
    assert abs(share_of_paths(4, 2, 2) - 6 / 16) < 1e-15
    veit = share_of_paths(54, 5, 17)
    assert abs(veit - 0.0045) < 0.0005, f"got {veit:.4%}"
    print(f"exercise 2: correct, lengths 5..17 of 54 blocks are {veit:.2%} of the paths")


def share_of_paths(n, lo, hi):
    raise NotImplementedError


# check_exercise_2(share_of_paths)

# %% [markdown]
# ## Solutions
#
# **1.** The stop-gradient goes on the shortcut: its value is used, its gradient is not.

# %%
def branch_only_solution(block, x):
    return block.relu(block.residual_function(x) + block.shortcut(x).detach())


check_exercise_1(branch_only_solution)

# %% [markdown]
# **2.** Sum the binomial coefficients and divide by 2^n. With exact integers (`math.comb`) the
# sum is exact even for 2^54.

# %%
def share_of_paths_solution(n, lo, hi):
    return sum(math.comb(n, k) for k in range(lo, hi + 1)) / 2 ** n


check_exercise_2(share_of_paths_solution)
