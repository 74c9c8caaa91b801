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
# # Lesson 4: The residual block
#
# The paper's central idea fits in one line. A stack of layers should not have to learn a desired
# mapping H(x) directly. It learns the residual F(x) = H(x) - x, and a *shortcut* adds x back:
#
#     y = F(x, {W_i}) + x          (Eq. 1)   identity shortcut, when x and F(x) have the same shape
#     y = F(x, {W_i}) + W_s x      (Eq. 2)   projection shortcut, when the shape changes
#
# If the best thing a block can do is nothing, it only has to push F towards zero, which is
# easier than making a stack of nonlinear layers imitate the identity (sec. 3.1). This lesson
# takes `models.BasicBlock` apart.
#
# **By the end you will be able to**
#
# 1. map each line of `BasicBlock` onto Fig. 2 and Eq. 1;
# 2. say what shortcut options A, B and C (sec. 3.3) do when a stage halves the map and doubles
#    the channels, and what each costs in parameters;
# 3. derive and measure the gradient through an identity shortcut, dL/dx = dL/dy (1 + dF/dx). In
#    particular you will see that with a zero-initialised last BN the block passes dL/dx == dL/dy
#    *exactly*.
#
# Open as a notebook with `jupytext --to notebook lessons/04_residual_block.py`, run cell by cell
# in VS Code, or run `python lessons/04_residual_block.py`. Run time (full run: 2 s, quick: 2 s), on
# 2 CPU cores; `MINIRES_QUICK=1` is the quick run.

# %%
import numpy as np

import minires as mr
from minires import functional as F, models, nn
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py


def n_params(module):
    return sum(p.size for p in module.parameters())


mr.manual_seed(0)  # minires's own generator, used for weight initialisation
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The block, line by line
#
# A `BasicBlock` (the block of ResNet-18/34 and of every CIFAR net) has two 3x3 convolutions, each
# followed by BN (lesson 3), with a ReLU in between. The shortcut is added *before* the last ReLU:
#
#     F(x) = BN(conv3x3(ReLU(BN(conv3x3(x)))))         y = ReLU(F(x) + shortcut(x))

# %%
def draw_block(ax):
    """Fig. 2 of the paper, as BasicBlock implements it."""
    def box(y, text, fc="#cfe2ff"):
        ax.text(0, y, text, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.4", fc=fc, ec="black", lw=0.8))

    def arrow(y0, y1):
        ax.annotate("", xy=(0, y1), xytext=(0, y0), arrowprops=dict(arrowstyle="->", lw=1.2))

    ax.text(0, 6.2, "x", ha="center", fontsize=12)
    box(5.2, "conv 3x3 (conv1) + BN (bn1)")
    box(4.2, "ReLU", "#fde2c8")
    box(3.2, "conv 3x3 (conv2) + BN (bn2)")
    ax.text(0, 2.0, "+", ha="center", va="center", fontsize=16,
            bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec="black"))
    box(0.9, "ReLU", "#fde2c8")
    ax.text(0, -0.1, "y", ha="center", fontsize=12)
    for y0, y1 in ((6.1, 5.5), (4.9, 4.5), (3.9, 3.5), (2.9, 2.3), (1.7, 1.2), (0.6, 0.1)):
        arrow(y0, y1)
    ax.plot([0, 1.9, 1.9], [5.9, 5.9, 2.0], color="tab:red", lw=1.5)
    ax.annotate("", xy=(0.2, 2.0), xytext=(1.9, 2.0), arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.5))
    ax.text(2.0, 4.0, "shortcut (downsample)\nidentity x    (Eq. 1)\nor  W_s x     (Eq. 2)",
            color="tab:red", va="center", fontsize=9)
    ax.annotate("", xy=(-1.9, 2.9), xytext=(-1.9, 5.5), arrowprops=dict(arrowstyle="-", lw=1))
    ax.text(-2.0, 4.2, "F(x, {W_i})", ha="right", va="center", fontsize=11)
    ax.set_xlim(-3.2, 3.6)
    ax.set_ylim(-0.4, 6.6)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(6, 4.5))
draw_block(ax)
ax.set_title("A BasicBlock: y = ReLU(F(x, {W_i}) + x)")
show(fig, "04_block.png")

# %% [markdown]
# In minires the block is `models.BasicBlock(in_planes, planes, stride, shortcut)`. Its `forward`
# is the figure above, nearly word for word. Let's rebuild the output from the block's parts and
# compare:

# %%
block = models.BasicBlock(8, 8, stride=1, shortcut="B")
print(block)


def branch(block, x):
    """F(x, {W_i}): the residual branch of a BasicBlock."""
    return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))


x = mr.Tensor(rng.standard_normal((4, 8, 6, 6)).astype(np.float32))
y_parts = F.relu(branch(block, x) + x)       # Eq. 1, then the final ReLU
assert np.allclose(block(x).data, y_parts.data, atol=1e-6)
print("block(x) == ReLU(F(x) + x); identity shortcut here, since downsample is", block.downsample)

# %% [markdown]
# ## 2. When the shape changes: options A, B and C
#
# The first block of each stage halves the feature map (its first conv has stride 2) and doubles
# the channels. Then x and F(x) cannot be added as they are. Section 3.3 gives three options:
#
# * **A**: still no parameters. Take every second pixel of x and fill the new channels with
#   zeros: `F.pad_channels(x, out_channels, stride)`. The CIFAR nets of sec. 4.2 use it.
# * **B**: Eq. 2, with W_s a 1x1 convolution of stride 2 (plus BN) only where the shape changes.
#   Everywhere else the shortcut is the identity. The ImageNet nets use it.
# * **C**: a projection on *every* shortcut, even where the identity would fit.
#
# Here is option A on a 4-channel 8x8 input going to 8 channels at 4x4:

# %%
yy, xx = np.mgrid[0:8, 0:8]
patterns = np.stack([xx, yy, (xx + yy) % 4, np.hypot(xx - 3.5, yy - 3.5)]).astype(np.float32)
xa = mr.Tensor(patterns[None])                  # (1, 4, 8, 8)
ya = F.pad_channels(xa, 8, 2)                   # (1, 8, 4, 4)
print("option A:", xa.shape, "->", ya.shape)

fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for c in range(8):
    if c < 4:
        axes[0, c].imshow(xa.data[0, c], cmap="magma", vmin=0, vmax=7)
        axes[0, c].set_title(f"x: channel {c}", fontsize=9)
    axes[1, c].imshow(ya.data[0, c], cmap="magma", vmin=0, vmax=7)
    axes[1, c].set_title(f"out: {c}" + (" (zeros)" if c >= 4 else ""), fontsize=9)
for a in axes.ravel():
    a.set_xticks([]), a.set_yticks([])
    if not a.images:
        a.axis("off")
fig.suptitle("Option A: keep every 2nd pixel, pad with zero channels (no parameters)", y=1.02)
show(fig, "04_option_a.png")

# %% [markdown]
# What does each option cost in parameters? First per block, for a block that keeps the shape
# (16 -> 16) and one that changes it (16 -> 32 with stride 2). `shortcut=None` is the *plain* block
# with no shortcut at all, the paper's baseline:

# %%
print(f"{'block':22s}" + "".join(f"{str(o):>10s}" for o in ("A", "B", "C", None)))
for in_planes, planes, stride in ((16, 16, 1), (16, 32, 2), (64, 64, 1), (64, 128, 2)):
    counts = [n_params(models.BasicBlock(in_planes, planes, stride, shortcut=o)) for o in ("A", "B", "C", None)]
    print(f"{in_planes:3d} -> {planes:3d}, stride {stride}   " + "".join(f"{c:10,d}" for c in counts))

# %% [markdown]
# And for whole networks. In the ImageNet net, options B and C differ only in the 1x1 projections
# they add. Count them and their parameters (Table 3 compares these three options on ResNet-34;
# quick mode uses ResNet-18 to save time):

# %%
imagenet_net = models.resnet18 if QUICK else models.resnet34
for build in (models.resnet20, imagenet_net):
    counts, n_proj = {}, {}
    for option in ("A", "B", "C"):
        net = build(shortcut=option)
        blocks = [b for stage in net.stages() for b in stage]
        n_proj[option] = sum(isinstance(b.downsample, nn.Sequential) for b in blocks)  # 1x1 conv + BN
        counts[option] = n_params(net)
        print(f"{build.__name__:9s} option {option}: {counts[option]:>11,d} parameters, "
              f"{n_proj[option]:2d} projection shortcuts")
    print(f"{'':9s} B adds {100 * (counts['B'] / counts['A'] - 1):.1f}% parameters to A; C adds "
          f"{100 * (counts['C'] / counts['A'] - 1):.1f}%, with {n_proj['C'] - n_proj['B']} more projections than B")

# %% [markdown]
# For ResNet-34 (run without quick mode), C has 13 more projections than B, the "thirteen" of
# sec. 3.3. In Table 3, B does a little better than A, which the paper puts down to A's zero-padded
# channels learning no residual. C is only marginally better than B, and the paper credits that
# to the extra projections' parameters. Since projections are not needed to fix degradation, the
# paper keeps B (projections only where the shape changes) for its ImageNet nets.
#
# ## 3. The gradient through an identity shortcut
#
# Write s = F(x) + x for the sum and y = ReLU(s). The chain rule for the sum has two terms, one per
# path, which lesson 1 called "a tensor used twice":
#
#     dL/dx = dL/ds + (dF/dx)^T dL/ds            i.e.  dL/dx = dL/ds (1 + dF/dx)
#
# Whatever the branch's Jacobian is, the gradient arriving at the sum reaches x *unchanged* through
# the "1". Across a deep stack these factors multiply, and the product still contains a plain 1:
# one path on which the gradient skips every branch's Jacobian. Small branches therefore cannot
# make it vanish (lesson 5 measures this across 110 layers).
# Where s > 0 the final ReLU passes the gradient on, and there dL/ds = dL/dy.
#
# **The cleanest case: a zero-initialised last BN.** Setting the last BN's gamma to 0 makes F(x) = 0
# (beta starts at 0) and dF/dx = 0, so the block starts out as the identity.
# `models.ResNet(..., zero_init_residual=True)` does this for every block. The input of a block is
# the output of a ReLU and so non-negative. We take it strictly positive so that the final ReLU
# passes everything too. Then y == x and dL/dx == dL/dy, *bit for bit*:

# %%
net = models.resnet20(zero_init_residual=True)
print("resnet20(zero_init_residual=True): every block's bn2.weight is zero:",
      all(not b.bn2.weight.data.any() for stage in net.stages() for b in stage))

block0 = models.BasicBlock(16, 16, shortcut="B")
nn.init.zeros_(block0.bn2.weight)                                  # the same, for one block
x = mr.Tensor(np.abs(rng.standard_normal((4, 16, 6, 6))).astype(np.float32) + 0.1, requires_grad=True)
y = block0(x)
gy = rng.standard_normal(y.shape).astype(np.float32)
y.backward(gy)
print("y == x exactly:        ", np.array_equal(y.data, x.data))
print("dL/dx == dL/dy exactly:", np.array_equal(x.grad, gy))
print("yet the branch can learn: |dL/d bn2.weight| =", float(np.linalg.norm(block0.bn2.weight.grad)))
assert np.array_equal(y.data, x.data) and np.array_equal(x.grad, gy)

# %% [markdown]
# The last line matters. The block starts as the identity, but it is not stuck there: gamma gets
# a non-zero gradient, so after the first SGD step the branch begins to contribute.
#
# **The general case.** With the default initialisation (gamma = 1) the branch contributes. We keep
# the sum as a tensor, so that we can read dL/ds, and then compute the branch's share
# (dF/dx)^T dL/ds by a separate backward through F alone. The two parts add up to dL/dx:

# %%
def gradients(block, x_data, gy, residual=True):
    """(dL/ds, dL/dx) for y = ReLU(s), s = F(x) (+ x if residual), with upstream gradient gy."""
    x = mr.Tensor(x_data, requires_grad=True)
    s = branch(block, x) + x if residual else branch(block, x)
    s.retain_grad()
    F.relu(s).backward(gy)
    return s.grad, x.grad


block1 = models.BasicBlock(16, 16, shortcut="B")
ds, dx = gradients(block1, x.data, gy)
x_branch = mr.Tensor(x.data, requires_grad=True)
branch(block1, x_branch).backward(ds)                   # (dF/dx)^T dL/ds
assert np.allclose(dx, ds + x_branch.grad, atol=1e-5)
print("dL/dx == dL/ds + (dF/dx)^T dL/ds: the shortcut's copy plus the branch's share")

# %% [markdown]
# The picture puts every element of dL/dx against the same element of dL/ds. For the zero-init
# block every point lies on the diagonal: the gradient is passed through untouched. For the
# default block the points scatter *around* the diagonal: the "1" plus the branch's term. The
# plain block has no shortcut (`shortcut=None`), so dL/dx comes from the branch alone and shows no
# sign of the diagonal. The vertical streak at dL/ds = 0 is the positions where the final ReLU was
# off. Nothing arrives there from above, but the branch still sends gradient to x from the
# neighbouring positions.

# %%
plain_block = models.BasicBlock(16, 16, shortcut=None)
cases = [("zero-init last BN", gradients(block0, x.data, gy)),
         ("default init", gradients(block1, x.data, gy)),
         ("plain (no shortcut)", gradients(plain_block, x.data, gy, residual=False))]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True, sharey=True)
for ax, (title, (ds_, dx_)) in zip(axes, cases):
    ax.scatter(ds_.ravel(), dx_.ravel(), s=4, alpha=0.5)
    lim = np.abs(ds_).max()
    ax.plot([-lim, lim], [-lim, lim], color="tab:red", lw=0.8, label="dL/dx = dL/ds")
    r = np.corrcoef(ds_.ravel(), dx_.ravel())[0, 1]
    ax.set(title=f"{title}: correlation {r:.2f}", xlabel="dL/ds (gradient at the sum)")
axes[0].set_ylabel("dL/dx (gradient leaving the block)")
axes[0].legend(loc="upper left")
fig.suptitle("dL/dx = dL/ds (1 + dF/dx): what the identity shortcut does to the gradient", y=1.03)
show(fig, "04_shortcut_gradient.png")

# %% [markdown]
# ## Summary
#
# * `BasicBlock`: F(x) = BN(conv(ReLU(BN(conv(x))))), y = ReLU(F(x) + shortcut(x)), which is
#   Eq. 1, or Eq. 2 when the shortcut is a projection W_s.
# * Where a stage changes shape, option A subsamples and zero-pads (no parameters), option B
#   projects with a 1x1 stride-2 conv and BN, and option C projects on every block, at a cost in
#   parameters and compute for a marginal gain.
# * Backwards, the identity shortcut hands the incoming gradient to x unchanged and the branch adds
#   its own term. With the last BN's gamma at zero, dL/dx equals dL/dy exactly.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: count the parameters.** Write `block_params(in_planes, planes, stride, shortcut)`
# for a BasicBlock with shortcut "A", "B", "C" or None. Remember that convs have no bias, that BN
# has two parameters per channel, and that its running statistics are buffers, not parameters.

# %%
def check_exercise_1(block_params):
    for in_planes, planes, stride in ((16, 16, 1), (16, 32, 2), (32, 32, 1), (64, 128, 2), (3, 5, 1)):
        for option in ("A", "B", "C", None):
            want = n_params(models.BasicBlock(in_planes, planes, stride, shortcut=option))
            got = block_params(in_planes, planes, stride, option)
            assert got == want, f"BasicBlock({in_planes}, {planes}, {stride}, {option!r}): {got} != {want}"
    print("exercise 1: correct")


def block_params(in_planes, planes, stride, shortcut):
    raise NotImplementedError


# check_exercise_1(block_params)

# %% [markdown]
# **Exercise 2: option A's backward.** Write `pad_channels_backward(gy, in_shape, stride)`,
# returning dL/dx for x of shape `in_shape` given dL/dy of the option-A shortcut y =
# `F.pad_channels(x, gy.shape[1], stride)`. Which elements of x receive nothing?

# %%
def check_exercise_2(pad_channels_backward):
    r = np.random.default_rng(2)
    for in_shape, out_c, stride in (((2, 3, 8, 8), 6, 2), ((1, 4, 7, 7), 8, 2), ((2, 4, 5, 5), 4, 1)):
        xe = mr.Tensor(r.standard_normal(in_shape), requires_grad=True)
        ye = F.pad_channels(xe, out_c, stride)
        ge = r.standard_normal(ye.shape)
        ye.backward(ge)
        np.testing.assert_array_equal(pad_channels_backward(ge, in_shape, stride), xe.grad)
    print("exercise 2: correct")


def pad_channels_backward(gy, in_shape, stride):
    raise NotImplementedError


# check_exercise_2(pad_channels_backward)

# %% [markdown]
# **Exercise 3: what a projection costs in compute.** Table 1 counts mult-adds (its "FLOPs" row).
# A k x k conv costs C_out * OH * OW * C_in * k * k of them per image. Write
# `block_mult_adds(in_planes, planes, H, stride, shortcut)` for one image of size H x H. The
# checker compares with `models.summary(block, (in_planes, H, H)).total_mult_adds`. Use it to see
# what share of a block's compute option C's extra projection adds.

# %%
def check_exercise_3(block_mult_adds):
    for in_planes, planes, H, stride in ((16, 16, 32, 1), (16, 32, 32, 2), (64, 64, 56, 1), (64, 128, 56, 2)):
        for option in ("A", "B", "C"):
            block = models.BasicBlock(in_planes, planes, stride, shortcut=option)
            want = models.summary(block, (in_planes, H, H)).total_mult_adds
            got = block_mult_adds(in_planes, planes, H, stride, option)
            assert got == want, f"{(in_planes, planes, H, stride, option)}: {got} != {want}"
    print("exercise 3: correct")


def block_mult_adds(in_planes, planes, H, stride, shortcut):
    raise NotImplementedError


# check_exercise_3(block_mult_adds)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Two 3x3 convs with no bias, two BNs (gamma and beta), plus a 1x1 projection with its BN when
# the option asks for one: always for C, and only where the shape changes for B.

# %%
def block_params_solution(in_planes, planes, stride, shortcut):
    count = 9 * in_planes * planes + 9 * planes * planes + 2 * (2 * planes)
    shape_changes = stride != 1 or in_planes != planes
    if shortcut == "C" or (shortcut == "B" and shape_changes):
        count += in_planes * planes + 2 * planes
    return count


check_exercise_1(block_params_solution)

# %% [markdown]
# **2.** The forward copies x[:, :, ::s, ::s] into the first C channels, so the backward routes
# gy[:, :C] back to those pixels. The other pixels (and the zero channels) receive nothing.

# %%
def pad_channels_backward_solution(gy, in_shape, stride):
    dx = np.zeros(in_shape, dtype=gy.dtype)
    dx[:, :, ::stride, ::stride] = gy[:, :in_shape[1]]
    return dx


check_exercise_2(pad_channels_backward_solution)

# %% [markdown]
# **3.** The first conv runs at the output size OH = ceil(H / stride), as does everything after it.
# For a 64 -> 64 block at 56x56, option C's projection adds 1/18 of the two 3x3 convs' cost.

# %%
def block_mult_adds_solution(in_planes, planes, H, stride, shortcut):
    OH = (H + 2 - 3) // stride + 1
    total = OH * OH * planes * (9 * in_planes + 9 * planes)
    if shortcut == "C" or (shortcut == "B" and (stride != 1 or in_planes != planes)):
        total += OH * OH * planes * in_planes
    return total


check_exercise_3(block_mult_adds_solution)
