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
# # Lesson 7: Bottleneck blocks and the cost of depth (Table 1)
#
# ResNet-34 and ResNet-50 have the same number of blocks per stage, [3, 4, 6, 3]. Yet the 50-layer
# net has 16 more layers and four times wider features between its blocks, and costs only about
# 5% more compute: 3.8 against 3.6 billion mult-adds in Table 1. The difference is the
# *bottleneck* block of sec. 4.1 ("Deeper Bottleneck Architectures", Fig. 5). This lesson counts
# where the multiply-adds go, by formula and with `models.summary`, and checks minires's nets
# against Table 1 of the paper and Table 6 (the CIFAR nets).
#
# **By the end you will be able to**
#
# 1. count a convolution's parameters and mult-adds by hand, and check them with `models.summary`;
# 2. say why a 1x1-3x3-1x1 bottleneck on 256 channels costs about as much as a basic block on 64,
#    and 17 times less than a basic block on 256;
# 3. read Table 1's "FLOPs" row for ResNet-18 to 152 off `models.summary`, stage by stage;
# 4. explain the two places the stride can go in a downsampling bottleneck (the paper's first 1x1
#    against torchvision's 3x3), and derive the 0.23 G it adds to ResNet-50.
#
# `models.summary` runs the model on an *empty* batch: every layer reports its output shape, but no
# arithmetic is done. Building the big nets (drawing their random weights) is the slow part.
# Run time (full run: 4 s, quick: 2 s), on 2 CPU cores; `MINIRES_QUICK=1` builds only ResNet-18 and
# ResNet-50. Open as a notebook with `jupytext --to notebook lessons/07_bottlenecks.py`, run
# cell by cell in VS Code, or run `python lessons/07_bottlenecks.py`.

# %%
import numpy as np

from minires import functional as F
from minires import models, nn
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py


# %% [markdown]
# ## 1. Counting one convolution
#
# A k x k convolution from C_in to C_out channels has C_out * C_in * k^2 weights (ResNet's convs
# have no bias). Each of its C_out * OH * OW outputs is a dot product of length C_in * k^2. So,
# per image,
#
#     params    = C_out * C_in * k^2
#     mult-adds = C_out * OH * OW * C_in * k^2 = params * OH * OW
#
# The paper's "FLOPs" are these multiply-adds: "Our 34-layer baseline has 3.6 billion FLOPs
# (multiply-adds)" (sec. 3.3). Batch norm, ReLU, pooling and the shortcut additions are not
# counted, and `models.summary` follows the same convention.

# %%
conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
s = models.summary(conv, (64, 56, 56))
params, mult_adds = 64 * 64 * 3 * 3, 64 * 56 * 56 * 64 * 3 * 3
print(f"3x3 conv, 64 -> 64 channels on 56x56: params {s.total_params:,} (formula {params:,}), "
      f"mult-adds {s.total_mult_adds:,} (formula {mult_adds:,})")
assert (s.total_params, s.total_mult_adds) == (params, mult_adds)

# %% [markdown]
# ## 2. Basic block against bottleneck (Fig. 5)
#
# Fig. 5 puts the two residual functions side by side. On the left is the basic block, two 3x3
# convs on a 64-channel map. On the right is the bottleneck, on a 256-channel map: a 1x1 conv
# *reduces* 256 channels to 64, a 3x3 conv works on those 64, and a 1x1 conv *restores* 256
# (`Bottleneck.expansion = 4`). Per output position, the mult-adds are
#
#     basic, 64-d:        9*64*64 + 9*64*64                  =    73,728
#     bottleneck, 256-d:  256*64  + 9*64*64 + 64*256         =    69,632
#     basic, 256-d:       9*256*256 + 9*256*256              = 1,179,648
#
# The paper chose the bottleneck so that the two designs in Fig. 5 "have similar time complexity".
# A 1x1 conv has no k^2 = 9 factor, so changing the width with 1x1 convs is cheap, and the one
# expensive conv, the 3x3, runs on a quarter of the channels, which costs a sixteenth.
# `models.summary` of the three blocks at conv2_x's resolution, 56x56, agrees:

# %%
H = 56
blocks = {"basic, 64-d": (models.BasicBlock(64, 64), 64),
          "bottleneck, 256-d": (models.Bottleneck(256, 64), 256),
          "basic, 256-d": (models.BasicBlock(256, 256), 256)}
per_position = {"basic, 64-d": 2 * 9 * 64 * 64,
                "bottleneck, 256-d": 256 * 64 + 9 * 64 * 64 + 64 * 256,
                "basic, 256-d": 2 * 9 * 256 * 256}
summaries = {}
for name, (block, channels) in blocks.items():
    summaries[name] = models.summary(block, (channels, H, H))
    total = summaries[name].total_mult_adds
    assert total == per_position[name] * H * H
    print(f"{name:18s} params {summaries[name].total_params:>9,}   mult-adds {total:>13,}"
          f"  = {per_position[name]:,} x {H}x{H}")
ratio = summaries["basic, 256-d"].total_mult_adds / summaries["bottleneck, 256-d"].total_mult_adds
print(f"a basic block on 256 channels would cost {ratio:.1f}x the bottleneck")

colours = {"conv1": "C0", "conv2": "C1", "conv3": "C2"}
fig, ax = plt.subplots(figsize=(7, 3.8))
for i, (name, s) in enumerate(summaries.items()):
    bottom = 0.0
    for row in s:
        if row.mult_adds:
            ax.bar(i, row.mult_adds / 1e6, bottom=bottom, color=colours[row.layer], edgecolor="white",
                   label=row.layer if i == 1 else None)
            bottom += row.mult_adds / 1e6
    ax.text(i, bottom, f"{bottom:,.0f} M", ha="center", va="bottom")
ax.set_xticks(range(len(summaries)), list(summaries))
ax.set(ylabel="mult-adds per image (millions)", title=f"One block at {H}x{H}: where the mult-adds go")
ax.legend(title="conv")
show(fig, "07_block_cost.png")

# %% [markdown]
# The bottleneck's two 1x1 convs (blue, green) together cost less than its single 3x3 (orange).
# Its input and output are 256-d, so the identity shortcut carries a four-times-wider signal past
# every block, and costs nothing: the paper stresses that "the parameter-free identity shortcuts
# are particularly important for the bottleneck architectures" (Exercise 2 checks why).
#
# ## 3. Table 1, stage by stage
#
# Table 1 lists, for each depth, the blocks in the stages conv2_x .. conv5_x (minires's `layer1`
# .. `layer4`) and the total "FLOPs". It gives no parameter counts, so we check ours against
# torchvision's published counts instead. minires uses torchvision's parameter names and shapes,
# so the two counts should agree *exactly*. For the FLOPs we build the bottleneck nets with
# `stride_in_1x1=True`, the layout of the paper's models (Section 4 explains it).

# %%
TABLE1 = {  # blocks per stage and Table 1's FLOPs (x 10^9)
    "resnet18": ([2, 2, 2, 2], 1.8), "resnet34": ([3, 4, 6, 3], 3.6), "resnet50": ([3, 4, 6, 3], 3.8),
    "resnet101": ([3, 4, 23, 3], 7.6), "resnet152": ([3, 8, 36, 3], 11.3)}
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808}
BOTTLENECK_NETS = ("resnet50", "resnet101", "resnet152")
NAMES = ["resnet18", "resnet50"] if QUICK else list(TABLE1)

table, blocks_table = {}, {}  # summaries by stage and by block
for name in NAMES:
    net = models.get_model(name, **({"stride_in_1x1": True} if name in BOTTLENECK_NETS else {}))
    table[name] = models.summary(net, (3, 224, 224))
    blocks_table[name] = models.summary(net, (3, 224, 224), depth=2)
    del net  # the weights of ResNet-152 alone take 240 MB

print(f"{'model':>10} {'blocks':>15} {'params':>12} {'torchvision':>12} {'mult-adds':>10} {'Table 1':>8}")
for name, s in table.items():
    blocks_per_stage, flops = TABLE1[name]
    print(f"{name:>10} {str(blocks_per_stage):>15} {s.total_params:>12,} {TORCHVISION_PARAMS[name]:>12,} "
          f"{s.total_mult_adds / 1e9:9.2f}G {flops:7.1f}G")
    assert s.total_params == TORCHVISION_PARAMS[name]
    assert abs(s.total_mult_adds / 1e9 - flops) < 0.1
print()
print(table["resnet50"])

# %% [markdown]
# The parameter counts agree to the last digit. The mult-adds agree with Table 1 to within 0.07 G,
# under 2%. Table 1 lists 3.6 and 3.8 where we count 3.66 and 3.86; the paper does not say how
# its counts were made, so we cannot tell where the small gap comes from.
#
# Per stage, the picture below shows where the compute and the parameters sit. Every stage halves
# the map and doubles the width, so each 3x3 conv costs the same in every stage, and the compute
# of a stage follows its number of blocks, while the parameters pile up in the last, widest stages.
# ResNet-101 and 152 get their depth by stacking blocks in conv4_x (23 and 36 of them), at 14x14.

# %%
STAGES = {"conv1": "stem", "layer1": "conv2_x", "layer2": "conv3_x", "layer3": "conv4_x",
          "layer4": "conv5_x", "fc": "fc"}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
panels = ((axes[0], "mult_adds", 1e9, "mult-adds (G)"), (axes[1], "params", 1e6, "parameters (M)"))
for ax, field, scale, unit in panels:
    for i, (name, s) in enumerate(table.items()):
        rows = {r.layer: r for r in s}
        bottom = 0.0
        for j, (layer, label) in enumerate(STAGES.items()):
            value = getattr(rows[layer], field) / scale
            ax.bar(i, value, bottom=bottom, color=f"C{j}", edgecolor="white",
                   label=label if i == 0 else None)
            bottom += value
    ax.set_xticks(range(len(table)), [n.replace("resnet", "") for n in table])
    ax.set(xlabel="ResNet depth", ylabel=unit)
axes[0].set_title("Compute per image at 224x224, by stage")
axes[1].set_title("Parameters, by stage")
axes[1].legend(loc="upper left", fontsize=8)
show(fig, "07_table1.png")

# %% [markdown]
# ## 4. Where does the stride go? The paper's layout and torchvision's
#
# The first block of conv3_x, conv4_x and conv5_x halves the map: "downsampling is performed by
# conv3_1, conv4_1, and conv5_1 with a stride of 2" (Table 1's caption). In a bottleneck the
# stride can sit on either of two convs:
#
# * **the first 1x1 conv** (`stride_in_1x1=True`), as in the models the authors released. The 3x3
#   then runs on the small map.
# * **the 3x3 conv** (`stride_in_1x1=False`, minires's default), torchvision's layout, often called
#   "ResNet v1.5". The first 1x1 conv now runs on the *large* map, before the stride.
#
# A 1x1 conv with stride 2 reads only every other row and column: three quarters of its input are
# never looked at by the branch. A 3x3 conv with stride 2 and padding 1 reads every input position.
# Adding the columns of an all-ones image back with `F.col2im` counts how often each input pixel
# is read:

# %%
def reads(k, stride, padding, size=8):
    """How often a k x k conv with this stride and padding reads each pixel of a size x size map."""
    n_out = (size + 2 * padding - k) // stride + 1
    ones = np.ones((k * k, n_out * n_out))
    return F.col2im(ones, (1, 1, size, size), k, k, stride, padding)[0, 0]


fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, (k, p, title) in zip(axes, ((1, 0, "1x1, stride 2 (paper)"), (3, 1, "3x3, stride 2 (torchvision)"))):
    counts = reads(k, 2, p)
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=4)
    for (i, j), c in np.ndenumerate(counts):
        ax.text(j, i, int(c), ha="center", va="center", fontsize=8)
    ax.set(title=f"{title}\n{int((counts > 0).sum())} of {counts.size} pixels read", xticks=[], yticks=[])
fig.suptitle("How often each pixel of an 8x8 input is read", y=1.04)
show(fig, "07_stride_reads.png")

# %% [markdown]
# The price of reading everything is the first 1x1 conv at the full resolution. In a downsampling
# block with C_in input channels, `planes` bottleneck channels and an input of H x H, that conv
# costs C_in * planes * H^2 instead of C_in * planes * (H/2)^2. The difference is
# (3/4) * C_in * planes * H^2, and everything else in the block is the same. ResNet-50 has three
# such blocks, and the three products are equal, (256, 128, 56), (512, 256, 28) and
# (1024, 512, 14), because the width doubles while the map halves. `models.summary` confirms the
# difference to the last mult-add:

# %%
paper = blocks_table["resnet50"]
torchvision = models.summary(models.resnet50(), (3, 224, 224), depth=2)
downsampling_blocks = ((256, 128, 56), (512, 256, 28), (1024, 512, 14))  # (C_in, planes, H) of conv3_1 ...
extra = sum(3 * c_in * planes * h * h // 4 for c_in, planes, h in downsampling_blocks)
difference = torchvision.total_mult_adds - paper.total_mult_adds
print(f"ResNet-50 mult-adds: paper layout {paper.total_mult_adds / 1e9:.3f} G, "
      f"torchvision layout {torchvision.total_mult_adds / 1e9:.3f} G")
print(f"difference {difference:,}; formula 3 x (3/4) C_in planes H^2 = {extra:,}")
assert difference == extra
print("\nthe first block of conv3_x in each layout:")
for label, s in (("paper", paper), ("torchvision", torchvision)):
    row = next(r for r in s if r.layer == "layer2.0")
    print(f"  {label:12s} layer2.0 -> {'x'.join(map(str, row.output_shape))}, mult-adds {row.mult_adds:,}")

# %% [markdown]
# Both layouts have identical parameters (a stride adds no weights), so a state dict loads into
# either. The same weights compute a different function in the other layout, though, so evaluate a
# net in the layout it was trained in. torchvision's layout costs about 6% more compute and is
# usually reported to be slightly more accurate. `python -m minires summary resnet50 --paper-layout`
# prints the paper's version.
#
# ## 5. The CIFAR nets of Table 6
#
# For CIFAR-10 (sec. 4.2) the paper uses basic blocks on 16, 32 and 64 channels, with option-A
# shortcuts, which have no parameters. A net with 3n blocks has 6n + 2 layers. Table 6 lists the
# parameters: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M and 19.4M for 20 to 1202 layers.

# %%
TABLE6 = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
depths = [d for d in TABLE6 if not (QUICK and d == 1202)]
print(f"{'depth':>6} {'params':>12} {'Table 6':>8} {'mult-adds at 32x32':>20}")
for depth in depths:
    s = models.summary(models.cifar_resnet(depth), (3, 32, 32))
    print(f"{depth:>6} {s.total_params:>12,} {TABLE6[depth]:>7}M {s.total_mult_adds:>20,}")
    assert round(s.total_params / 1e6, 2 if depth < 100 else 1) == TABLE6[depth]

# %% [markdown]
# ## Summary
#
# * A conv costs params * OH * OW mult-adds; the paper's "FLOPs" are these mult-adds.
# * The bottleneck's 1x1 convs change the width cheaply, and its 3x3 works on a quarter of the
#   channels. On 256-d features it costs about as much as a basic block on 64-d, and about 1/17 of
#   a basic block on 256-d.
# * `models.summary` reproduces Table 1's FLOPs to within 0.07 G and torchvision's parameter
#   counts exactly. Putting the stride in the 3x3 conv instead of the first 1x1 costs ResNet-50
#   0.23 G more.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: a bottleneck by formula.** Write `bottleneck_mult_adds(planes, H)`: the mult-adds
# of a stride-1 `Bottleneck(4 * planes, planes)` (identity shortcut) on an H x H map, for one image.

# %%
def check_exercise_1(bottleneck_mult_adds):
    for planes, h in ((64, 56), (128, 28), (256, 14), (512, 7), (3, 5)):
        block = models.Bottleneck(4 * planes, planes)
        want = models.summary(block, (4 * planes, h, h)).total_mult_adds
        got = bottleneck_mult_adds(planes, h)
        assert got == want, f"planes {planes}, {h}x{h}: you say {got:,}, summary says {want:,}"
    print("exercise 1: correct")


def bottleneck_mult_adds(planes, H):
    raise NotImplementedError


# check_exercise_1(bottleneck_mult_adds)

# %% [markdown]
# **Exercise 2: why the bottleneck wants an identity shortcut.** The paper says that with a
# projection shortcut instead of the identity in Fig. 5 (right), "the time complexity and model
# size are doubled, as the shortcut is connected to the two high-dimensional ends". Write
# `projection_factor()`: the mult-adds of `Bottleneck(4p, p, shortcut="C")` (which always
# projects, with a 1x1 conv from 4p to 4p channels) divided by those of `Bottleneck(4p, p)`, as an
# exact fraction. Is it really 2? Does it depend on p or H?

# %%
def check_exercise_2(projection_factor):
    for planes, h in ((64, 56), (256, 14), (5, 3)):
        shape = (4 * planes, h, h)
        projecting = models.Bottleneck(4 * planes, planes, shortcut="C")
        with_projection = models.summary(projecting, shape).total_mult_adds
        identity = models.summary(models.Bottleneck(4 * planes, planes), shape).total_mult_adds
        assert np.isclose(projection_factor(), with_projection / identity), \
            f"planes {planes}: the models say {with_projection / identity:.4f}"
    print(f"exercise 2: correct, a factor of {projection_factor():.3f}")


def projection_factor():
    raise NotImplementedError


# check_exercise_2(projection_factor)

# %% [markdown]
# **Exercise 3: Table 6 by formula.** Write `cifar_params(n)`: the number of parameters of the
# CIFAR ResNet with 6n + 2 layers (stem: 3x3 conv from 3 to 16 channels + BN; three stages of n
# basic blocks on 16, 32, 64 channels; option-A shortcuts; global average pool; fc to 10 classes,
# with bias). Remember that BN has two parameters per channel.

# %%
def check_exercise_3(cifar_params):
    for n in (1, 2, 3, 5, 7, 9, 18):
        want = models.summary(models.cifar_resnet(6 * n + 2), (3, 32, 32)).total_params
        assert cifar_params(n) == want, \
            f"n = {n} (depth {6 * n + 2}): you say {cifar_params(n):,}, the model has {want:,}"
    print(f"exercise 3: correct; ResNet-1202 would have {cifar_params(200):,} parameters (Table 6: 19.4M)")


def cifar_params(n):
    raise NotImplementedError


# check_exercise_3(cifar_params)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** With c = 4 * planes: a 1x1 conv c -> planes, a 3x3 conv planes -> planes and a 1x1 conv
# planes -> c, all at H x H, so 17 planes^2 per position.

# %%
def bottleneck_mult_adds_solution(planes, H):
    c = 4 * planes
    return (c * planes + 9 * planes * planes + planes * c) * H * H


check_exercise_1(bottleneck_mult_adds_solution)

# %% [markdown]
# **2.** Per position, in units of p^2: the branch costs 4 + 9 + 4 = 17, and the projection
# 4p * 4p = 16 more. The factor is 33/17 = 1.94, whatever p and H are: "doubled", near enough. The
# parameters grow by the same factor, apart from the BN parameters.

# %%
def projection_factor_solution():
    return 33 / 17


check_exercise_2(projection_factor_solution)

# %% [markdown]
# **3.** A basic block from c_in to c channels has 9 c_in c + 9 c^2 conv weights and 2 * 2c BN
# parameters. Stage 1 has n blocks 16 -> 16. Stages 2 and 3 start with one 16 -> 32 (32 -> 64)
# block, followed by n - 1 blocks of constant width.

# %%
def cifar_params_solution(n):
    def block(c_in, c):
        return 9 * c_in * c + 9 * c * c + 4 * c
    stem = 9 * 3 * 16 + 2 * 16
    stages = sum(block(c_in, c) + (n - 1) * block(c, c) for c_in, c in ((16, 16), (16, 32), (32, 64)))
    fc = 64 * 10 + 10
    return stem + stages + fc


check_exercise_3(cifar_params_solution)
