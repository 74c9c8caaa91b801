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
# # Lesson 2: Convolution as a matrix product
#
# Almost all of a ResNet's work happens in its convolutions. Most are 3x3 (sec. 3.3); there is a
# 7x7 stride-2 stem on ImageNet (Table 1), 1x1 convolutions in the bottlenecks, and 1x1 stride-2
# convolutions for the projection shortcut W_s of Eq. 2, y = F(x, {W_i}) + W_s x. The "FLOPs" row
# of Table 1 counts exactly their multiply-adds. This lesson shows how `minires` turns a
# convolution into one large matrix product (*im2col*), and what that trick costs.
#
# **By the end you will be able to**
#
# 1. write a convolution as loops and as `W @ im2col(x)`, and check that they agree with `F.conv2d`;
# 2. state the backward pass as two matrix products plus `col2im`, the adjoint of `im2col`;
# 3. explain the speed-up, and put a number on im2col's memory cost (about k*k times the input);
# 4. say why minires lays its columns out as (C*kh*kw, N*OH*OW) and keeps activations channel-major;
# 5. read minires's reference `Conv2d` line by line, and say what its fast twin in `minires/fast/` changes.
#
# How minires makes convolution fast (Winograd's minimal filtering, and shifted matrix products that
# need no columns) is not in the paper; it is the optional lesson 2b, `02b_fast_convolution.py`.
#
# Open as a notebook with `jupytext --to notebook lessons/02_convolution.py`, run cell by cell in
# VS Code, or run `python lessons/02_convolution.py`.
# Run time (full run: 3 s, quick: 2 s) on 2 CPU cores; `MINIRES_QUICK=1` is the quick run.

# %%
import contextlib
import inspect
import io

import numpy as np

import minires as mr
from minires import functional as F
from lesson_setup import QUICK, median_time, plt, show  # quick mode, figures, timing: lesson_setup.py


rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The definition, as loops
#
# A convolution layer (strictly a cross-correlation, as in every framework) with weights w of
# shape (C_out, C, kh, kw) maps an input x of shape (N, C, H, W) to
#
#     y[n, o, p, q] = sum over c, i, j of  w[o, c, i, j] * xpad[n, c, s*p + i, s*q + j]
#
# Here xpad is x with `padding` zeros around it and s is the stride. The output is
# OH = (H + 2*padding - kh) // s + 1 rows high, and OW is found the same way. Written as loops,
# each output number is a dot product between one kernel and one *receptive field*:

# %%
def out_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def conv2d_loops(x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    C_out, _, kh, kw = w.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, C_out, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            for p in range(OH):
                for q in range(OW):
                    field = xpad[n, :, stride * p:stride * p + kh, stride * q:stride * q + kw]
                    y[n, o, p, q] = np.sum(field * w[o])
    return y


x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
y_loops = conv2d_loops(x, w, stride=2, padding=1)
y_minires = F.conv2d(mr.Tensor(x), mr.Tensor(w), stride=2, padding=1).data
print("output shape:", y_loops.shape, "| max |loops - F.conv2d|:", np.abs(y_loops - y_minires).max())
assert np.allclose(y_loops, y_minires, atol=1e-5)

# %% [markdown]
# ## 2. im2col: copy every receptive field into a column
#
# The loops compute N*C_out*OH*OW small dot products, and in Python each one carries a
# fixed cost that swamps the arithmetic. The fix is to lay the receptive fields out as the columns
# of one matrix. Each kernel flattened is then one row of the weight matrix, and the whole layer
# becomes a single matrix product (GEMM), which BLAS runs at close to the machine's peak speed:
#
#     cols = im2col(x)         (C*kh*kw, N*OH*OW)
#     y    = Wm @ cols         (C_out, N*OH*OW),   with Wm = w.reshape(C_out, C*kh*kw)
#
# Row (c, i, j) of `cols` holds kernel tap (i, j) of channel c. Column (n, p, q) is output position
# (p, q) of image n. `F.im2col` works on plain arrays:
#
#     cols[(c*kh + i)*kw + j, (n*OH + p)*OW + q] = xpad[n, c, s*p + i, s*q + j]
#
# The picture shows it for one 5x5 channel and a 3x3 kernel. Every pixel shows up once for each
# window that covers it, up to 9 times. That repetition is the memory cost we measure in section 5.

# %%
img = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
cols_small = F.im2col(img, 3, 3)  # (1*3*3, 1*3*3)
p, q = 1, 2                       # one output position, to highlight
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [5, 9]})
ax0.imshow(img[0, 0], cmap="viridis")
ax0.add_patch(plt.Rectangle((q - 0.5, p - 0.5), 3, 3, fill=False, ec="red", lw=3))
ax0.set_title(f"input 5x5, window of output ({p}, {q})")
ax1.imshow(cols_small, cmap="viridis")
ax1.add_patch(plt.Rectangle((p * 3 + q - 0.5, -0.5), 1, 9, fill=False, ec="red", lw=3))
ax1.set(title="im2col: 9 rows (kernel taps) x 9 columns (positions)", xlabel="column = output position",
        ylabel="row = kernel tap (i, j)")
for ax, a in ((ax0, img[0, 0]), (ax1, cols_small)):
    for (r, c), v in np.ndenumerate(a):
        ax.text(c, r, int(v), ha="center", va="center", color="white" if v < 12 else "black", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
show(fig, "02_im2col.png")

# %% [markdown]
# With the columns in hand, a convolution takes three lines. The GEMM result is
# (C_out, N*OH*OW). Reshaping it to (C_out, N, OH, OW) and swapping the first two axes gives the
# NCHW *shape* without copying anything (section 6 explains why that matters).

# %%
def conv2d_im2col(x, w, stride=1, padding=0):
    C_out, C, kh, kw = w.shape
    N, OH, OW = x.shape[0], out_size(x.shape[2], kh, stride, padding), out_size(x.shape[3], kw, stride, padding)
    cols = F.im2col(x, kh, kw, stride, padding)                     # (C*kh*kw, N*OH*OW)
    y = w.reshape(C_out, -1) @ cols                                 # (C_out, N*OH*OW)
    return y.reshape(C_out, N, OH, OW).swapaxes(0, 1)               # (N, C_out, OH, OW), a view


cols = F.im2col(x, 3, 3, stride=2, padding=1)
xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
OH = OW = out_size(7, 3, 2, 1)
for (n, c, i, j, p, q) in [(0, 0, 0, 0, 0, 0), (1, 2, 2, 1, 3, 2), (0, 1, 1, 2, 2, 3)]:
    assert cols[(c * 3 + i) * 3 + j, (n * OH + p) * OW + q] == xpad[n, c, 2 * p + i, 2 * q + j]
assert np.allclose(conv2d_im2col(x, w, stride=2, padding=1), y_loops, atol=1e-5)
print("index formula holds; loops == im2col + GEMM == F.conv2d")

# %% [markdown]
# ## 3. The backward pass: two more GEMMs and the adjoint of im2col
#
# Write the upstream gradient dy as a (C_out, N*OH*OW) matrix G, laid out like the forward's output.
# Since Y = Wm @ cols, matrix calculus gives
#
#     dW    = G @ cols^T                    (C_out, C*kh*kw): one GEMM
#     dcols = Wm^T @ G                      (C*kh*kw, N*OH*OW): one GEMM
#     dx    = col2im(dcols)                 each entry added back where im2col read it from
#
# `col2im` is the *adjoint* (the transpose) of `im2col`. im2col copies each pixel into several
# columns, so col2im *sums* the gradients from all those places, just as lesson 1 summed the
# gradients of a tensor used twice. Being the adjoint means <im2col(x), c> = <x, col2im(c)> for
# every x and c, which we can test directly:

# %%
c_rand = rng.standard_normal(cols.shape).astype(np.float32)
lhs = np.sum(cols.astype(np.float64) * c_rand)
rhs = np.sum(x.astype(np.float64) * F.col2im(c_rand, x.shape, 3, 3, stride=2, padding=1))
print(f"<im2col(x), c> = {lhs:.6f}   <x, col2im(c)> = {rhs:.6f}")
assert np.isclose(lhs, rhs, rtol=1e-5)

# %% [markdown]
# These three lines, with the forward's one, are the whole of minires's reference `Conv2d`
# (`minires/functional/conv.py`). It is the class a reader opens first; the docstring states the
# formulas and the code is nothing else:

# %%
from minires.functional.conv import Conv2d

print(inspect.getsource(Conv2d))

# %% [markdown]
# `F.conv2d` runs this class when minires is in reference mode (`with mr.reference_ops():`, or
# `MINIRES_OPS=reference` in the environment). By default it runs its fast twin, `ChunkedConv2d`
# in `minires/fast/chunked_conv.py`: the same function, computed over chunks of a few images on
# several threads, with shortcuts (for stride 1, dx is computed as a convolution of dy with the
# flipped kernel instead of with `col2im`). Section 4 times the two. Here we check dx from the
# formula against both. (The first time the reference ops run, minires prints a note saying so,
# so that nobody trains at their speed by accident. This lesson switches on purpose, so it catches
# that note with `contextlib.redirect_stderr`.)

# %%
xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
yt = F.conv2d(xt, wt, stride=2, padding=1)
gy = rng.standard_normal(yt.shape).astype(np.float32)
yt.backward(gy)

G = gy.swapaxes(0, 1).reshape(4, -1)  # (C_out, N*OH*OW), columns in (n, p, q) order
dx = F.col2im(w.reshape(4, -1).T @ G, x.shape, 3, 3, stride=2, padding=1)
xr = mr.Tensor(x, requires_grad=True)
with contextlib.redirect_stderr(io.StringIO()), mr.reference_ops():  # on purpose: no note
    F.conv2d(xr, mr.Tensor(w), stride=2, padding=1).backward(gy)
print("max |dx(col2im) - dx(fast F.conv2d)|:", np.abs(dx - xt.grad).max())
print("max |dx(col2im) - dx(reference Conv2d)|:", np.abs(dx - xr.grad).max())
assert np.allclose(dx, xt.grad, atol=1e-4) and np.allclose(dx, xr.grad, atol=1e-4)

# %% [markdown]
# Finally `mr.gradcheck` compares the whole backward (dx and dW) with finite differences on a
# tiny float64 problem, using the stride and padding of a ResNet downsampling convolution:

# %%
xs = mr.Tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True, name="x")
ws = mr.Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True, name="w")
print("gradcheck conv2d 3x3/2, padding 1:", mr.gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), xs, ws))

# %% [markdown]
# ## 4. How much faster?
#
# We time the loops, our three-line `conv2d_im2col`, and `F.conv2d` (its fast twin by default, which
# adds reused column buffers, shifted GEMMs that need no columns (lesson 2b) and, on large
# batches, chunks of images spread over the CPU cores) on a few small 3x3 layers.
# Each figure is the median of a few runs on whatever machine this is. The numbers illustrate
# the gap and are not a benchmark (for that, see `benchmarks/`). On layers this small, F.conv2d's
# fixed cost per call (argument checks, wrapping the result in a Tensor) can outweigh what its
# refinements save. Those refinements pay off on real layer sizes. On a busy machine the numbers
# jump around. If the two GEMM-based columns take several milliseconds even on these tiny shapes,
# the BLAS library is probably waiting for its worker threads to be scheduled. Run again with
# `OPENBLAS_NUM_THREADS=1` (or your BLAS's equivalent) to see the arithmetic's real cost.

# %%
shapes = [(2, 4, 8, 4), (2, 8, 16, 8)] if QUICK else [(2, 4, 8, 4), (4, 8, 16, 8), (8, 16, 16, 16)]
timings = {"loops": [], "im2col + GEMM": [], "F.conv2d": []}
for N, C, H, C_out in shapes:
    xb = rng.standard_normal((N, C, H, H)).astype(np.float32)
    wb = rng.standard_normal((C_out, C, 3, 3)).astype(np.float32)
    xbt, wbt = mr.Tensor(xb), mr.Tensor(wb)
    timings["loops"].append(median_time(lambda: conv2d_loops(xb, wb, 1, 1), 3))
    timings["im2col + GEMM"].append(median_time(lambda: conv2d_im2col(xb, wb, 1, 1), 7))
    timings["F.conv2d"].append(median_time(lambda: F.conv2d(xbt, wbt, padding=1), 7))
    print(f"x {N}x{C}x{H}x{H}, {C_out} filters: loops {timings['loops'][-1] * 1e3:8.2f} ms, "
          f"im2col + GEMM {timings['im2col + GEMM'][-1] * 1e3:6.3f} ms, "
          f"F.conv2d {timings['F.conv2d'][-1] * 1e3:6.3f} ms "
          f"({timings['loops'][-1] / timings['F.conv2d'][-1]:.0f}x faster than the loops)")

fig, ax = plt.subplots(figsize=(7, 3.5))
width = 0.27
for k, (name, ts) in enumerate(timings.items()):
    ax.bar(np.arange(len(shapes)) + (k - 1) * width, np.array(ts) * 1e3, width, label=name)
ax.set_xticks(np.arange(len(shapes)), [f"{N}x{C}x{H}x{H}\n-> {C_out} ch" for N, C, H, C_out in shapes])
ax.set(yscale="log", ylabel="median time (ms, log scale)", title="3x3 convolution, forward only")
ax.legend()
show(fig, "02_timing.png")

# %% [markdown]
# **The reference `Conv2d` against its fast twin.** Forward and backward (y, dx, dW) of a 3x3
# "same" convolution, as in a CIFAR ResNet's first stage. The fast twin computes the same numbers
# (to float32 rounding) the way that runs fast; what each technique buys is explained in the
# docstring of `minires/fast/__init__.py`, and `python -m benchmarks conv` measures it properly on
# full batches. The figures printed here are illustrative only: one machine, a few runs, a small batch.

# %%
def forward_backward_time(reference, xb, wb, gyb, repeats):
    xbt, wbt = mr.Tensor(xb, requires_grad=True), mr.Tensor(wb, requires_grad=True)

    def step():
        with mr.reference_ops(reference):
            F.conv2d(xbt, wbt, padding=1).backward(gyb)
    step()  # warm-up: the fast twin's column buffers are allocated on the first call
    return median_time(step, repeats), xbt.grad, wbt.grad


N, C = (4, 16) if QUICK else (32, 16)
xb = rng.standard_normal((N, C, 32, 32)).astype(np.float32)
wb = rng.standard_normal((C, C, 3, 3)).astype(np.float32) * 0.1
gyb = rng.standard_normal(xb.shape).astype(np.float32)
t_ref, dx_ref, dw_ref = forward_backward_time(True, xb, wb, gyb, 3 if QUICK else 5)
t_fast, dx_fast, dw_fast = forward_backward_time(False, xb, wb, gyb, 3 if QUICK else 5)
assert np.allclose(dx_ref, dx_fast, rtol=1e-4, atol=1e-4) and np.allclose(dw_ref, dw_fast, rtol=1e-4, atol=1e-3)
print(f"{N}x{C}x32x32, 3x3, forward + backward (illustrative): reference Conv2d {t_ref * 1e3:.1f} ms, "
      f"fast ChunkedConv2d {t_fast * 1e3:.1f} ms, same dx and dW to float32 rounding")

# %% [markdown]
# ## 5. The price: memory
#
# With stride 1 and "same" padding, OH*OW = H*W, so `cols` holds C*k*k*N*H*W numbers, which is
# **k*k times the input**. A stride of s divides that by s*s. A 1x1 stride-1 convolution needs no
# copy at all, since its columns are the input itself, and minires's fast path skips im2col for it
# (the reference runs im2col anyway, which for a 1x1 kernel is a plain copy of x). Below are
# the ratios for the convolutions the paper uses, measured with `F.im2col` on one image:

# %%
resnet_convs = [  # (where it appears, C, H, k, stride, padding)
    ("ImageNet stem 7x7/2", 3, 224, 7, 2, 3),
    ("conv2_x 3x3 (56x56)", 64, 56, 3, 1, 1),
    ("conv5_x 3x3 (7x7)", 512, 7, 3, 1, 1),
    ("CIFAR 3x3 (32x32)", 16, 32, 3, 1, 1),
    ("bottleneck 1x1", 256, 56, 1, 1, 0),
    ("projection W_s 1x1/2", 64, 56, 1, 2, 0),
]
ratios = []
print(f"{'layer':24s} {'input (MB)':>10s} {'cols (MB)':>10s} {'cols/input':>11s}")
for name, C, H, k, s, p in resnet_convs:
    xi = np.zeros((1, C, H, H), dtype=np.float32)
    nbytes = F.im2col(xi, k, k, s, p).nbytes
    ratios.append(nbytes / xi.nbytes)
    print(f"{name:24s} {xi.nbytes / 1e6:10.2f} {nbytes / 1e6:10.2f} {ratios[-1]:11.2f}")

fig, ax = plt.subplots(figsize=(7, 3.2))
ax.barh([r[0] for r in resnet_convs], ratios, color="tab:orange")
ax.axvline(1, color="black", lw=0.8)
ax.invert_yaxis()
ax.set(xlabel="size of im2col columns / size of the input", title="The memory price of im2col, per layer")
show(fig, "02_memory.png")

# %% [markdown]
# A training batch of 256 at conv2_x means 256 x 7.2 MB, about 1.8 GB of columns for a *single*
# layer. Keeping them from the forward pass for the backward pass, in every layer, would multiply
# the memory of a ResNet several times. minires therefore *recomputes* the columns in the
# backward pass, a cheap copy that saves a lot of memory: the reference `Conv2d` above calls
# `im2col(x)` again in its backward, and the fast twin rebuilds them chunk by chunk in small
# per-thread buffers that every convolution reuses (`minires/fast/memory.py`), or, for the 3x3
# "same" convolutions of a CIFAR ResNet, writes no columns at all (lesson 2b).
#
# ## 6. Why the column layout matters
#
# The same numbers can be laid out as minires does, (C*kh*kw, N*OH*OW), or transposed as
# (N*OH*OW, C*kh*kw), one receptive field per *row*, as many from-scratch codes do. The
# arithmetic is identical. What changes is how memory is walked, and that shows up in two places.
#
# **The gather.** A copy runs fast when its innermost run of consecutive elements is long. In
# minires's layout, row (c, i, j) is filled with whole image rows: runs of OW numbers from
# N*OH image rows. In the row layout, each receptive field is written as runs of kw = 3 numbers.
# Below we build both from the same input, check they hold the same numbers, and time the copies.
# NumPy's `sliding_window_view` does the row-layout gather in one line. Both are timed on one
# thread, so that only the access pattern differs.

# %%
N, C, H, C_out = (4, 16, 16, 16) if QUICK else (16, 16, 32, 16)
xb = rng.standard_normal((N, C, H, H)).astype(np.float32)
wb = rng.standard_normal((C_out, C, 3, 3)).astype(np.float32)
xb_padded = np.pad(xb, ((0, 0), (0, 0), (1, 1), (1, 1)))


def im2col_rows(xpad):
    windows = np.lib.stride_tricks.sliding_window_view(xpad, (3, 3), axis=(2, 3))  # (N, C, OH, OW, 3, 3)
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(N * H * H, C * 9)


assert np.array_equal(im2col_rows(xb_padded), F.im2col(xb, 3, 3, 1, 1).T)
t_cols = median_time(lambda: F.im2col(xb, 3, 3, 1, 1), 7)
t_rows = median_time(lambda: im2col_rows(xb_padded), 7)
print(f"gather into (C*k*k, N*OH*OW), minires: {t_cols * 1e3:6.2f} ms")
print(f"gather into (N*OH*OW, C*k*k), rows   : {t_rows * 1e3:6.2f} ms  ({t_rows / t_cols:.1f}x slower here)")

# %% [markdown]
# **The output.** `Wm @ cols` gives (C_out, N*OH*OW): each output channel's maps for the whole
# batch sit in one contiguous row. This is "channel-major" memory. Viewed through a swap of the
# first two axes it has the NCHW shape everyone expects, and it is already the layout the next
# consumers want: batch norm reduces per channel over (N, H, W) (lesson 3), and the next im2col
# reads whole channel planes. The row layout's `rows @ Wm^T` gives (N*OH*OW, C_out), which is
# NHWC, and turning that into NCHW or per-channel rows means a transposed copy of the whole
# activation, in every layer, forwards and backwards. `F.conv2d` returns an NCHW-shaped tensor
# whose memory is channel-major, so flattening it per channel is free:

# %%
from minires.functional.layout import channels_first_2d

yb = F.conv2d(mr.Tensor(xb), mr.Tensor(wb), padding=1).data
print("shape", yb.shape, "| strides (bytes)", yb.strides, "| NCHW-contiguous:", yb.flags.c_contiguous)
print("per-channel (C, N*H*W) matrix is a view, no copy:", np.shares_memory(channels_first_2d(yb), yb))
print("from a C-contiguous NCHW array the same matrix is a copy:",
      not np.shares_memory(channels_first_2d(np.ascontiguousarray(yb)), yb))

# %% [markdown]
# ## Summary
#
# * A convolution is N*C_out*OH*OW dot products. im2col gathers the receptive fields into a
#   (C*kh*kw, N*OH*OW) matrix, and the whole layer becomes one GEMM. So do both halves of its
#   backward: dW = G cols^T and dcols = Wm^T G, followed by dx = col2im(dcols).
# * col2im is the adjoint of im2col. It sums what im2col copied, the same "used twice, gradients
#   add" rule as in lesson 1.
# * The columns take about k*k/s^2 times the input's memory, so minires recomputes them in the
#   backward pass instead of storing them.
# * `minires/functional/conv.py` holds the reference `Conv2d`, these formulas and nothing else;
#   `F.conv2d` runs its fast twin from `minires/fast/` by default, and the reference inside
#   `with mr.reference_ops():`.
# * Putting channels first in the columns makes the gather copy long runs of memory. It also makes
#   the GEMM output channel-major, so NCHW views, batch norm and the next im2col need no
#   transposed copies.
# * Computing it faster than one GEMM over columns (Winograd, shifted GEMMs) is the optional
#   lesson 2b.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: output sizes.** Write `my_out_size(size, k, stride, padding)` without looking at
# section 1. The checker tries it on ResNet's layers (224 -> 112 for the 7x7/2 stem, odd sizes
# with stride 2, ...) against the shapes `F.conv2d` actually returns.

# %%
def check_exercise_1(my_out_size):
    cases = [(224, 7, 2, 3), (112, 3, 2, 1), (56, 3, 1, 1), (56, 1, 2, 0), (7, 3, 2, 1), (9, 3, 2, 0), (5, 5, 1, 0)]
    for size, k, s, p in cases:
        got = F.conv2d(mr.Tensor(np.zeros((1, 1, size, size), np.float32)),
                       mr.Tensor(np.zeros((1, 1, k, k), np.float32)), stride=s, padding=p).shape[2]
        assert my_out_size(size, k, s, p) == got, f"size {size}, k {k}, stride {s}, padding {p}: expected {got}"
    print("exercise 1: correct")


def my_out_size(size, k, stride, padding):
    raise NotImplementedError


# check_exercise_1(my_out_size)

# %% [markdown]
# **Exercise 2: the projection shortcut W_s without im2col.** Eq. 2's W_s is a 1x1 convolution
# with stride 2. Write `projection(x, w)` for x (N, C, H, W) and w (C_out, C) using only NumPy
# slicing and one matrix product, with no im2col. The checker compares it with
# `F.conv2d(x, w[:, :, None, None], stride=2)`.

# %%
def check_exercise_2(projection):
    r = np.random.default_rng(2)
    for shape in [(2, 4, 8, 8), (1, 3, 7, 7)]:
        xe = r.standard_normal(shape).astype(np.float32)
        we = r.standard_normal((5, shape[1])).astype(np.float32)
        want = F.conv2d(mr.Tensor(xe), mr.Tensor(we[:, :, None, None]), stride=2).data
        np.testing.assert_allclose(projection(xe, we), want, rtol=1e-5, atol=1e-5)
    print("exercise 2: correct")


def projection(x, w):
    raise NotImplementedError


# check_exercise_2(projection)

# %% [markdown]
# **Exercise 3: the weight gradient.** Write `conv_weight_grad(x, gy, kh, kw, stride, padding)`,
# returning dL/dw of shape (C_out, C, kh, kw), with `F.im2col` and one matrix product. The checker
# puts it in the backward of minires's reference `Conv2d` and property-tests that op with
# `check_backward` (lesson 3b; needs `pip install -e '.[dev]'`): central differences over
# generated geometries (odd sizes with stride 2, 1x1 images, rectangular kernels), float32 and
# both memory layouts.

# %%
def check_exercise_3(conv_weight_grad):
    from minires.testing import check_backward, conv_cases

    class ConvWithYourWeightGrad(Conv2d):
        def backward(self, gy):
            gx, _ = super().backward(gy)
            kh, kw = self.w.shape[2:]
            return gx, conv_weight_grad(self.x, gy, kh, kw, self.stride, self.padding)

    check_backward(ConvWithYourWeightGrad, conv_cases(bias=False), max_examples=10 if QUICK else 30)
    print("exercise 3: correct")


def conv_weight_grad(x, gy, kh, kw, stride, padding):
    raise NotImplementedError


# check_exercise_3(conv_weight_grad)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** The padded size is size + 2p. A kernel fits at start positions 0, s, 2s, ... up to
# size + 2p - k, which gives floor((size + 2p - k) / s) + 1 positions.

# %%
check_exercise_1(lambda size, k, stride, padding: (size + 2 * padding - k) // stride + 1)

# %% [markdown]
# **2.** With a 1x1 kernel and no padding, stride 2 just picks every second pixel, and the
# convolution mixes channels at each pixel: a (C_out, C) @ (C, pixels) product.

# %%
def projection_solution(x, w):
    sub = x[:, :, ::2, ::2]                                   # (N, C, OH, OW)
    N, C, OH, OW = sub.shape
    y = w @ sub.transpose(1, 0, 2, 3).reshape(C, -1)          # (C_out, N*OH*OW)
    return y.reshape(-1, N, OH, OW).transpose(1, 0, 2, 3)


check_exercise_2(projection_solution)

# %% [markdown]
# **3.** dW = G @ cols^T, with G the upstream gradient as a (C_out, N*OH*OW) matrix whose columns
# are in the same (n, p, q) order as im2col's.

# %%
def conv_weight_grad_solution(x, gy, kh, kw, stride, padding):
    C_out = gy.shape[1]
    G = gy.swapaxes(0, 1).reshape(C_out, -1)
    return (G @ F.im2col(x, kh, kw, stride, padding).T).reshape(C_out, x.shape[1], kh, kw)


check_exercise_3(conv_weight_grad_solution)
