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
# 5. read minires's reference `Conv2d` line by line, and say what its fast twin in `minires/fast/` changes;
# 6. compute a 3x3 convolution with Winograd's F(2x2, 3x3), 16 multiplications per 2x2 output tile
#    instead of 36, and say why minires leaves it off by default;
# 7. write a "same" convolution as a sum of k*k shifted GEMMs that read the input where it lies.
#
# Open as a notebook with `jupytext --to notebook lessons/02_convolution.py`, run cell by cell in
# VS Code, or run `python lessons/02_convolution.py`. `MINIRES_QUICK=1` makes it take seconds.

# %%
import inspect
import time

import numpy as np

import minires as mr
from minires import functional as F
from lesson_setup import QUICK, plt, show  # quick mode and figures, see lesson_setup.py


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
# formula against both:

# %%
xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
yt = F.conv2d(xt, wt, stride=2, padding=1)
gy = rng.standard_normal(yt.shape).astype(np.float32)
yt.backward(gy)

G = gy.swapaxes(0, 1).reshape(4, -1)  # (C_out, N*OH*OW), columns in (n, p, q) order
dx = F.col2im(w.reshape(4, -1).T @ G, x.shape, 3, 3, stride=2, padding=1)
xr = mr.Tensor(x, requires_grad=True)
with mr.reference_ops():
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
# adds reused column buffers, shifted GEMMs that need no columns (section 8) and, on large
# batches, chunks of images spread over the CPU cores) on a few small 3x3 layers.
# Each figure is the median of a few runs on whatever machine this is. The numbers illustrate
# the gap and are not a benchmark (for that, see `benchmarks/`). On layers this small, F.conv2d's
# fixed cost per call (argument checks, wrapping the result in a Tensor) can outweigh what its
# refinements save. Those refinements pay off on real layer sizes. On a busy machine the numbers
# jump around. If the two GEMM-based columns take several milliseconds even on these tiny shapes,
# the BLAS library is probably waiting for its worker threads to be scheduled. Run again with
# `OPENBLAS_NUM_THREADS=1` (or your BLAS's equivalent) to see the arithmetic's real cost.

# %%
def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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
# "same" convolutions of a CIFAR ResNet, writes no columns at all (section 8).
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
# ## 7. Winograd: fewer multiplications for 3x3 convolutions
#
# im2col does exactly the multiplications of the definition: 9 per output per input channel
# for a 3x3 kernel. For stride-1 3x3 convolutions there is a way with fewer. Lavin and Gray (2016,
# *Fast algorithms for convolutional neural networks*) took it from Winograd's *minimal filtering*
# algorithms: first add and subtract inputs, then multiply, then add the products back up. minires
# has it in `minires/fast/winograd.py`. We build it up in three steps and then run the real one.
#
# **One dimension, F(2, 3).** Two outputs of a 3-tap filter g over four inputs d:
#
#     y0 = d0 g0 + d1 g1 + d2 g2
#     y1 = d1 g0 + d2 g1 + d3 g2          6 multiplications
#
# Winograd's F(2, 3) gets the same two numbers from 4 products:
#
#     m1 = (d0 - d2) g0                   m2 = (d1 + d2) (g0 + g1 + g2) / 2
#     m3 = (d2 - d1) (g0 - g1 + g2) / 2   m4 = (d1 - d3) g2
#     y0 = m1 + m2 + m3                   y1 = m2 - m3 - m4
#
# (Multiply out m2 + m3 and m2 - m3 to see the terms cancel.) The filter-side factors, such as
# (g0 + g1 + g2) / 2, depend on the filter alone. A layer computes them once and then uses them at
# every position of every image, so they do not count per output. With small whole numbers:

# %%
d = np.array([1.0, 2.0, 3.0, 4.0])
g = np.array([2.0, -1.0, 1.0])
Gg = np.array([g[0], (g[0] + g[1] + g[2]) / 2, (g[0] - g[1] + g[2]) / 2, g[2]])  # once per filter


def f23_direct(d, g):
    return d[0] * g[0] + d[1] * g[1] + d[2] * g[2], d[1] * g[0] + d[2] * g[1] + d[3] * g[2]


def f23(d, Gg):
    m1 = (d[0] - d[2]) * Gg[0]
    m2 = (d[1] + d[2]) * Gg[1]
    m3 = (d[2] - d[1]) * Gg[2]
    m4 = (d[1] - d[3]) * Gg[3]
    return m1 + m2 + m3, m2 - m3 - m4


m1, m2, m3, m4 = (d[0] - d[2]) * Gg[0], (d[1] + d[2]) * Gg[1], (d[2] - d[1]) * Gg[2], (d[1] - d[3]) * Gg[3]
print(f"d = {d}, g = {g}, filter side (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2) = {Gg}")
print(f"m1 = {m1}, m2 = {m2}, m3 = {m3}, m4 = {m4}")
print(f"Winograd: y0 = m1 + m2 + m3 = {m1 + m2 + m3}, y1 = m2 - m3 - m4 = {m2 - m3 - m4}")
y0, y1 = f23_direct(d, g)
print(f"direct  : y0 = {y0}, y1 = {y1}")
assert f23(d, Gg) == f23_direct(d, g) == (m1 + m2 + m3, m2 - m3 - m4)

# %% [markdown]
# To count the multiplications rather than take them on trust, here is a number that counts every
# multiplication it takes part in. We give both functions inputs made of such numbers and the
# filter as plain numbers:

# %%
class Counted:
    """A number that counts, in Counted.products, every multiplication it takes part in."""
    products = 0

    def __init__(self, v):
        self.v = v

    def __add__(self, other):
        return Counted(self.v + value(other))

    __radd__ = __add__

    def __sub__(self, other):
        return Counted(self.v - value(other))

    def __rsub__(self, other):
        return Counted(value(other) - self.v)

    def __mul__(self, other):
        Counted.products += 1
        return Counted(self.v * value(other))

    __rmul__ = __mul__


def value(a):
    return a.v if isinstance(a, Counted) else a


def count_products(fn, *args):
    Counted.products = 0
    out = fn(*args)
    return Counted.products, out


d_counted = [Counted(v) for v in d]
n_direct, _ = count_products(f23_direct, d_counted, g)
n_winograd, _ = count_products(f23, d_counted, Gg)
print(f"F(2, 3), two outputs: direct {n_direct} multiplications, Winograd {n_winograd}")
assert (n_direct, n_winograd) == (6, 4)

# %% [markdown]
# **The matrix form.** The additions before the products are a matrix B^T applied to d, the
# filter side is a matrix G applied to g, and the additions after the products are a matrix A^T:
#
#     y = A^T [ (G g) * (B^T d) ]          * is the elementwise product, of length 4
#
#     B^T = [[1,  0, -1,  0],     G = [[1,    0,    0  ],     A^T = [[1, 1,  1,  0],
#            [0,  1,  1,  0],          [1/2,  1/2,  1/2],            [0, 1, -1, -1]]
#            [0, -1,  1,  0],          [1/2, -1/2,  1/2],
#            [0,  1,  0, -1]]          [0,    0,    1  ]]
#
# Row by row, B^T d is (d0 - d2, d1 + d2, d2 - d1, d1 - d3) and A^T m is (m1 + m2 + m3,
# m2 - m3 - m4). The entries of B^T and A^T are 0 and +-1, so in code they become additions, not
# multiplications. We check the matrix form on the numbers above and on random ones:

# %%
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

products = (G @ g) * (BT @ d)
print("B^T d =", BT @ d, "| G g =", G @ g, "| products =", products, "| y = A^T products =", AT @ products)
assert np.array_equal(AT @ ((G @ g) * (BT @ d)), f23_direct(d, g))
for _ in range(5):
    dr, gr = rng.standard_normal(4), rng.standard_normal(3)
    assert np.allclose(AT @ ((G @ gr) * (BT @ dr)), [dr[:3] @ gr, dr[1:] @ gr], rtol=1e-13, atol=1e-13)
print("y = A^T[(G g) * (B^T d)] equals the 3-tap correlation on 5 random (d, g)")

# %% [markdown]
# **Two dimensions, by nesting.** Running F(2, 3) once along the rows of a tile and once along its
# columns gives F(2x2, 3x3): from a 4x4 input tile d and a 3x3 filter g, the 2x2 outputs are
#
#     Y = A^T [ (G g G^T) * (B^T d B) ] A
#
# B^T d combines the rows of d, and multiplying by B on the right then combines its columns, in
# the same way. U = G g G^T (4x4) depends on the filter alone, and V = B^T d B (4x4) on the
# input alone. Their elementwise product is 16 multiplications for 4 outputs, where the direct
# form needs 4 x 9 = 36. Below, `correlate_tile` is the definition, written as loops, and
# `winograd_tile` is the formula. minires's `filter_transform` computes U for whole layers of
# filters at once, so we check it on one filter too.

# %%
from minires.fast.winograd import filter_transform, winograd_conv3x3


def correlate_tile(d, g):
    """The 2x2 outputs of a 3x3 correlation over a 4x4 tile, as the definition says."""
    Y = [[0, 0], [0, 0]]
    for p in range(2):
        for q in range(2):
            for i in range(3):
                for j in range(3):
                    Y[p][q] = Y[p][q] + d[p + i][q + j] * g[i][j]
    return Y


def winograd_tile(d, U):
    """Y = A^T [U * (B^T d B)] A, with U = G g G^T."""
    return AT @ (U * (BT @ d @ BT.T)) @ AT.T


d_tile, g_tile = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
U_tile = G @ g_tile @ G.T
print("Winograd 2x2 outputs:\n", winograd_tile(d_tile, U_tile))
print("max |Winograd - loops|:", np.abs(winograd_tile(d_tile, U_tile) - correlate_tile(d_tile, g_tile)).max())
assert np.allclose(winograd_tile(d_tile, U_tile), correlate_tile(d_tile, g_tile), rtol=1e-12, atol=1e-12)
assert np.allclose(filter_transform(g_tile[None, None])[:, :, 0, 0], U_tile, rtol=1e-13, atol=1e-13)

# %% [markdown]
# To count its products, we write the nesting literally: the 1-D transforms, as additions, along
# the rows and then along the columns (this is how `winograd.py` computes them, on whole arrays).

# %%
def input_transform(d0, d1, d2, d3):  # B^T d, row by row
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def output_transform(m0, m1, m2, m3):  # A^T m
    return m0 + m1 + m2, m1 - m2 - m3


def winograd_tile_additions(d, U):
    """winograd_tile, with B^T d B and A^T M A written as the additions they are."""
    BTd = np.array(input_transform(*d))           # combine the 4 rows of d
    V = np.array(input_transform(*BTd.T)).T       # then the 4 columns: V = B^T d B
    M = U * V                                     # the only multiplications
    ATM = np.array(output_transform(*M))          # A^T M
    return np.array(output_transform(*ATM.T)).T   # (A^T M) A


tile_counted = np.array([[Counted(v) for v in row] for row in d_tile], dtype=object)
n_direct, Y_direct = count_products(correlate_tile, tile_counted, g_tile.tolist())
n_winograd, Y_winograd = count_products(winograd_tile_additions, tile_counted, U_tile.astype(object))
Y_direct, Y_winograd = np.vectorize(value)(Y_direct), np.vectorize(value)(Y_winograd)
print(f"F(2x2, 3x3), four outputs: direct {n_direct} multiplications, Winograd {n_winograd} "
      f"({n_direct / n_winograd:.2f}x fewer)")
assert (n_direct, n_winograd) == (36, 16)
assert np.allclose(Y_winograd, Y_direct, rtol=1e-12, atol=1e-12)
assert np.allclose(Y_winograd, winograd_tile(d_tile, U_tile), rtol=1e-12, atol=1e-12)

# %% [markdown]
# **A whole layer.** A layer covers its output with 2x2 tiles, so the 4x4 input tiles overlap by
# two rows and columns (the last tile may hang over the edge of an odd-sized output). With C input
# and K output channels, output channel k is a sum over c of one filter per channel, and the sum
# can be done after the products:
#
#     Y[k] = A^T [ sum over c of U[k, c] * V[c] ] A
#
# At each of the 16 positions of the 4x4 transformed tile, that sum over c is a matrix product:
# `U[pos]` (K, C) @ `V[pos]` (C, tiles). So a layer is one filter transform, one input transform,
# 16 GEMMs and one output transform. That is `winograd_conv3x3(x, w, padding)`. In float64 it
# agrees with the reference convolution and with our loops from section 1 to rounding:

# %%
x64 = rng.standard_normal((2, 4, 9, 9))   # odd size: the last row and column of tiles hang over
w64 = rng.standard_normal((3, 4, 3, 3))
y_wino = winograd_conv3x3(x64, w64, padding=1)
with mr.reference_ops():
    y_ref = F.conv2d(mr.Tensor(x64), mr.Tensor(w64), padding=1).data
print("output", y_wino.shape, "| max |winograd - reference F.conv2d|:", np.abs(y_wino - y_ref).max(),
      "| max |winograd - loops|:", np.abs(y_wino - conv2d_loops(x64, w64, padding=1)).max())
assert np.allclose(y_wino, y_ref, rtol=1e-11, atol=1e-11)

# %% [markdown]
# **Rounding.** The algebra is exact, but in float32 every addition rounds. Winograd adds and
# subtracts inputs before multiplying (and its filter side holds halves of sums), so you might
# expect it to round worse than im2col. On the other hand its GEMMs sum C terms where im2col's sum
# 9C. For F(2x2, 3x3) the two effects are of similar size, and which one wins depends on the width
# and on how your BLAS sums. Here is the largest float32 error of each, relative to the largest
# output, against float64, at a narrow and a wide layer on this machine (float32 rounds each
# result to about 6e-8 of its size). Larger tiles, such as F(4x4, 3x3), save more multiplications
# but have larger constants in their transforms, and their rounding error grows quickly with the
# tile size (Barabasz et al. 2018, *Error analysis and improving the accuracy of Winograd
# convolution for deep neural networks*).

# %%
for C in (16, 512):
    xe = rng.standard_normal((2, C, 8, 8))
    we = rng.standard_normal((16, C, 3, 3)) / np.sqrt(9 * C)   # He-like scale: outputs of order 1
    exact = conv2d_im2col(xe, we, 1, 1)                           # float64
    scale = np.abs(exact).max()
    xe32, we32 = xe.astype(np.float32), we.astype(np.float32)
    err_im2col = np.abs(conv2d_im2col(xe32, we32, 1, 1) - exact).max() / scale
    err_wino = np.abs(winograd_conv3x3(xe32, we32, 1) - exact).max() / scale
    print(f"{C:3d} channels, float32 error / largest output: im2col {err_im2col:.1e}, Winograd {err_wino:.1e}")
    assert err_im2col < 5e-6 and err_wino < 5e-6

# %% [markdown]
# **Why it is not minires's default.** Counted in multiply-adds, a Winograd layer does 16 GEMMs of
# (K, C) @ (C, tiles), with about N*OH*OW/4 tiles, which is about 4 K C N OH OW, where im2col's
# one (K, 9C) @ (9C, N*OH*OW) does 9 K C N OH OW: 2.25 times fewer. But multiplications are not
# all that costs time. im2col writes its columns in one copy, and BLAS reads them in one long GEMM
# that runs close to the machine's peak. Winograd's transforms are dozens of NumPy additions,
# subtractions and copies over strided views of the input and the products, each a separate pass
# over memory that writes a new array; the transformed input V and the products M are each about
# four times the size of the input and the output. And its 16 GEMMs are 9 times shorter in the
# summed dimension, small ones at CIFAR widths. In minires's fast convolution Winograd would
# compute the forward and dx; the weight gradient keeps the columns.
#
# `python -m benchmarks winograd` times a 3x3 "same" convolution's forward and backward inside
# minires's fast convolution, with the Winograd branch forced on and with the im2col columns
# (and a third way, section 8's). On an idle Intel Xeon with AVX-512 (OpenBLAS 0.3.31, SkylakeX
# kernel, NumPy 2.4.6, 2 threads; as part of `python -m benchmarks all --repeats 7`), Winograd's
# time over im2col's was:
#
# | layer (batch, channels, size) | winograd / im2col |
# |---|---:|
# | N32 16ch 32x32 | 1.46x |
# | N32 64ch 16x16 | 1.49x |
# | N32 128ch 16x16 | 1.27x |
# | N32 256ch 8x8 | 1.56x |
# | N16 512ch 7x7 | 2.75x |
#
# Slower at every width measured, so it stays off: the `winograd_min_channels` knob of
# `minires/fast/config.py` is None. `benchmarks/README.md` has the figures. To try it on your own
# machine, run your code inside
#
#     with minires.fast.using(winograd_min_channels=64):
#         ...
#
# and every stride-1 3x3 convolution with at least 64 input and output channels uses it. Below,
# one small layer both ways. These are **your machine's numbers**, from a few runs: an illustration,
# not a benchmark.

# %%
from minires import fast
from minires.fast import chunked_conv, shifted_gemm, winograd

N, C, H = (4, 64, 16) if QUICK else (32, 64, 16)
xb = rng.standard_normal((N, C, H, H)).astype(np.float32)
wb = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
gyb = rng.standard_normal(xb.shape).astype(np.float32)
with fast.using(shifted_gemm_max_channels=0):  # the im2col columns, not section 8's GEMMs
    t_im2col, dx_im2col, dw_im2col = forward_backward_time(False, xb, wb, gyb, 3 if QUICK else 5)
    with fast.using(winograd_min_channels=64):
        assert chunked_conv.branch_for(xb, wb, 1, 1) is winograd
        t_wino, dx_wino, dw_wino = forward_backward_time(False, xb, wb, gyb, 3 if QUICK else 5)
assert np.allclose(dx_wino, dx_im2col, rtol=1e-3, atol=1e-4)
assert np.allclose(dw_wino, dw_im2col, rtol=1e-3, atol=1e-3)
print(f"{N}x{C}x{H}x{H}, 3x3, forward + backward on this machine: im2col {t_im2col * 1e3:.1f} ms, "
      f"Winograd {t_wino * 1e3:.1f} ms (winograd/im2col {t_wino / t_im2col:.2f}x), "
      "same dx and dW to float32 rounding")

# %% [markdown]
# ## 8. No columns at all: a sum of shifted GEMMs
#
# im2col copies every input value k*k times so that one GEMM can read it. But a kernel tap (i, j)
# only changes *where* the input is read: output (r, q) reads xpad[r + i, q + j]. If the padded
# input is laid out so that this shift is the same distance in memory for every output, each
# tap's product can read the input where it already lies:
#
#     y = sum over (i, j) of  W[:, :, i, j] @ X[:, i*Wp + j : i*Wp + j + L]
#
# k*k GEMMs with K = C each, instead of one with K = C*k*k, and no columns. The layout
# (`minires/fast/shifted_gemm.py`) is a "same" convolution's padded input with its padding
# *shared*: rows of Wp = W + 1 numbers (a row's zero at the end is also the next row's left
# padding) and H + 1 rows per image (the zero row under one image is the one above the next),
# flattened per channel. The outputs are computed on that (H + 1) x (W + 1) grid; those in the
# extra row and column read across a border, are garbage, and are dropped. Here it is with plain
# NumPy, checked against the reference convolution:

# %%
N, C, H, C_out = 2, 3, 5, 4
xs = rng.standard_normal((N, C, H, H))
ws = rng.standard_normal((C_out, C, 3, 3))
buf, start = shifted_gemm.shared_padding(xs, 3, 1, "lesson")   # (C, N*(H+1)*(H+1) + slack)
Hs, Wp = shifted_gemm.grid(H, H, 1)                              # (H + 1, W + 1)
L = N * Hs * Wp                                                  # outputs on the grid
y_grid = sum(ws[:, :, i, j] @ buf[:, i * Wp + j: i * Wp + j + L] for i in range(3) for j in range(3))
y_shift = y_grid.reshape(C_out, N, Hs, Wp)[:, :, :H, :H].swapaxes(0, 1)  # drop the garbage
with mr.reference_ops():
    y_ref = F.conv2d(mr.Tensor(xs), mr.Tensor(ws), padding=1).data
# Image 0, channel 0, as rows of Wp numbers, from the buffer's second number on (its first is the
# left padding of the first row): the zero row above, H rows each ending in its shared zero, the
# zero row that is also the next image's top padding.
print(np.round(buf[0, 1:1 + (Hs + 1) * Wp].reshape(Hs + 1, Wp), 2))
print("max |shifted GEMMs - reference F.conv2d|:", np.abs(y_shift - y_ref).max())
assert np.allclose(y_shift, y_ref, rtol=1e-12, atol=1e-12)

# %% [markdown]
# The sum above still writes each tap's product and adds it up, nine passes over y. NumPy's
# `matmul` cannot add into its output, but BLAS's GEMM can (C = A @ B + beta C, with beta = 1), so
# minires calls it directly (`minires/fast/blas.py`, `window_sum`), and y's tile is updated while
# it is in registers. The weight gradient is nine GEMMs over the same windows, dW[:, :, i, j] =
# dY @ X[:, i*Wp + j : ...]^T with dY zero on the garbage outputs, and dx is the same sum as the
# forward with the flipped kernel. What it costs: the garbage outputs, (H + 1)(W + 1)/(HW) times
# the multiplications (1.06x at 32x32, 1.27x at 8x8), and K = C per GEMM instead of 9C. What it
# saves: every column copy, which at CIFAR widths costs more than the arithmetic. With many
# channels the multiplications dominate, so minires uses it up to 128 channels
# (`shifted_gemm_max_channels`, a knob) and keeps the columns above. `python -m benchmarks winograd`
# times all three ways; the figures are in `benchmarks/README.md`.
#
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
# * Winograd's F(2x2, 3x3), Y = A^T[(G g G^T) * (B^T d B)]A, computes a stride-1 3x3 convolution
#   with 16 multiplications per 2x2 output tile instead of 36, but its transforms are extra passes
#   over memory: `minires/fast/winograd.py` was slower than im2col at every width measured, so it is off.
# * On a layout with shared padding, a "same" convolution is k*k GEMMs over shifted windows of the
#   input, summed in BLAS: no columns are written (`minires/fast/shifted_gemm.py`).
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
# **Exercise 4: Winograd along a row.** Write `winograd_row(d, g)`, the n outputs of a 3-tap
# correlation over n + 2 inputs d (n even), y[k] = d[k] g0 + d[k+1] g1 + d[k+2] g2, with F(2, 3)
# on tiles of 4 inputs that overlap by 2, as a layer tiles its rows. The checker passes d as a list
# of `Counted` numbers (section 7; use only +, - and * on them) and g as plain numbers. It compares
# your outputs with NumPy's `np.correlate` and counts the multiplications that touch d: 2 per
# output, where the direct form needs 3.

# %%
def check_exercise_4(winograd_row):
    r = np.random.default_rng(4)
    for n in (2, 6, 10):
        de, ge = r.standard_normal(n + 2), r.standard_normal(3)
        products, got = count_products(winograd_row, [Counted(v) for v in de], ge.tolist())
        got = [value(y) for y in got]
        assert len(got) == n, f"{n + 2} inputs: expected {n} outputs, got {len(got)}"
        np.testing.assert_allclose(got, np.correlate(de, ge, mode="valid"), rtol=1e-12, atol=1e-12)
        assert products <= 2 * n, (
            f"{n} outputs took {products} multiplications of the inputs; F(2, 3) needs {2 * n}, 4 per tile. "
            "Are the filter-side numbers computed once, and B^T d written as additions?")
    print("exercise 4: correct")


def winograd_row(d, g):
    raise NotImplementedError


# check_exercise_4(winograd_row)

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


# %% [markdown]
# **4.** Transform the filter once, then run `f23` from section 7 on the tiles d[0:4], d[2:6], ...:
# each gives two outputs with 4 multiplications.

# %%
def winograd_row_solution(d, g):
    Gg = [g[0], (g[0] + g[1] + g[2]) / 2, (g[0] - g[1] + g[2]) / 2, g[2]]  # once per filter
    y = []
    for t in range(0, len(d) - 2, 2):
        y.extend(f23(d[t:t + 4], Gg))
    return y


check_exercise_4(winograd_row_solution)
