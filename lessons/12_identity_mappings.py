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
# # Lesson 12: Identity mappings and pre-activation
#
# A year after ResNet, He, Zhang, Ren and Sun (2016, "Identity Mappings in Deep Residual
# Networks") asked what exactly makes the shortcut work. Their answer: the signal should pass from
# any unit to any other *unchanged*. The shortcut should be a pure identity, and nothing (no
# ReLU, no BN) should stand after the addition. They test scaled, gated, convolutional and dropout
# shortcuts (Fig. 2, Table 1) and five placements of BN and ReLU (Fig. 4, Table 2), and arrive at
# the *pre-activation* unit, BN -> ReLU -> conv twice, the addition last.
#
# **By the end you will be able to**
#
# 1. read eq. 3-5 in the code: with x_{l+1} = x_l + F(x_l), the signal and the gradient reach every
#    unit directly, and a pre-activation unit with its last conv at zero is *exactly* the identity;
# 2. derive, and measure, what a scaled shortcut does over many units: a factor prod lambda_i
#    (eq. 7-8);
# 3. build the variants of Fig. 2 and Fig. 4 (`minires.experiments.identity`) and the
#    pre-activation nets (`models.preact_resnet20 ... 1001`), and check ResNet-164's and
#    ResNet-1001's parameter counts against the paper;
# 4. train the variants with one recipe, as `python -m minires identity` does, and judge which of
#    the paper's findings a small run on the digits shows.
#
# Run time (full run: 11 s, quick: 1 s) on 2 CPU cores, most of it in the training of
# section 5; `MINIRES_QUICK=1` shrinks everything (its numbers are then only a smoke test). Open as
# a notebook with `jupytext --to notebook lessons/12_identity_mappings.py`, run cell by cell in VS
# Code, or run `python lessons/12_identity_mappings.py`.

# %%
import os

import numpy as np

import minires as mr
from minires import data, models, nn
from minires.experiments import identity
from lesson_setup import OUT, QUICK, show  # quick mode and figures, see lesson_setup.py


def n_params(module):
    return sum(p.size for p in module.parameters())


mr.manual_seed(0)  # minires's own generator, used for weight initialisation
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. What the addition should be followed by: nothing
#
# The paper writes a unit as y_l = h(x_l) + F(x_l, W_l), x_{l+1} = f(y_l) (eq. 1-2). The original
# ResNet has h = identity and f = ReLU. If f were the identity too,
#
#     x_{l+1} = x_l + F(x_l, W_l)                                 (eq. 3)
#     x_L = x_l + sum_{i=l}^{L-1} F(x_i, W_i)                     (eq. 4)
#     dE/dx_l = dE/dx_L (1 + d/dx_l sum_{i=l}^{L-1} F(x_i, W_i))  (eq. 5)
#
# Any deeper unit's input is a shallower unit's plus a sum of residuals, and dE/dx_L reaches x_l
# through the "1" whatever the weights. `models.PreActBlock` (Fig. 4(e)) puts BN and ReLU *before*
# each conv, so f is the identity. Zero its last conv and the unit is the identity, exactly, even on
# negative inputs; the original unit with its branch silenced is ReLU(x) instead.

# %%
pre = models.PreActBlock(4, 4).double()
nn.init.zeros_(pre.last_conv().weight)
orig = models.BasicBlock(4, 4, shortcut="A").double()
nn.init.zeros_(orig.last_bn().weight)
x = mr.Tensor(rng.standard_normal((2, 4, 5, 5)))
with mr.no_grad():
    print("pre-activation unit, F = 0: y == x        ", np.array_equal(pre(x).data, x.data))
    print("original unit, F = 0:       y == ReLU(x)  ", np.array_equal(orig(x).data, np.maximum(x.data, 0)))
print(pre)

# %% [markdown]
# ## 2. A scaled shortcut over many units: prod lambda_i
#
# Put a constant lambda on the shortcut, x_{l+1} = lambda x_l + F(x_l) (eq. 6). Unrolled, x_L =
# lambda^(L-l) x_l + ... (eq. 7) and the gradient's direct term becomes lambda^(L-l) dE/dx_L
# (eq. 8): for lambda = 0.5 and 50 units, 1e-15. Measure it: a stack of units with silent branches,
# a random upstream gradient, the ratio of gradient norms at the bottom and the top.

# %%
def stack_gradient_ratio(make_unit, n_units, planes=4):
    """||dE/dx_0|| / ||dE/dx_n|| through ``n_units`` units whose branches output zero (their last BN at 0)."""
    units = []
    for _ in range(n_units):
        u = make_unit(planes).double()
        if hasattr(u, "bn2"):
            nn.init.zeros_(u.bn2.weight)
            nn.init.zeros_(u.bn2.bias)
        units.append(u)
    net = nn.Sequential(*units)
    x0 = mr.Tensor(np.abs(rng.standard_normal((2, planes, 4, 4))) + 0.1, requires_grad=True)  # ReLU passes x > 0
    g = rng.standard_normal((2, planes, 4, 4))
    net(x0).backward(g)
    return np.linalg.norm(x0.grad) / np.linalg.norm(g)


n_units = 6 if QUICK else 27  # ResNet-110 has 54 units, 18 per stage
for label, make in (("identity (original unit)", lambda c: models.BasicBlock(c, c, shortcut="A")),
                    ("constant scaling 0.5", lambda c: identity.ScaledShortcutBlock(c, c, shortcut_scale=0.5)),
                    ("shortcut-only gate, b_g = -6", lambda c: identity.ShortcutGatingBlock(c, c, gate_bias=-6.0)),
                    ("shortcut-only gate, b_g = 0", lambda c: identity.ShortcutGatingBlock(c, c, gate_bias=0.0))):
    print(f"{label:>30}: ratio {stack_gradient_ratio(make, n_units):.3g}   (0.5^{n_units} = {0.5 ** n_units:.3g})")

# %% [markdown]
# The gate 1 - g(x) = 1 - sigmoid(conv(x) + b_g) is a learned lambda. With b_g = -6 it starts at
# about 0.998 and the stack is nearly the identity; with b_g = 0 it starts near 0.5, like constant
# scaling. That is why the paper's shortcut-only gating works with b_g = -6 (6.91%) and not with
# b_g = 0 (12.86%), and why its best gated net is still worse than the plain identity (6.61%).
#
# ## 3. Five places for BN and ReLU (Fig. 4)
#
# With the same convolutions, the paper moves BN and ReLU around the addition:

# %%
for name in identity.TABLE2:
    label, figure, paper = identity.VARIANTS[name][:3]
    make = identity.VARIANTS[name][4]
    unit = make(4, 4, 1, "A")
    print(f"{figure:>17} {label:>26}: {type(unit).__name__:>24}, ResNet-110 CIFAR-10 test error {paper}% "
          f"(Table 2)")

mr.manual_seed(1)
relu_before = identity.ReLUBeforeAdditionBlock(4, 4).double()
with mr.no_grad():
    change = relu_before(x).data - x.data
print(f"ReLU before addition: the smallest change the unit makes is {change.min():.3f} (never negative)")

# %% [markdown]
# (b) puts a BN on the shortcut path, so the signal is renormalised at every unit: not an
# identity. (c) makes F >= 0, so a unit can only add to x: the residual loses half its range.
# (d) keeps BN after the conv but moves ReLU before it; (e), full pre-activation, also lets BN
# normalise each unit's input, which the paper finds regularises: the best of the five.
#
# ## 4. The pre-activation nets and the paper's parameter counts
#
# `models.preact_resnet20 ... 110` are the CIFAR nets of basic units; `preact_resnet164` and
# `preact_resnet1001` use bottleneck units (BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, output planes
# 64/128/256, 9n + 2 layers), as in the paper's sec. 5. Each has a final BN + ReLU before the
# pooling (the "extra activation" of sec. 4.1) and no BN on the stem.

# %%
for name, paper in (("preact_resnet110", "1.7M"), ("preact_resnet164", "1.7M"), ("preact_resnet1001", "10.2M")):
    if QUICK and name == "preact_resnet1001":
        continue  # building 1001 layers takes a few seconds
    model = models.get_model(name)
    total = n_params(model)
    bn = sum(p.size for k, p in model.named_parameters() if ".bn" in k or k.startswith("bn"))
    print(f"{name:>18}: {total:,} parameters ({total / 1e6:.2f}M; without BN's {bn:,}: "
          f"{(total - bn) / 1e6:.2f}M), the paper: {paper}")

# %% [markdown]
# ResNet-164 matches 1.7M either way. For ResNet-1001 the paper's 10.2M is the count of the
# convolution and fc weights; with the batch-norm scales and shifts it is 10.33M. Moving BN and
# ReLU changes no parameter count: pre-activation ResNet-110 has the original's 1,727,962.
#
# ## 5. Training the variants with one recipe
#
# `identity.run` trains a CIFAR-layout net of each variant on the digits with one recipe,
# `identity.RECIPE` (SGD, momentum 0.9, weight decay 1e-4, lr 0.1 / 10 at 50% and 75% of the
# epochs, one-pixel shifts), the same seed for every variant. Here four variants, small and short;
# the full table (all eleven, deeper, longer) is `python -m minires identity`, in
# `results/identity.md`.

# %%
train_set, test_set = data.load_digits()
settings = (dict(depth=8, widths=(2, 4, 8), limit=64,
                 recipe=identity.RECIPE.replace(epochs=1, batch_size=32)) if QUICK
            else dict(depth=20, widths=(8, 16, 32), recipe=identity.RECIPE.replace(epochs=4)))
doc = identity.run(os.path.join(OUT, "12_identity"),
                   variants=("original", "scaling", "relu_before_addition", "full_preact"),
                   train_set=train_set, test_set=test_set, progress=False, **settings)
show(os.path.join(OUT, "12_identity", "identity_loss.png"))

# %% [markdown]
# Compare the final training losses before the test errors: the paper's argument is about
# optimisation. A 20-layer net is shallow for these questions (constant scaling multiplies the
# shortcut signal by 0.5^7 over its 7 identity shortcuts, by 0.5^52 in ResNet-110), and four epochs are few; the
# table of `results/identity.md` uses deeper nets and more epochs, and says which of the paper's
# orderings they reproduce.
#
# ## Summary
#
# * Identity shortcut and nothing after the addition (eq. 3-5): every unit sees every other one
#   through identities, forward and backward. A pre-activation unit with F = 0 is exactly x.
# * A scale, gate or dropout on the shortcut multiplies the direct term by a product over units
#   (eq. 7-8); a 1x1 conv replaces it by a product of matrices. The paper finds all of them worse.
# * Of the five placements of BN and ReLU, full pre-activation (Fig. 4(e)) is the paper's best;
#   BN after the addition, the worst.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: predict the product.** For n units of `ScaledShortcutBlock(c, c, shortcut_scale=lam)`
# with silent branches and positive input, write `predicted_ratio(lam, n)` for the ratio of
# section 2.

# %%
def check_exercise_1(predicted_ratio):
    for lam, n in ((0.5, 4), (0.9, 10), (1.0, 7), (0.7, 3)):
        measured = stack_gradient_ratio(lambda c: identity.ScaledShortcutBlock(c, c, shortcut_scale=lam), n)
        assert np.isclose(predicted_ratio(lam, n), measured, rtol=1e-9), f"lambda {lam}, n {n}: {measured}"
    print("exercise 1: correct")


def predicted_ratio(lam, n):
    raise NotImplementedError


# check_exercise_1(predicted_ratio)

# %% [markdown]
# **Exercise 2: exclusive gating by hand.** Write `exclusive_gating(unit, x)` returning the output
# of an `identity.ExclusiveGatingBlock` from its parts: `unit.branch(x)` is F(x),
# `unit.gate` the 1x1 conv. Use minires tensors (`1 / (1 + (-z).exp())` is a sigmoid).

# %%
def check_exercise_2(exclusive_gating):
    mr.manual_seed(5)
    unit = identity.ExclusiveGatingBlock(3, 3, gate_bias=-2.0).double()
    xe = mr.Tensor(rng.standard_normal((2, 3, 4, 4)))
    with mr.no_grad():
        np.testing.assert_allclose(exclusive_gating(unit, xe).data, unit(xe).data, rtol=1e-12)
    print("exercise 2: correct")


def exclusive_gating(unit, x):
    raise NotImplementedError


# check_exercise_2(exclusive_gating)

# %% [markdown]
# **Exercise 3: count ResNet-164.** Write `preact164_params()` from the architecture alone: conv1
# 3x3 3 -> 16; three stages of 18 bottleneck units with bottleneck planes 16, 32, 64 (outputs x4);
# each unit BN(c_in), 1x1 c_in -> p, BN(p), 3x3 p -> p, BN(p), 1x1 p -> 4p; the first unit of each
# stage adds a 1x1 projection c_in -> 4p; a final BN(256); fc 256 -> 10 with bias. BN has 2
# parameters per channel; convs have no bias.

# %%
def check_exercise_3(preact164_params):
    want = n_params(models.preact_resnet164())
    assert preact164_params() == want, f"{preact164_params()} != {want}"
    print("exercise 3: correct")


def preact164_params():
    raise NotImplementedError


# check_exercise_3(preact164_params)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Each unit multiplies the gradient by lambda (the ReLU passes it: the input stays positive).

# %%
def predicted_ratio_solution(lam, n):
    return lam ** n


check_exercise_1(predicted_ratio_solution)

# %% [markdown]
# **2.** g = sigmoid(conv(x) + b_g); y = ReLU(g F(x) + (1 - g) x).

# %%
def exclusive_gating_solution(unit, x):
    g = 1 / (1 + (-unit.gate(x)).exp())
    s = g * unit.branch(x) + (1 - g) * x
    return unit.relu(s)


check_exercise_2(exclusive_gating_solution)

# %% [markdown]
# **3.** Sum stage by stage; c_in becomes 4p after the first unit.

# %%
def preact164_params_solution():
    total = 3 * 3 * 3 * 16
    c_in = 16
    for p in (16, 32, 64):
        for u in range(18):
            total += 2 * c_in + c_in * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p
            if u == 0:
                total += c_in * 4 * p
            c_in = 4 * p
    return total + 2 * 256 + 256 * 10 + 10


check_exercise_3(preact164_params_solution)
