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
# # Lesson 14: The ImageNet recipe (sec. 3.4), step by step
#
# Section 3.4 of the paper ("Implementation") packs the whole ImageNet training and testing
# recipe into one paragraph:
#
# > The image is resized with its shorter side randomly sampled in [256, 480] for scale
# > augmentation. A 224x224 crop is randomly sampled from an image or its horizontal flip, with
# > the per-pixel mean subtracted. The standard color augmentation in [21] is used. We adopt batch
# > normalization (BN) right after each convolution and before activation. [...] We use SGD with a
# > mini-batch size of 256. The learning rate starts from 0.1 and is divided by 10 when the error
# > plateaus [...]. We use a weight decay of 0.0001 and a momentum of 0.9. We do not use dropout.
# >
# > In testing, for comparison studies we adopt the standard 10-crop testing. For best results, we
# > adopt the fully-convolutional form [...], and average the scores at multiple scales (images
# > are resized such that the shorter side is in {224, 256, 384, 480, 640}).
#
# This lesson takes that paragraph apart, one sentence per section, on a small folder of images it
# draws itself (no download), and then trains on it with the whole recipe.
#
# **By the end you will be able to**
#
# 1. read a folder of JPEG and PNG images, one subfolder per class, with `data.ImageFolder`, and
#    say why it decodes each image only when a batch needs it;
# 2. explain scale augmentation and the random crop, and what part of an image a crop can show;
# 3. compute the per-pixel mean and AlexNet's colour augmentation (the eigenvectors of the RGB
#    pixels) from the training set, and check them with NumPy;
# 4. test with one crop, with the standard 10 crops and at several scales, and report top-1 and
#    top-5 error;
# 5. train with the plateau schedule, and run the same recipe on your own folder with
#    `python -m minires train --data imagefolder`.
#
# Run time (full run: 1.8 min, quick: 3 s) on 2 CPU cores: a quarter-width ResNet-18 trained
# for 30 epochs on 32x32 crops of 1,280 drawn images. `MINIRES_QUICK=1` draws a few images and
# trains one epoch; its numbers are noise. Open as a notebook with
# `jupytext --to notebook lessons/14_imagenet_recipe.py`, run cell by cell in VS Code, or run
# `python lessons/14_imagenet_recipe.py`.

# %%
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image

import minires as mr
from minires import data, models, optim, train
from minires.data import transforms as T
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py
from lesson_setup import OUT  # the lesson's numbers go there too, as 14_imagenet_recipe.json

# %% [markdown]
# ## 1. A folder of images
#
# ImageNet, Imagenette and most photo collections come as one folder per class:
# `train/<class>/<image>.jpg` and `val/<class>/<image>.jpg`. We draw such a folder: eight classes
# of shapes (circle, ring, square, frame, triangle, diamond, plus, bar), each in a random colour on
# a background of roughly the opposite colour, at a random size near the centre, in images of
# different sizes. Some are saved as
# JPEG, some as PNG, and a few in grayscale, as real folders mix them. Every shape looks the same
# in a mirror, so horizontal flips keep the class.

# %%
SHAPES = ("circle", "ring", "square", "frame", "triangle", "diamond", "plus", "bar")


def draw(shape, h, w, rng):
    """An (h, w, 3) uint8 image of ``shape`` in a random colour, size and place (near the centre,
    as the object of an ImageNet photo mostly is, so that most crops still show it)."""
    r = rng.uniform(0.32, 0.45) * min(h, w)
    cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * min(h, w), w / 2 + rng.uniform(-0.1, 0.1) * min(h, w)
    y, x = np.mgrid[:h, :w]
    dy, dx = (y - cy) / r, (x - cx) / r
    mask = {"circle": dx ** 2 + dy ** 2 < 1,
            "ring": (dx ** 2 + dy ** 2 < 1) & (dx ** 2 + dy ** 2 > 0.45),
            "square": (abs(dx) < 0.8) & (abs(dy) < 0.8),
            "frame": (abs(dx) < 0.9) & (abs(dy) < 0.9) & ~((abs(dx) < 0.5) & (abs(dy) < 0.5)),
            "triangle": (dy < 0.8) & (abs(dx) < (dy + 1) / 2),
            "diamond": abs(dx) + abs(dy) < 1,
            "plus": ((abs(dx) < 0.3) & (abs(dy) < 1)) | ((abs(dy) < 0.3) & (abs(dx) < 1)),
            "bar": (abs(dx) < 1) & (abs(dy) < 0.35)}[shape]
    background = rng.integers(0, 256, 3)
    colour = np.clip(255 - background + rng.integers(-40, 41, 3), 0, 255)  # far from the background
    image = np.where(mask[:, :, None], colour, background) + rng.normal(0, 12, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_folder(root, per_class, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", max(2, per_class // 4))):
        for shape in SHAPES:
            os.makedirs(os.path.join(root, split, shape), exist_ok=True)
            for i in range(n):
                h, w = rng.integers(40, 90, size=2)
                image = Image.fromarray(draw(shape, h, w, rng))
                if i % 7 == 3:
                    image = image.convert("L")  # grayscale: ImageFolder makes it RGB again
                image.save(os.path.join(root, split, shape, f"{i:03d}.{'png' if i % 2 else 'jpg'}"))


FOLDER = tempfile.TemporaryDirectory(prefix="minires-shapes-")  # deleted when the run ends
ROOT = FOLDER.name
make_folder(ROOT, per_class=6 if QUICK else 160)
train_set, val_set = data.load_imagefolder(ROOT)  # ImageFolder(ROOT/train), ImageFolder(ROOT/val)
print(train_set, "\n", val_set)
print("classes (sorted names -> labels 0, 1, ...):", train_set.classes)
for i in (0, 1, len(train_set) - 1):
    image, label = train_set[i]
    print(f"  {os.path.relpath(train_set.files[i], ROOT)}: {image.dtype} {image.shape}, label {label}")

fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for ax, i in zip(axes.flat, [int(np.flatnonzero(train_set.labels == k)[j]) for j in (0, 1) for k in range(8)]):
    image, label = train_set[i]
    ax.imshow(image.transpose(1, 2, 0))
    ax.set_title(f"{train_set.classes[label]} {image.shape[1]}x{image.shape[2]}", fontsize=9)
    ax.set(xticks=[], yticks=[])
fig.suptitle("The folder: eight classes, images of many sizes", y=1.03)
show(fig, "14_folder.png")

# %% [markdown]
# An `ImageFolder` keeps only the list of files and their labels. `train_set[i]` opens file i with
# Pillow, decodes it and returns uint8 RGB (3, H, W); a grayscale image comes back with three equal
# channels. Nothing is decoded in advance: ImageNet's 1.28 million training images, decoded, would
# not fit in a computer's memory. When it is built,
# the folder only reads each file's first bytes, so that a file that is not an image is reported
# at once, by name, and not in the middle of an epoch.
#
# ## 2. Scale augmentation and the random crop
#
# "The image is resized with its shorter side randomly sampled in [256, 480]", and then "a 224x224
# crop is randomly sampled from an image or its horizontal flip". Each image gets its own scale S:
# its shorter side becomes S and the longer one keeps the aspect ratio. A 224x224 crop then covers
# 224/S of the shorter side, so the net sees objects at scales that differ by 480/256, almost two:
# sometimes most of the image, sometimes a close-up.
#
# Our images are small, so we scale the whole recipe by a crop size of our choosing:
# `transforms.imagenet_sizes(crop)` multiplies every size in the paper by crop / 224.

# %%
CROP = 16 if QUICK else 32
sizes = T.imagenet_sizes(CROP)
print(f"the paper at 224: {T.imagenet_sizes(224)}")
print(f"scaled to {CROP}:   {sizes}")
low, high = sizes["train_sides"]
print(f"a crop covers between {CROP / high:.0%} and {CROP / low:.0%} of the shorter side "
      f"(the paper: {224 / 480:.0%} to {224 / 256:.0%})")

# %% [markdown]
# Images of different sizes cannot be stacked into one array, so the `DataLoader` runs the
# size-changing steps on each image alone, as it reads it (its `transform`), and the rest on the
# stacked batch (its `augment`). `RandomResizeShorter` resizes with Pillow's bilinear filter, which
# averages over all the pixels it shrinks away. The crop is the same `RandomCrop` as CIFAR's,
# with a size instead of padding. Below, one image drawn six times:

# %%
resize_and_crop = T.Compose([T.RandomResizeShorter(*sizes["train_sides"]), T.RandomCrop(size=CROP)])
flip = T.RandomHorizontalFlip()
rng = np.random.default_rng(0)
image, label = train_set[int(np.flatnonzero(train_set.labels == train_set.classes.index("triangle"))[0])]
fig, axes = plt.subplots(1, 7, figsize=(12, 2.2))
axes[0].imshow(image.transpose(1, 2, 0))
axes[0].set(title=f"original {image.shape[1]}x{image.shape[2]}", xticks=[], yticks=[])
for ax in axes[1:]:
    side = int(rng.integers(low, high + 1))
    crop = flip(T.RandomCrop(size=CROP)(T.resize_shorter(image[None], side), rng), rng)[0]
    ax.imshow(crop.transpose(1, 2, 0))
    ax.set(title=f"S = {side}", xticks=[], yticks=[])
fig.suptitle(f"Scale augmentation: shorter side S in [{low}, {high}], then a random {CROP}x{CROP} crop, "
             "maybe mirrored", y=1.1)
show(fig, "14_scale_crop.png")

# %% [markdown]
# ## 3. The per-pixel mean and the colour augmentation
#
# "with the per-pixel mean subtracted": the mean image of the training set, one value per colour
# and position, is subtracted from every crop. We compute it, as testing sees the images (shorter
# side `test_side`, centre crop), from the *training* images only, so that nothing about the test
# images leaks into training.
#
# "The standard color augmentation in [21]" is AlexNet's (Krizhevsky et al. 2012, sec. 4.1).
# Take the RGB values of all training pixels, in [0, 1], and their 3x3 covariance matrix, with
# eigenvectors p_1, p_2, p_3 and eigenvalues lambda_1 >= lambda_2 >= lambda_3. To every pixel of
# an image add
#
#     [p_1 p_2 p_3] [a_1 lambda_1, a_2 lambda_2, a_3 lambda_3]^T,    a_i ~ N(0, 0.1), drawn once per image.
#
# In natural photographs the first eigenvector is close to (1, 1, 1)/sqrt(3), brightness, and the
# others change the colour; AlexNet's reason is that object identity does not change with "the
# intensity and color of the illumination". (Our drawn colours are uniformly random, so expect no
# such brightness axis here.) `transforms.ImageNetRecipe` computes both statistics from a training
# folder:

# %%
recipe = T.ImageNetRecipe(train_set, image_size=CROP)
print(recipe)
lighting = recipe.lighting
print("eigenvalues:", np.round(lighting.eigval, 5))
print("eigenvectors (columns):\n", np.round(lighting.eigvec, 3))

# The same numbers from NumPy's covariance and eigen-solver, on the same training crops.
crops = np.stack([recipe.test_transform(train_set[i][0][None])[0] for i in range(len(train_set))])
pixels = crops.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
values, vectors = np.linalg.eigh(np.cov(pixels))
assert np.allclose(values[::-1], lighting.eigval)
assert np.allclose(abs(np.sum(vectors[:, ::-1] * lighting.eigvec, axis=0)), 1)  # equal up to sign
print("np.linalg.eigh(np.cov(pixels)) agrees")

fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
axes[0, 0].imshow(recipe.mean.mean.transpose(1, 2, 0) / 255)
axes[0, 0].set(title="per-pixel mean", xticks=[], yticks=[])
big = T.PCALighting(1.0, lighting.eigval, lighting.eigvec)  # 10 times the paper's 0.1, to be visible
example = crops[:1]
for ax, (name, transform) in zip(axes.flat[1:], [("0.1", lighting)] * 5 + [("1.0", big)] * 6):
    shifted = np.clip(transform(example, rng), 0, 255).astype(np.uint8)[0]
    ax.imshow(shifted.transpose(1, 2, 0))
    ax.set(title=f"a_i ~ N(0, {name})", xticks=[], yticks=[])
fig.suptitle("The training mean, and one crop under PCA lighting (top: the paper's 0.1; bottom: 1.0)")
show(fig, "14_mean_lighting.png")

# %% [markdown]
# At the paper's 0.1 the change is subtle, as it should be: the lighting is a small jitter, not a
# new image. The shift is added in [0, 1] units (the eigenvalues are variances in those units);
# the formula is not scale-free, so the same code on 0..255 values would be far too strong.
#
# ## 4. The loader: the recipe's two stages
#
# `recipe.train_transform` resizes and crops each image as it is read; `recipe.train_augment`
# mirrors, relights and subtracts the mean on the stacked batch. With `normalize=None` the loader
# then divides by 255, so the net sees x = (image + lighting - mean) / 255.

# %%
BATCH = 8 if QUICK else 32
train_loader = data.DataLoader(train_set, BATCH, shuffle=True, seed=0, normalize=None,
                               transform=recipe.train_transform, augment=recipe.train_augment)
x, y = next(iter(train_loader))
print(f"one batch: x {x.dtype} {x.shape}, mean {x.mean():+.3f}; y {y.dtype} {y.shape}")
start = time.perf_counter()
n = sum(len(y) for _, y in train_loader)
elapsed = time.perf_counter() - start
print(f"one epoch of {n} images read, decoded and augmented in {elapsed:.2f} s "
      f"({n / elapsed:.0f} images/s, in this one thread)")

# %% [markdown]
# The loader needs no worker processes for small images: decoding and augmenting them takes far
# less time than the net's forward and backward pass on them (section 6 times both).
#
# ## 5. Testing: one crop, 10 crops, many scales; top-1 and top-5 error
#
# Testing resizes the shorter side to 256 (scaled: `test_side`) and takes the centre crop, or "the
# standard 10-crop testing" of AlexNet: the four corner crops and the centre crop, and the mirror
# images of all five. The net's softmax outputs for the ten are averaged, and the class with the
# highest average is the prediction.

# %%
test_image = recipe.test_transform.transforms[0](val_set[0][0][None])  # shorter side test_side
ten = T.TenCrop(CROP)(test_image)[0]
fig, axes = plt.subplots(2, 6, figsize=(12, 4.2))
axes[0, 0].imshow(test_image[0].transpose(1, 2, 0))
axes[0, 0].set(title=f"resized {test_image.shape[2]}x{test_image.shape[3]}", xticks=[], yticks=[])
axes[1, 0].axis("off")
names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
for k in range(10):
    ax = axes[k // 5, 1 + k % 5]
    ax.imshow(ten[k].transpose(1, 2, 0))
    ax.set_title(names[k % 5] + (" (mirror)" if k >= 5 else ""), fontsize=9)
    ax.set(xticks=[], yticks=[])
fig.suptitle(f"10-crop testing: {CROP}x{CROP} corners and centre, and their mirror images", y=1.02)
show(fig, "14_ten_crop.png")

# %% [markdown]
# ImageNet has 1000 classes, and the paper reports *top-1* error (the highest score is wrong) and
# *top-5* error (the true class is not among the five highest scores). A class is among the top k
# when fewer than k classes score strictly higher. On four made-up images with seven classes:

# %%
scores = np.array([[9, 1, 2, 3, 4, 5, 6],   # true class 0 scores highest
                   [9, 8, 7, 6, 5, 4, 3],   # true class 4 is 5th
                   [9, 8, 7, 6, 5, 4, 3],   # true class 5 is 6th
                   [1, 2, 3, 9, 4, 5, 6]])  # true class 3 scores highest
labels = np.array([0, 4, 5, 3])
print(train.topk_errors(scores, labels, ks=(1, 5)))  # top-1: 2 of 4 wrong; top-5: 1 of 4

# %% [markdown]
# "For best results, we adopt the fully-convolutional form": the whole test image, not a crop, goes
# through the net, at several scales. A ResNet ends in a global average pool and one fc layer,
# both linear, so on a larger image its scores are the average of the fc applied at every position
# of the last feature map, exactly the fully-convolutional form, with no change to the net.
# `train.evaluate_multiscale` resizes each image to each shorter side in
# {224, 256, 384, 480, 640} (scaled), runs it and its mirror, and averages all the softmax outputs.
#
# ## 6. Training with the plateau schedule
#
# "The learning rate starts from 0.1 and is divided by 10 when the error plateaus":
# `optim.ReduceLROnPlateau` watches the test error after every epoch, and when it has not improved
# (by more than a relative `threshold`) for more than `patience` epochs, divides the rate by 10.
# The paper gives no patience; we use 5 epochs, the default of `python -m minires train`. We
# train a ResNet-18 (Table 1's layout: 7x7 stem, max-pool, [2, 2, 2, 2] basic blocks) at a
# quarter of its width for 30 epochs, with the paper's batch norm, weight decay 1e-4 and
# momentum 0.9, and record top-1 and top-5 error of the centre crop after every epoch. The
# paper's lr of 0.1 goes with batches of 256; our batches are 8 times smaller, so we start at
# 0.1 * 32 / 256 (scaling the lr with the batch is a rule of Goyal et al. 2017, not of the paper;
# Exercise 4 tries the paper's 0.1).

# %%
EPOCHS = 1 if QUICK else 30
PATIENCE = 5
mr.manual_seed(0)
widths = (4, 8, 16, 32) if QUICK else (16, 32, 64, 128)
model = models.ResNet(models.BasicBlock, [2, 2, 2, 2], num_classes=train_set.num_classes, widths=widths)
optimizer = optim.SGD(model.parameters(), lr=0.1 * BATCH / 256, momentum=0.9, weight_decay=1e-4)
scheduler = optim.ReduceLROnPlateau(optimizer, patience=PATIENCE)
test_loader = data.DataLoader(val_set, 64, transform=recipe.test_transform, augment=recipe.test_augment,
                              normalize=None)
start = time.perf_counter()
history = train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=EPOCHS,
                    top5=True, progress=False)
seconds = time.perf_counter() - start
print(f"{EPOCHS} epochs in {seconds:.0f} s ({EPOCHS * len(train_set) / seconds:.0f} training images/s with "
      "the test after each epoch)")
K = train_set.num_classes
print(f"chance, guessing among {K} classes: top-1 error {1 - 1 / K:.1%}, top-5 error {1 - 5 / K:.1%}")
print(f"{'epoch':>5} {'lr':>7} {'train err':>9} {'top-1':>7} {'top-5':>7}")
for row in history:
    print(f"{row['epoch']:>5} {row['lr']:>7.5f} {row['train_error']:>9.1%} {row['test_error']:>7.1%} "
          f"{row['test_top5_error']:>7.1%}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
epochs = [r["epoch"] for r in history]
axes[0].plot(epochs, [100 * r["train_error"] for r in history], "--", label="train (augmented)")
axes[0].plot(epochs, [100 * r["test_error"] for r in history], "-", linewidth=2, label="test top-1")
axes[0].plot(epochs, [100 * r["test_top5_error"] for r in history], ":", linewidth=2, label="test top-5")
axes[0].set(xlabel="epoch", ylabel="error (%)", title="Errors, centre-crop testing")
axes[0].legend()
axes[1].semilogy(epochs, [r["lr"] for r in history], "o-")
axes[1].set(xlabel="epoch", ylabel="learning rate", title=f"ReduceLROnPlateau (patience {PATIENCE})")
show(fig, "14_training.png")

# %% [markdown]
# The same net, tested three ways:

# %%
ten_loader = data.DataLoader(val_set, 16, transform=recipe.ten_crop, augment=recipe.test_augment, normalize=None)
results = {"centre crop": train.evaluate(model, test_loader),
           "10 crops": train.evaluate(model, ten_loader),
           "multi-scale": train.evaluate_multiscale(model, val_set, sizes["multiscale_sides"],
                                                    recipe.mean)}
print(f"{'testing':>12} {'top-1':>7} {'top-5':>7} {'loss':>7} {'images':>7}")
for name, r in results.items():
    print(f"{name:>12} {r.error:>7.1%} {r.top5_error:>7.1%} {r.loss:>7.3f} {r.images:>7}")
numbers = {"classes": K, "chance_top1": 1 - 1 / K, "chance_top5": 1 - 5 / K, "epochs": EPOCHS,
           "train_images": len(train_set), "test_images": len(val_set), "crop": CROP,
           "lr": [row["lr"] for row in history], "last_train_error": history[-1]["train_error"],
           "testing": {name: {"top1": r.error, "top5": r.top5_error} for name, r in results.items()}}
with open(os.path.join(OUT, "14_imagenet_recipe.json"), "w") as f:
    json.dump(numbers, f, indent=1)

# %% [markdown]
# On ImageNet the paper's Tables 3 and 4 show each step helping: 10 crops beat one, and the
# multi-scale fully-convolutional test beats 10 crops.
#
# **What the full run gives.** After 30 epochs the net reaches a top-1 error of 11.9% with the
# centre crop, 14.1% with 10 crops and 73.4% multi-scale, where chance is 87.5% (one class in
# eight). The recipe trains the net well above chance; the two refinements of testing do not
# help it here. 10 crops are no better than one: the test set is small (320 images, so one image
# is 0.3 points) and the test error still moved by several points from epoch to epoch at the end
# of the run (the table of section 6), so a few points between these two rows mean little. The
# multi-scale test is far worse, for a reason that is not noise, below. The training error ends
# at 28.8%, far above the test error, because each training crop shows part of a shape at a random
# scale under random lighting, where the test's centre crop shows all of it. And the plateau
# schedule never fired: within every 5 epochs the test error found a new best, so the lr stayed
# at its first value for all 30 epochs (the flat right panel of section 6). The paper's runs of
# 600,000 steps, against our 1,200, reach the plateaus the schedule waits for.
#
# The net was trained on crops of CROP x CROP pixels; how large is its last feature map for such a
# crop, and for whole test images at the multi-scale sizes?

# %%
def last_map(net, h, w):
    """The (h', w') of the net's last feature map (layer4) for an h x w input."""
    with mr.no_grad():
        f = net.maxpool(net.relu(net.bn1(net.conv1(mr.Tensor(np.zeros((1, 3, h, w), np.float32))))))
        for stage in net.stages():
            f = stage(f)
    return f.shape[2:]


model.eval()
paper = next(row for row in models.summary(models.resnet18(), (3, 224, 224)) if row.layer == "layer4")
print(f"the paper's ResNet-18 on a 224x224 crop: last map {paper.output_shape[-2:]}")
print(f"training crop {CROP}x{CROP}: last map {last_map(model, CROP, CROP)}")
for side in sizes["multiscale_sides"]:
    print(f"whole image, shorter side {side} (aspect 4:3): last map {last_map(model, side, round(side * 4 / 3))}")

# %% [markdown]
# With our small crops the last map is a single position, which sees the zero padding on every
# side; the paper's nets end on a 7x7 map already in training (printed above). Testing on whole,
# larger images hands our net maps of several positions, a kind of input it never met in
# training, which is why the multi-scale row is the worst of the three: the paper's gain from
# multi-scale testing needs nets whose training maps are already larger than one position. Try
# it with larger crops (`CROP = 64` and about four times the time) to see the difference.
#
# ## 7. The same recipe from the command line
#
# Everything above is one command. For a folder laid out as `DIR/train/<class>/<image>` and
# `DIR/val/<class>/<image>` (Imagenette has exactly this layout):
#
# ```bash
# python -m minires train --data imagefolder --data-dir DIR --model resnet18             # the paper's 224
# python -m minires train --data imagefolder --data-dir DIR --model resnet18 --image-size 64 \
#     --epochs 30 --ten-crop --multiscale --device gpu
# ```
#
# `--image-size 64` scales every size by 64/224 (the cell below prints them); the lr is divided
# by 10 when the test error plateaus (`--patience`, default 5; `--schedule multistep` for fixed
# milestones); the history records top-1 and top-5 error per epoch, and `curves.png` draws them.

# %%
print("--image-size 64:", T.imagenet_sizes(64))

# %% [markdown]
#
# ## Summary
#
# * `data.ImageFolder` lists `root/<class>/<image>`, sorts the class names into labels and decodes
#   each JPEG or PNG only when a batch needs it.
# * Scale augmentation draws the shorter side in [256, 480] per image; a 224x224 crop then shows
#   between 47% and 88% of it. The loader runs these per image, and the flip, colour and mean
#   steps on the batch.
# * The per-pixel mean and AlexNet's PCA lighting both come from the training images; the lighting
#   adds sum_i a_i lambda_i p_i with a_i ~ N(0, 0.1).
# * Testing: centre crop, the standard 10 crops with their softmax averaged, or the whole image at
#   several scales (the global average pool makes the net fully convolutional); top-1 and top-5.
# * The lr is divided by 10 when the error plateaus: `optim.ReduceLROnPlateau`.
# * On 1,280 drawn images the whole recipe trains a quarter-width ResNet-18 well above chance in
#   30 epochs; 10-crop and multi-scale testing need larger images than these to help.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the resized shape.** Write `resized_shape(h, w, size)`: the (height, width) of an
# h x w image after its shorter side is resized to `size`, keeping the aspect ratio (round the
# longer side to the nearest integer).

# %%
def check_exercise_1(resized_shape):
    for h, w, size in ((30, 45, 20), (45, 30, 20), (7, 10, 14), (375, 500, 256), (500, 333, 480), (64, 64, 73)):
        want = T.resize_shorter(np.zeros((1, 1, h, w), np.uint8), size).shape[2:]
        got = tuple(resized_shape(h, w, size))
        assert got == want, f"{h}x{w} to shorter side {size}: you say {got}, resize_shorter gives {want}"
    print("exercise 1: correct")


def resized_shape(h, w, size):
    raise NotImplementedError


# check_exercise_1(resized_shape)

# %% [markdown]
# **Exercise 2: the 10 crops.** Write `ten_crops(image, s)`: for one image (C, H, W), an array
# (10, C, s, s) of the four corner crops (top-left, top-right, bottom-left, bottom-right), the
# centre crop (offset ((H - s) // 2, (W - s) // 2)) and the mirror images of those five, in that
# order.

# %%
def check_exercise_2(ten_crops):
    rng = np.random.default_rng(0)
    for H, W, s in ((6, 9, 4), (10, 10, 3), (7, 12, 7)):
        image = rng.integers(0, 256, (2, H, W))
        want = T.TenCrop(s)(image[None])[0]
        got = np.asarray(ten_crops(image, s))
        assert got.shape == want.shape, f"{H}x{W}, crop {s}: shape {got.shape}, expected {want.shape}"
        for k in range(10):
            assert np.array_equal(got[k], want[k]), f"{H}x{W}, crop {s}: crop {k} differs"
    print("exercise 2: correct")


def ten_crops(image, s):
    raise NotImplementedError


# check_exercise_2(ten_crops)

# %% [markdown]
# **Exercise 3: the plateau schedule.** Write `plateau_lrs(errors, lr, patience, threshold)`: the
# learning rate after each epoch, when the error of each epoch is `errors[i]`. An epoch improves
# when its error is below best * (1 - threshold); after more than `patience` epochs in a row
# without improvement the lr is divided by 10 and the count starts again.

# %%
def check_exercise_3(plateau_lrs):
    rng = np.random.default_rng(1)
    for patience, threshold in ((0, 0.0), (2, 0.01), (3, 0.1)):
        errors = list(np.round(0.5 + 0.05 * rng.standard_normal(25) - 0.01 * np.arange(25), 3))
        opt = optim.SGD([mr.nn.Parameter(np.zeros(1))], lr=0.1)
        sched = optim.ReduceLROnPlateau(opt, patience=patience, threshold=threshold)
        want = []
        for e in errors:
            sched.step(e)
            want.append(opt.lr)
        got = list(plateau_lrs(errors, 0.1, patience, threshold))
        assert np.allclose(got, want), f"patience {patience}, threshold {threshold}: you say {got}, expected {want}"
    print("exercise 3: correct")


def plateau_lrs(errors, lr, patience, threshold):
    raise NotImplementedError


# check_exercise_3(plateau_lrs)

# %% [markdown]
# **Exercise 4: the paper's learning rate.** The paper's lr of 0.1 goes with batches of 256, and
# section 6 scaled it to our batches. Write `steps_and_lr(n_images, batch_size, epochs)`: the number
# of SGD steps of a run (the loader keeps the last, smaller batch of an epoch) and the lr scaled
# to `batch_size` as in section 6. The checker tries it on our run and on ImageNet's, then trains
# the same net for a few epochs with the paper's unscaled 0.1 at our batch size, and prints its
# training error next to section 6's: is 8 times the scaled rate faster, or worse? And if we kept
# 0.1 and took batches of 256 instead, how many steps would our 30 epochs have?

# %%
def check_exercise_4(steps_and_lr):
    for n, batch, epochs in ((len(train_set), BATCH, EPOCHS), (len(train_set), 256, EPOCHS),
                             (1_281_167, 256, 120), (10, 3, 2)):
        want = (-(-n // batch) * epochs, 0.1 * batch / 256)
        got = tuple(steps_and_lr(n, batch, epochs))
        assert got[0] == want[0] and np.isclose(got[1], want[1]), (
            f"{n} images, batch {batch}, {epochs} epochs: you say {got}, expected {want}")
    epochs = 1 if QUICK else 3
    mr.manual_seed(0)
    net = models.ResNet(models.BasicBlock, [2, 2, 2, 2], num_classes=K, widths=widths)
    sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    fast_rows = train.fit(net, train_loader, None, optimizer=sgd, epochs=epochs, progress=False)
    scaled = steps_and_lr(1, BATCH, 1)[1]
    print(f"training error, batch {BATCH}:  lr {scaled:.4f} (section 6)  lr 0.1")
    for ours, paper in zip(history, fast_rows):
        print(f"  epoch {ours['epoch']}:  {ours['train_error']:22.1%} {paper['train_error']:8.1%}")
    steps_now = steps_and_lr(len(train_set), BATCH, EPOCHS)[0]
    steps_256 = steps_and_lr(len(train_set), 256, EPOCHS)[0]
    print(f"{EPOCHS} epochs of {len(train_set)} images: {steps_now} steps at batch {BATCH}, "
          f"{steps_256} at batch 256")
    print("exercise 4: correct")


def steps_and_lr(n_images, batch_size, epochs):
    raise NotImplementedError


# check_exercise_4(steps_and_lr)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** The shorter side becomes `size`; the longer one is scaled by the same factor.

# %%
def resized_shape_solution(h, w, size):
    if h <= w:
        return size, round(w * size / h)
    return round(h * size / w), size


check_exercise_1(resized_shape_solution)

# %% [markdown]
# **2.** Five offsets, five slices, and the same five reversed along the width.

# %%
def ten_crops_solution(image, s):
    C, H, W = image.shape
    offsets = [(0, 0), (0, W - s), (H - s, 0), (H - s, W - s), ((H - s) // 2, (W - s) // 2)]
    crops = [image[:, t:t + s, l:l + s] for t, l in offsets]
    return np.stack(crops + [c[:, :, ::-1] for c in crops])


check_exercise_2(ten_crops_solution)

# %% [markdown]
# **3.** Keep the best error and a count of bad epochs.

# %%
def plateau_lrs_solution(errors, lr, patience, threshold):
    best, bad, lrs = float("inf"), 0, []
    for e in errors:
        if e < best * (1 - threshold):
            best, bad = e, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr / 10, 0
        lrs.append(lr)
    return lrs


check_exercise_3(plateau_lrs_solution)


# %% [markdown]
# **4.** An epoch is ceil(n_images / batch_size) steps, and the scaled lr is 0.1 * batch_size /
# 256. In the full run the first three epochs do not tell the two rates apart: with either, the
# training error is still within a few points of chance (the checker prints both columns), so a
# short run cannot show which is better here. The step count says more. At batch 256 our 30
# epochs of 1,280 images are 150 steps, against 1,200 at batch 32: the scaling rule keeps the
# change per image the same, but a run counted in epochs then takes 8 times fewer steps, far too
# few for this net. The paper's 0.1 at batch 256 went with about 600,000 steps.

# %%
def steps_and_lr_solution(n_images, batch_size, epochs):
    return -(-n_images // batch_size) * epochs, 0.1 * batch_size / 256


check_exercise_4(steps_and_lr_solution)
