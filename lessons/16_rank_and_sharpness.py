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
# # Lesson 16: Rank collapse and sharpness
#
# Two more answers to "why do residual networks train?", both measured with minires's own nets.
# The first looks at a net before any training: Daneshmand et al. (2020, "Batch normalization
# provably avoids rank collapse for randomly initialised deep networks") show that a deep net
# without normalisation maps a whole batch of different images to nearly the same vector, so that
# it can no longer tell them apart; Dong, Cordonnier and Loukas (2021) show that skip connections
# stop this collapse. The second looks at training itself: the largest eigenvalue of the loss's
# Hessian, lambda_max, its *sharpness*, decides which learning rates gradient descent can use, and
# Cohen et al. (2021, "Gradient descent on neural networks typically occurs at the edge of
# stability") found that full-batch gradient descent drives lambda_max up to exactly the limit
# 2/lr and then keeps it there.
#
# **By the end you will be able to**
#
# 1. measure how many directions a batch's representations span, with the effective rank and the
#    stable rank, and check both on matrices whose singular values you chose;
# 2. watch the representations of plain nets without batch norm collapse with depth, and see what
#    batch norm and shortcuts do (`minires.experiments.rank`), including where shortcuts alone
#    do not help;
# 3. compute a Hessian-vector product from two gradients, check it against an exact Hessian and
#    see its error fall as eps^2;
# 4. find lambda_max by power iteration, derive the limit 2/lr from a quadratic, and watch
#    full-batch gradient descent rise to it and hover there (`minires.experiments.sharpness`).
#
# Run time (full run: 36 s, quick: 3 s) on 2 CPU cores, most of it in the gradient descent of
# section 6; `MINIRES_QUICK=1` shrinks everything (its numbers are then only a smoke test). Open as a notebook with
# `jupytext --to notebook lessons/16_rank_and_sharpness.py`, run cell by cell in VS Code, or run
# `python lessons/16_rank_and_sharpness.py`.

# %%
import json
import os

import numpy as np

import minires as mr
from minires import nn
from minires.experiments import nets, rank, sharpness
from lesson_setup import OUT, QUICK, plt, show  # quick mode and figures, see lesson_setup.py

train_set, test_set = nets.datasets()  # the bundled digits: 1,438 training images, 8x8
print(f"{len(train_set)} training digits of shape {train_set.images.shape[1:]}")

# %% [markdown]
# ## 1. How many directions does a matrix span?
#
# Stack a batch's representations one image per row, H: (N, features). Its singular values
# s_1 >= s_2 >= ... say how much of H lies along each of its principal directions. The rank counts
# the non-zero ones, which is useless here: after a ReLU almost no singular value is exactly 0. Two
# smooth counts:
#
#     effective rank   erank(H) = exp(-sum_i p_i log p_i),   p_i = s_i / sum_j s_j
#     stable rank      srank(H) = sum_i s_i^2 / s_1^2 = ||H||_F^2 / ||H||_2^2
#
# The effective rank (Roy and Vetterli 2007) is exp of the entropy of the normalised spectrum: k
# equal singular values give exactly k, and a spectrum that falls off steeply gives little more
# than 1. The stable rank asks how much of the matrix's energy lies outside its top direction.
# Both are 1 for a rank-1 matrix, both ignore the matrix's scale. Build matrices with chosen
# singular values, U diag(s) V^T with orthonormal U and V, and check:

# %%
rng = np.random.default_rng(0)
u, _ = np.linalg.qr(rng.standard_normal((50, 4)))
v, _ = np.linalg.qr(rng.standard_normal((30, 4)))
for s in ([1.0, 1.0, 1.0, 1.0], [2.0, 1.0, 0, 0], [1.0, 0.1, 0.01, 0.001], [1.0, 0, 0, 0]):
    h = u @ np.diag(s) @ v.T
    p = np.array([x for x in s if x > 0]) / sum(s)
    erank_closed = np.exp(-(p * np.log(p)).sum())
    srank_closed = sum(x * x for x in s) / max(s) ** 2
    print(f"s = {s}:  erank {rank.effective_rank(h):.4f} (closed form {erank_closed:.4f}), "
          f"srank {rank.stable_rank(h):.4f} (closed form {srank_closed:.4f})")

# %% [markdown]
# ## 2. Rank collapse at initialisation
#
# `rank.measure` feeds one batch of training digits through freshly initialised CIFAR-layout nets
# (He initialisation, batch norm in train mode: at initialisation the running statistics are 0
# and 1, so eval mode would be no normalisation at all) and takes both ranks of every block's
# output. Five variants: the plain net and the ResNet with batch norm, both without it
# (`surgery.strip_batch_norm`), and a ResNet without batch norm whose residual branches are scaled
# by 1/sqrt(blocks) (`rank.scale_branches`: each block computes ReLU(x + F(x)/sqrt(B))). The full
# experiment, depths 20, 56 and 110 over three seeds, is `python -m minires rank` (its figure and
# numbers are on the results page `results/rank.md`); here its first seed. The claims printed
# under the table are those the command checks, here in one seed only.

# %%
DEPTHS = (8, 14) if QUICK else rank.DEPTHS  # 20, 56 and 110 layers
BATCH = 16 if QUICK else rank.BATCH          # 128 training digits
runs = rank.measure(train_set, depths=DEPTHS, seeds=(0,), batch_size=BATCH)

fig, axes = plt.subplots(1, len(DEPTHS), figsize=(4.5 * len(DEPTHS), 3.8), sharey=True)
for ax, depth in zip(axes, DEPTHS):
    for i, variant in enumerate(rank.VARIANTS):
        r = next(r for r in runs if r["depth"] == depth and r["variant"] == variant)
        ax.semilogy(r["effective_rank"], ".-", color=f"C{i}", lw=1, ms=3,
                    label=rank.LABELS[variant])
    ax.set_title(f"depth {depth}, a batch of {BATCH} digits")
    ax.set_xlabel("block (0 = the input images)")
    ax.grid(alpha=0.3, which="both")
axes[0].set_ylabel("effective rank")
axes[0].legend(fontsize=7)
show(fig, "16_rank.png")
summary = rank.summarise(runs)
print(rank.table(summary, rank.check_claims(summary)))

# %% [markdown]
# Read the last block of each net:
#
# * **Without batch norm the plain net collapses**, and the more so the deeper it is: its last
#   block's effective rank falls towards 1, every image mapped near one direction. With batch
#   norm it keeps most of its rank (Daneshmand et al.'s claim). The stable rank sits near 1 or 2
#   for every net: after a ReLU every feature has a positive mean, the mean image is one strong
#   direction shared by all rows, and the stable rank sees little beside it.
# * **Shortcuts alone do not stop the collapse here.** The ResNet without batch norm, at He
#   initialisation, collapses about as fast as the plain net (in the full run, at 110 layers,
#   faster). Each of its
#   branches F(x) is as large as the stream x it is added to, so every block mixes as strongly as
#   a plain one. Scale the branches down (the purple line) and the identity carries the rank
#   through, block after block: the shortcut keeps the directions of x only while F does not
#   drown them. Batch norm does the same for the ordinary ResNet without being asked: the stream's
#   variance grows block by block while each branch's stays about 1 (lesson 15), so the branches
#   shrink relative to the stream.
#
# ## 3. A Hessian-vector product from two gradients
#
# The Hessian of a net's loss has as many rows as the net has weights, far too many to build. But
# power iteration (next section) needs only products H v, and those come from gradients:
#
#     H v  ~  (g(w + eps v) - g(w - eps v)) / (2 eps)
#
# By Taylor, g(w +- eps v) = g(w) +- eps H v + eps^2/2 T[v, v] +- eps^3/6 Q[v, v, v] + ..., so
# the even terms cancel and the error is about eps^2/6 Q[v, v, v]; a forward difference
# (g(w + eps v) - g(w)) / eps keeps the eps^2 term and errs by O(eps). Rounding adds about
# delta/eps (delta: the rounding error of a gradient), so the measurement runs in float64.
#
# Check it where the exact Hessian is known: softmax regression, logits z = W x + b and the mean
# cross-entropy, whose Hessian is H = mean_n J_n^T (diag p_n - p_n p_n^T) J_n, with p_n the softmax
# and J_n = dz_n/d(W, b). `sharpness.TrainingLoss` turns a model and its batches into the function
# of one flat weight vector that the formula needs.

# %%
d, k, n = 20, 5, 60
rng = np.random.default_rng(1)
x, labels = rng.standard_normal((n, d)), rng.integers(0, k, n)
mr.manual_seed(0)
linear = nn.Linear(d, k, dtype=np.float64)
loss = sharpness.TrainingLoss(linear, [(x, labels)], training=None)
w = loss.weights()

z = x @ linear.weight.data.T + linear.bias.data
p = np.exp(z - z.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
H = np.zeros((w.size, w.size))
for i in range(n):
    J = np.zeros((k, w.size))  # weight (k, d) row by row, then the bias (k,)
    for c in range(k):
        J[c, c * d:(c + 1) * d], J[c, k * d + c] = x[i], 1
    H += J.T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ J / n

v = rng.standard_normal(w.size)
v /= np.linalg.norm(v)
epsilons = np.logspace(-9, 0, 19)
central = [np.linalg.norm(sharpness.hvp(loss, w, v, e) - H @ v) for e in epsilons]
forward = [np.linalg.norm((loss.gradient(w + e * v)[0] - loss.gradient(w)[0]) / e - H @ v)
           for e in epsilons]
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(epsilons, central, "o-", ms=3, label="central difference: slope 2, then rounding")
ax.loglog(epsilons, forward, "s-", ms=3, label="forward difference: slope 1")
ax.set_xlabel("eps")
ax.set_ylabel("||H v (difference) - H v (exact)||")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
show(fig, "16_hvp_error.png")
print(f"eps = {sharpness.EPS:g} (what the experiment uses on a smooth loss): relative error "
      f"{np.linalg.norm(sharpness.hvp(loss, w, v) - H @ v) / np.linalg.norm(H @ v):.1e}")

# %% [markdown]
# ## 4. Power iteration
#
# Multiply a vector by H again and again, normalising each time: v <- H v / ||H v||. Written in
# H's eigenvectors, each step multiplies the component along eigenvalue lambda_i by lambda_i, so
# the component of largest |lambda| wins, at the rate (|lambda_2| / |lambda_1|)^k. The estimate is
# the Rayleigh quotient v . H v of the unit v, which for *any* v is at most lambda_max: an estimate
# that has not converged errs low. (If the largest |lambda| belongs to a negative eigenvalue mu,
# `sharpness.top_eigenvalue` runs again on H - mu I, whose eigenvalues are all >= 0.) Each product
# costs two gradients.

# %%
exact = np.linalg.eigvalsh(H)
r = sharpness.power_iteration(lambda u: sharpness.hvp(loss, w, u), rng.standard_normal(w.size),
                              max_iters=300, tol=1e-10)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(r["history"]) + 1), r["history"], "o-", ms=3, label="Rayleigh quotient")
ax.axhline(exact[-1], color="k", ls="--", lw=1, label="exact lambda_max (eigvalsh)")
ax.set_xlabel("Hessian-vector products")
ax.legend(fontsize=8)
show(fig, "16_power_iteration.png")
print(f"lambda_max {r['value']:.6f} after {r['iterations']} products (exact {exact[-1]:.6f}; "
      f"lambda_2 / lambda_1 = {exact[-2] / exact[-1]:.3f})")

# %% [markdown]
# ## 5. Why 2/lr
#
# On a quadratic L(w) = lambda w^2 / 2, one step of gradient descent is w <- w - lr lambda w =
# (1 - lr lambda) w: the distance to the minimum shrinks if |1 - lr lambda| < 1, that is
# lambda < 2/lr, and grows geometrically if lambda > 2/lr. On a quadratic in many dimensions the
# same holds along every eigenvector of H, so gradient descent is stable only while
# lambda_max < 2/lr.

# %%
lr = 0.1
fig, ax = plt.subplots(figsize=(6, 3.5))
for lam in (15.0, 19.0, 21.0):
    ws = [1.0]
    for _ in range(30):
        ws.append((1 - lr * lam) * ws[-1])
    ax.semilogy(np.abs(ws), "o-", ms=3, label=f"lambda = {lam:g} (2/lr = {2 / lr:g})")
ax.set_xlabel("step")
ax.set_ylabel("|w - w*|")
ax.legend(fontsize=8)
show(fig, "16_quadratic.png")

# %% [markdown]
# ## 6. The edge of stability
#
# A neural net's loss is not a quadratic, and its Hessian changes as it trains. Cohen et al. found
# two things. First, *progressive sharpening*: as full-batch gradient descent lowers the loss,
# lambda_max grows. Second, once lambda_max reaches 2/lr, gradient descent does not diverge:
# lambda_max may overshoot a little, the loss jumps up, lambda_max falls back, and from then on it
# hovers at about 2/lr while the loss keeps falling over hundreds of steps, but no longer at every
# step. `sharpness.gradient_descent` trains their "fc-tanh" net (two
# hidden tanh layers; tanh keeps the loss smooth, so the Hessian exists everywhere) on all 1,438
# training digits with the square loss, plain full-batch steps, and measures lambda_max every few
# steps, each power iteration warm-started from the last one's vector. `python -m minires
# sharpness` runs several learning rates and seeds (`results/sharpness.md`).

# %%
LR = 0.1
STEPS, EVERY, WIDTH = (30, 10, 16) if QUICK else (600, 20, 100)
record = sharpness.gradient_descent(train_set, LR, steps=STEPS, every=EVERY, width=WIDTH)
summary_edge = sharpness.edge_summary(record)
fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
top.plot(record["steps"], record["lambda_max"], ".-", label="lambda_max")
top.axhline(2 / LR, color="k", ls="--", lw=1, label="2 / lr")
top.set_ylabel("lambda_max")
top.legend(fontsize=8)
bottom.semilogy(record["loss"])
bottom.set_ylabel("training loss")
bottom.set_xlabel("step of full-batch gradient descent")
show(fig, "16_edge_of_stability.png")
print({k: v for k, v in summary_edge.items()
       if k in ("lambda_0", "lambda_peak", "reached_step", "median_ratio", "loss_rises")})

# %% [markdown]
# `lambda_0` is the sharpness at initialisation, `reached_step` the first step at which
# lambda_max was within 10% of 2/lr, `median_ratio` the median of lambda_max / (2/lr) from there
# on and `loss_rises` the share of those steps at which the loss went *up*: before the edge,
# gradient descent lowers the loss at every step; at the edge it no longer does, and yet the loss
# keeps falling overall.
#
# ## 7. Trained nets
#
# The same measurement applies to any net and any loss. For the trained plain nets and ResNets of
# the degradation experiment, `sharpness.trained_sharpness` takes the mean cross-entropy on a fixed
# set of training digits in the recipe's batches of 32, with batch norm in *train* mode: that is
# the function stochastic gradient descent descended, each batch normalised by its own statistics
# (in eval mode the running statistics make it a different function of the weights).
#
# One caution. These nets use ReLU, so their loss has kinks, and the difference of two gradients
# is the Hessian *averaged* over w +- eps v, a kink inside that segment adding its jump divided
# by 2 eps. Power iteration seeks out whatever makes ||H v|| large, and at a tiny eps that is a
# kink: on a trained plain-56 it reported lambda_max = 1216 at eps = 1e-6 along a direction where
# the loss bends by about 2.4. So the trained nets are measured at eps = 1e-2
# (`sharpness.EPS_TRAINED`, about the scale of one SGD step), and each estimate is checked with
# loss values alone: the second difference (L(w + eps v) - 2 L(w) + L(w - eps v)) / eps^2 along
# the vector found. Here two small nets trained briefly; `python -m minires sharpness` does it for
# the degradation run's nets (`results/sharpness.md`).

# %%
recipe = nets.RECIPES["digits"].replace(epochs=1 if QUICK else 5)
batches = sharpness.training_batches(train_set, 64 if QUICK else 256, recipe.batch_size)
threshold = (2 + 2 * recipe.momentum) / recipe.lr
trained = {}
for name in ("plain8", "resnet8"):
    model, info = nets.get_net(name, train_set, test_set, recipe, limit=128 if QUICK else None,
                               progress=False)
    m = sharpness.trained_sharpness(model, batches, max_iters=5 if QUICK else 20)
    trained[name] = {"test_error": info["test_error"], "lambda_max": m["lambda_max"],
                     "second_difference": m["second_difference"], "converged": m["converged"]}
    print(f"{nets.pretty(name):>9}: test error {info['test_error']:.1%}, lambda_max "
          f"{m['lambda_max']:.1f} ({m['iterations']} products"
          f"{'' if m['converged'] else ', not converged: a lower bound'}), second difference of "
          f"the loss along its vector {m['second_difference']:.1f}")
print(f"momentum SGD at the recipe's lr {recipe.lr} is stable on a quadratic below "
      f"(2 + 2 beta) / lr = {threshold:.0f}")
with open(os.path.join(OUT, "16_rank_and_sharpness.json"), "w") as f:  # the numbers quoted below
    json.dump({"edge": {k: summary_edge[k] for k in ("lambda_0", "lambda_peak", "reached_step",
                                                     "median_ratio", "loss_rises")},
               "lr": LR, "trained": trained,
               "rank_last": {variant: {depth: float(cell["last"][0]) for depth, cell in by.items()}
                             for variant, by in summary.items()}}, f, indent=1)

# %% [markdown]
# ## What holds in the miniature, and what does not
#
# In this lesson's full run (one seed; a batch of 128 digits, so an effective rank of at most 128):
#
# * **Batch norm prevents rank collapse, and depth without it collapses** (Daneshmand et al.):
#   the last block of plain-110 keeps an effective rank of 58.3 with batch norm and 4.5 without.
#   The reference run of `python -m minires rank` (`results/rank.md`, three seeds) finds both in
#   every seed.
# * **Shortcuts alone do not stop it** at He initialisation: ResNet-110 without batch norm ends
#   at 1.5, below the plain net's 4.5; with its branches scaled by 1/sqrt(blocks) it keeps 31.8.
#   Dong et al.'s argument needs branches that are small next to the stream, which scaling, or
#   batch norm (69.3 for the ordinary ResNet-110), provides. The reference run agrees in every
#   seed.
# * **The edge of stability holds**: at lr 0.1 gradient descent started from lambda_max = 11.0,
#   came within 10% of 2/lr = 20 at step 240, overshot to 24.1 and then hovered at a median of
#   1.05 x 2/lr, the loss rising at 13% of the steps from there on while it kept falling overall.
#   `results/sharpness.md` has three learning rates and three seeds, each claim checked in every
#   seed.
# * **Trained nets: not shown.** Here the ResNet-8's estimate is below the plain-8's (lambda_max
#   11.3 against 15.6), both far below (2 + 2 beta) / lr = 152, the limit of momentum SGD on a
#   quadratic: SGD with small batches did not sharpen these nets to any edge. But neither power
#   iteration converged within its 20 products, so both numbers are only lower bounds, and a
#   lower bound for the ResNet cannot show that it is flatter. The difference of two gradients of
#   a ReLU net is not quite linear in v (the kinks), so power iteration need not settle on an
#   exact eigenvector. The degradation run's nets, three seeds (`results/sharpness.md`), end the
#   same way: five of the six ResNets below their plain twins, and not one estimate converged.
#
# ## Summary
#
# * The effective rank exp(H(s / sum s)) and the stable rank ||H||_F^2 / ||H||_2^2 count the
#   directions a batch's representations span; both are 1 when every image maps to one direction.
# * Without batch norm, deep plain nets collapse at initialisation; batch norm prevents it, and so
#   do shortcuts, but only while the residual branches are small next to the stream (which batch
#   norm arranges in an ordinary ResNet).
# * H v needs two gradients: the central difference errs by O(eps^2); power iteration on it gives
#   lambda_max, from below.
# * Gradient descent is stable on a quadratic only while lambda_max < 2/lr; on a net, full-batch
#   gradient descent sharpens until lambda_max reaches 2/lr, and then hovers there.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: the effective rank.** Write `erank(h)`: the effective rank of a matrix `h`
# (any shape; rows are the batch), from its singular values.

# %%
def check_exercise_1(erank):
    r = np.random.default_rng(3)
    for shape in ((6, 10), (12, 4), (5, 2, 3, 3)):
        a = r.standard_normal(shape) * r.uniform(0.1, 3, (shape[0],) + (1,) * (len(shape) - 1))
        assert abs(erank(a) - rank.effective_rank(a)) < 1e-9 * rank.effective_rank(a), shape
    print("exercise 1: correct")


def erank(h):
    raise NotImplementedError


# check_exercise_1(erank)

# %% [markdown]
# **Exercise 2: the smallest eigenvalue.** Power iteration finds the largest |lambda|. Given an
# upper bound `top` on every eigenvalue (lambda_max itself will do), write
# `lambda_min(matvec, n, top)`: the smallest eigenvalue of the symmetric n x n operator `matvec`,
# with `sharpness.power_iteration` on a shifted operator. (Near a saddle point of a loss, the
# smallest eigenvalue is the one that is negative.)

# %%
def check_exercise_2(lambda_min):
    for seed, spectrum in ((0, [4.0, 1.0, -2.0, 0.5]), (1, [3.0, 2.5, 0.2, 0.1, -0.3])):
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(spectrum),) * 2))
        a = q @ np.diag(spectrum) @ q.T
        got = lambda_min(lambda u: a @ u, len(spectrum), max(spectrum))
        assert abs(got - min(spectrum)) < 1e-6, (spectrum, got)
    print("exercise 2: correct")


def lambda_min(matvec, n, top):
    raise NotImplementedError


# check_exercise_2(lambda_min)

# %% [markdown]
# **Exercise 3: the largest stable learning rate.** Gradient descent on L(w) = w . A w / 2 + b . w
# (A symmetric, positive definite) converges for every start when lr < 2 / lambda_max(A). Write
# `largest_stable_lr(A)` from `sharpness.top_eigenvalue` (the operator is `lambda u: A @ u`); the
# checker runs gradient descent a little below and a little above it.

# %%
def check_exercise_3(largest_stable_lr):
    r = np.random.default_rng(4)
    for n in (3, 8):
        m = r.standard_normal((n, n))
        a, b = m @ m.T + 0.1 * np.eye(n), r.standard_normal(n)
        lr = largest_stable_lr(a)
        for factor, converges in ((0.95, True), (1.05, False)):
            w = r.standard_normal(n)
            for _ in range(2000):
                w = w - factor * lr * (a @ w + b)
            assert bool(np.linalg.norm(a @ w + b) < 1e-6) == converges, (n, factor)
    print("exercise 3: correct")


def largest_stable_lr(A):
    raise NotImplementedError


# check_exercise_3(largest_stable_lr)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** The singular values of h as (N, -1), normalised to sum 1, then exp of their entropy.

# %%
def erank_solution(h):
    s = np.linalg.svd(np.asarray(h, dtype=np.float64).reshape(len(h), -1), compute_uv=False)
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


check_exercise_1(erank_solution)

# %% [markdown]
# **2.** top I - A has eigenvalues top - lambda_i >= 0; the largest is top - lambda_min.

# %%
def lambda_min_solution(matvec, n, top):
    v0 = np.random.default_rng(0).standard_normal(n)
    r = sharpness.power_iteration(lambda u: top * u - matvec(u), v0, max_iters=5000, tol=1e-14)
    return top - r["value"]


check_exercise_2(lambda_min_solution)

# %% [markdown]
# **3.** Along each eigenvector the error is multiplied by 1 - lr lambda_i each step.

# %%
def largest_stable_lr_solution(A):
    v0 = np.random.default_rng(0).standard_normal(len(A))
    return 2 / sharpness.top_eigenvalue(lambda u: A @ u, v0, max_iters=5000, tol=1e-14)["value"]


check_exercise_3(largest_stable_lr_solution)
