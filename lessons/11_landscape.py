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
# # Lesson 11: Loss landscapes, with and without shortcuts
#
# Li, Xu, Taylor, Studer and Goldstein (2018, "Visualizing the loss landscape of neural nets",
# NeurIPS) drew the training loss around a trained net's weights along random directions. Their
# best-known picture (Fig. 5): a ResNet-56 sits in a smooth, nearly convex bowl, while the same
# net without shortcuts sits in a chaotic landscape full of ridges; at 20 layers the two look
# alike. Shortcuts, on this reading, keep the landscape of a deep net easy to descend. This
# lesson draws the same pictures for nets trained on the bundled digits.
#
# **By the end you will be able to**
#
# 1. say why a random direction in weight space must be *filter-normalised* before a plot of the
#    loss along it means anything, and check the batch-norm invariance behind it;
# 2. build such directions with `landscape.filter_normalized_direction` and evaluate the loss
#    along 1-D and 2-D slices with `landscape.Landscape`;
# 3. compare the landscapes of plain nets and ResNets of two depths, on contour plots with the
#    same levels and in numbers (basin size, curvature signs);
# 4. say what the miniature shows and what it cannot.
#
# Run time (full run: 6.6 min, quick: 5 s), on 2 CPU cores: the full run trains ResNet-20/56 and
# plain-20/56 (30 epochs on the digits, lesson 6's recipe) and evaluates an 11 x 11 grid and two
# 1-D slices per net on 128 training images, most of the time training. Set `NETS_FROM` below to
# the `--out` folder of a `python -m minires degradation` or `lesion` run to reuse its nets and
# skip the training. `MINIRES_QUICK=1` uses 8- and 14-layer nets trained for one epoch on 128
# images and a 5 x 5 grid (its numbers are noise). `python -m minires landscape` runs the
# experiment with a 21 x 21 grid.

# %%
import os

import numpy as np

import minires as mr
from minires import data, models
from minires.experiments import landscape, nets
from minires import functional as F
from lesson_setup import QUICK, OUT, show  # quick mode and figures, see lesson_setup.py

import lesson_setup  # noqa: E402  (only for where this folder is)

# The repository root, found from this folder, so that a path means the same from a notebook
# (which runs in lessons/) and from `python lessons/11_landscape.py` (run from anywhere).
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(lesson_setup.__file__)))
# To reuse trained nets instead of training: the --out folder of a degradation or lesion run,
# e.g. os.path.join(REPOSITORY, "runs", "lesion") after `python -m minires lesion` run in the
# repository root.
NETS_FROM = None

# %% [markdown]
# ## 1. Why a random direction needs rescaling
#
# Take the trained weights theta* and a random direction d of the same shapes, and plot
# f(a) = L(theta* + a d). The trouble: with batch norm after every conv, a conv filter's *scale*
# does not matter. BN divides each channel by its standard deviation, so multiplying filter j by
# 10 leaves the net's output unchanged (in training mode, where BN uses the batch's statistics).
# A step of size a is then a big change for a filter of small norm and almost nothing for a large
# one, and two nets (or two layers) whose weights differ only in scale get different-looking
# plots of the same function. Check the invariance:

# %%
mr.manual_seed(0)
net = models.resnet20(in_channels=1)
train_set, test_set = data.load_digits()
x, labels = next(iter(data.DataLoader(train_set, 64)))
net.train()


def loss_now():
    with mr.no_grad():
        return float(F.softmax_cross_entropy(net(mr.Tensor(x)), labels).data)


before = loss_now()
conv = net.layer2[1].conv1
conv.weight.data[3] *= 10.0  # filter 3 of one conv, ten times larger
after = loss_now()
conv.weight.data[3] /= 10.0
print(f"loss {before:.6f} -> {after:.6f} with one filter scaled by 10 "
      "(batch norm in training mode)")

# %% [markdown]
# Li et al.'s fix (sec. 4) is to give the direction the weights' scale, filter by filter: for
# each filter j of layer i,
#
#     d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||theta_{i,j}||
#
# and to leave batch-norm parameters and biases out (a zero direction). A filter is the part of a
# conv weight (C_out, C_in, kh, kw) that makes one output channel, `w[j]`; for a linear layer, a
# row. Then a = 1 moves every filter by as much as its own size.

# %%
d = landscape.filter_normalized_direction(net, seed=1)
for name, p in list(net.named_parameters())[:4]:
    w = p.data
    if w.ndim > 1:
        print(f"{name:>16}: filter norms of weights {np.linalg.norm(w[0]):.3f}, "
              f"{np.linalg.norm(w[1]):.3f}; of the direction {np.linalg.norm(d[name][0]):.3f}, "
              f"{np.linalg.norm(d[name][1]):.3f}")
    else:
        print(f"{name:>16}: direction all zero: {not d[name].any()}")

# %% [markdown]
# ## 2. The nets
#
# The loss is measured on a fixed subset of the training images with batch norm in *eval* mode,
# using the trained net's running statistics: the function the trained net computes.
# With BN in eval mode the scale invariance of section 1 no longer holds exactly, which is one
# more reason to measure steps in units of each filter's norm.

# %%
DEPTHS = (8, 14) if QUICK else (20, 56)
LIMIT = 128 if QUICK else None
POINTS = 5 if QUICK else 11
recipe = nets.RECIPES["digits"]
if QUICK:  # one epoch; the milestones follow the epochs
    recipe = recipe.replace(epochs=1, batch_size=min(recipe.batch_size, LIMIT))
trained_nets = {}
for depth in DEPTHS:
    for kind in ("plain", "resnet"):
        name = f"{kind}{depth}"
        trained_nets[name], info = nets.get_net(name, train_set, test_set, recipe,
                                                from_dir=NETS_FROM, seed=0, limit=LIMIT,
                                                progress=not QUICK)
        print(name, info)
probe_x, probe_y = next(iter(data.DataLoader(train_set, 128)))

# %% [markdown]
# ## 3. 1-D slices
#
# Along each of two filter-normalised random directions, 21 points from a = -1 to 1. A convex
# curve bends up everywhere; `landscape.concave_share_1d(curve, region=1)` counts the share of
# points within 1 of the curve's minimum where it bends down (a negative second difference).

# %%
coords_1d = np.linspace(-1, 1, 11 if QUICK else 21)
curves = {}
for name, model in trained_nets.items():
    curves[name] = []
    for s in range(2):
        direction = landscape.filter_normalized_direction(model, seed=10 + s)
        land = landscape.Landscape(model, probe_x, probe_y, [direction])
        curves[name].append(landscape.slice_1d(land, coords_1d))
    bends = np.mean([landscape.concave_share_1d(c, region=landscape.REGION) for c in curves[name]])
    print(f"{name:>9}: loss at a = 0 {curves[name][0][len(coords_1d) // 2]:.3f}, "
          f"near its minimum bends down at {bends:.0%} of the points")
show(landscape.plot_curves(curves, coords_1d, os.path.join(OUT, "11_landscape_1d.png"),
                           title="1-D slices of the training loss"))

# %% [markdown]
# ## 4. 2-D contours, on the same levels
#
# Two directions d and e, a grid of a and b, and f(a, b) = L(theta* + a d + b e). Li et al. show
# the nets side by side; `landscape.plot_contours` uses the same contour levels in every panel, so
# the spacing of the lines compares across nets. `landscape.summarise` turns the pictures into
# numbers: the share of grid points within 0.1 of the minimum (how wide the basin is), and, near
# the minimum (loss within 1 of it), the share of points where the plane's smaller principal
# curvature is clearly negative, lambda_min / |lambda_max| < -0.1: a saddle or a ridge rather than
# a bowl (Li et al.'s Fig. 7 maps the same ratio for the full Hessian). Far from the minimum the
# loss explodes, and its bends there say nothing about the basin, so they are not counted.

# %%
coords = np.linspace(-1, 1, POINTS)
grids, results = {}, {}
for name, model in trained_nets.items():
    d, e = (landscape.filter_normalized_direction(model, seed=s) for s in (1, 2))
    grids[name] = landscape.grid_2d(landscape.Landscape(model, probe_x, probe_y, [d, e]), coords)
    results[name] = {"training": {},
                     "measures": landscape.summarise(grids[name], coords, curves[name])}
print(landscape.table(results))
show(landscape.plot_contours(grids, coords, os.path.join(OUT, "11_landscape.png"),
                             title="Training loss around the trained weights"))
if QUICK:
    print("(quick mode: nets trained for one epoch on 128 images and a 5 x 5 grid, "
          "so this is noise)")

# %% [markdown]
# ## 5. What the miniature can and cannot show
#
# Read the table with Li et al.'s claim in mind: at the deeper depth, is the plain net's basin
# narrower and are clearly negative curvatures near its minimum more common than the ResNet's,
# while at the shallower depth the two are alike? In the reference run of `python -m minires
# landscape` (21 x 21, 128 images; `results/landscape.md`) the basins are: the 20-layer pair are
# both bowls, and plain-56's contours are ragged around a basin of under 1% of the grid while
# ResNet-56 stays a bowl. The curvature count is not: none of the few points near plain-56's
# minimum curves clearly down. It sees only the plotted plane, with finite differences on a
# coarse grid and few points near a degraded net's minimum, so read it as the most fragile of
# the measures. And plain-56 had not trained there, which the next paragraph explains.
#
# Keep in mind how much smaller this is than the paper's setting. Li et al. trained on CIFAR-10
# for 300 epochs and plotted a 51 x 51 grid of the loss over all 50,000 training images; here the
# nets trained for 30 short epochs on 8x8 digits and the loss is over 128 images. A plain-56
# that has not finished training sits on a slope rather than in a minimum, and a picture around
# it says more about where training stopped than about the landscape near a minimum. Two random
# directions are a two-dimensional glimpse of a space of hundreds of thousands of dimensions
# (ResNet-56 has 0.85M parameters, Table 6 of He et al.); Li et al.
# checked their pictures against the Hessian's extreme eigenvalues, which we do not.
#
# ## Summary
#
# * Batch norm makes the loss invariant to each filter's scale, so random directions are scaled
#   filter by filter to the weights' norms (`landscape.filter_normalized_direction`); BN
#   parameters and biases stay fixed.
# * `landscape.Landscape` evaluates L(theta* + sum_i t_i d_i) with BN in eval mode and puts the
#   weights back after each point; `slice_1d` and `grid_2d` walk the lines and grids.
# * `landscape.summarise` quantifies basin width and curvature signs, so that a claim like "the
#   plain net's landscape is less convex" can be checked, not just seen.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: filter normalisation by hand.** Write `normalise(d, w)` for one weight array:
# given a direction `d` and weights `w` of the same shape (a conv weight (C_out, C_in, kh, kw) or a
# linear weight (out, in)), return d with each filter `d[j]` scaled to the norm of `w[j]`.

# %%
def check_exercise_1(normalise):
    rng = np.random.default_rng(0)
    for shape in ((8, 4, 3, 3), (10, 64)):
        scale = (shape[0],) + (1,) * (len(shape) - 1)  # one scale per filter
        w, d = rng.standard_normal(shape) * rng.uniform(0.1, 3, scale), rng.standard_normal(shape)
        got = normalise(d, w)
        for j in range(shape[0]):
            assert np.isclose(np.linalg.norm(got[j]), np.linalg.norm(w[j])), \
                f"filter {j} of {shape}: wrong norm"
            assert np.allclose(got[j] / np.linalg.norm(got[j]), d[j] / np.linalg.norm(d[j])), \
                f"filter {j} of {shape}: the direction must keep its own orientation"
    print("exercise 1: correct")


def normalise(d, w):
    raise NotImplementedError


# check_exercise_1(normalise)

# %% [markdown]
# **Exercise 2: where the invariance breaks.** Section 1 scaled one filter by 10 in training
# mode and the loss did not move. Write `eval_mode_change(model, x, labels)` that does the same
# with the model in eval mode and returns the absolute change of the loss. Why is it not zero?

# %%
def check_exercise_2(eval_mode_change):
    mr.manual_seed(0)
    model = models.resnet20(in_channels=1)
    model.train()
    for _ in range(3):  # give BN some running statistics
        with mr.no_grad():
            model(mr.Tensor(x))
    change = eval_mode_change(model, x, labels)
    assert change > 1e-3, f"a change of {change} is too small: is the model in eval mode?"
    print(f"exercise 2: correct, in eval mode the loss moves by {change:.3f}")


def eval_mode_change(model, x, labels):
    raise NotImplementedError


# check_exercise_2(eval_mode_change)

# %% [markdown]
# ## Solutions
#
# **1.** The norm of each filter is taken over every axis but the first.

# %%
def normalise_solution(d, w):
    axes = tuple(range(1, w.ndim))
    w_norm = np.sqrt((w ** 2).sum(axis=axes, keepdims=True))
    return d * w_norm / np.sqrt((d ** 2).sum(axis=axes, keepdims=True))


check_exercise_1(normalise_solution)

# %% [markdown]
# **2.** In eval mode BN divides by the *running* standard deviation, fixed during training, not
# by the statistics of the scaled filter's output; the channel comes out ten times larger.

# %%
def eval_mode_change_solution(model, x, labels):
    model.eval()
    with mr.no_grad():
        before = float(F.softmax_cross_entropy(model(mr.Tensor(x)), labels).data)
        model.layer2[1].conv1.weight.data[3] *= 10.0
        after = float(F.softmax_cross_entropy(model(mr.Tensor(x)), labels).data)
        model.layer2[1].conv1.weight.data[3] /= 10.0
    return abs(after - before)


check_exercise_2(eval_mode_change_solution)
