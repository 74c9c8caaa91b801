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
# # Lesson 2b (optional): Making convolution fast
#
# Lesson 2 computed a convolution the way the paper's frameworks did: copy the receptive fields
# into columns (im2col) and run one matrix product. Nothing in the paper depends on how a
# convolution is computed, and this lesson can be skipped: lessons 3 to 16 need only lesson 2.
# It is for the reader who wants to know where the time of a training step goes, and how
# minires's fast convolution (`minires/fast/`) wins some of it back. Two ideas, each checked
# against the reference convolution, and then timed **on your machine**:
#
# * Winograd's minimal filtering, which computes a 3x3 convolution with fewer multiplications;
# * a sum of shifted matrix products, which computes a "same" convolution without writing any
#   columns at all.
#
# **By the end you will be able to**
#
# 1. compute a 3x3 convolution with Winograd's F(2x2, 3x3), 16 multiplications per 2x2 output
#    tile instead of 36, counted and checked, and say what its rounding looks like in float32;
# 2. write a "same" convolution as a sum of k*k shifted GEMMs that read the input where it lies;
# 3. time the three ways (columns, Winograd, shifted GEMMs) on your own machine with
#    `minires.fast.using(...)`, and say why fewer multiplications need not mean less time.
#
# Open as a notebook with `jupytext --to notebook lessons/02b_fast_convolution.py`, run cell by
# cell in VS Code, or run `python lessons/02b_fast_convolution.py`.
# Run time (full run: 6 s, quick: 1 s) on 2 CPU cores; `MINIRES_QUICK=1` times smaller layers.

# %%
import contextlib
import io

import numpy as np

import minires as mr
from minires import fast
from minires import functional as F
from minires.fast import chunked_conv, shifted_gemm
from lesson_setup import QUICK, median_time, plt, show  # quick mode, figures, timing: lesson_setup.py


rng = np.random.default_rng(0)


def conv2d_im2col(x, w, stride=1, padding=0):
    """Lesson 2, section 2: the columns and one GEMM; (N, C_out, OH, OW) as a view."""
    C_out, C, kh, kw = w.shape
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    OH, OW = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    cols = F.im2col(x, kh, kw, stride, padding)                     # (C*kh*kw, N*OH*OW)
    return (w.reshape(C_out, -1) @ cols).reshape(C_out, N, OH, OW).swapaxes(0, 1)


def reference_conv(x, w, padding):
    """The reference convolution of lesson 2. minires prints a note the first time the reference
    ops run, so that nobody trains at their speed by accident; here we switch on purpose, and
    catch the note."""
    with contextlib.redirect_stderr(io.StringIO()), mr.reference_ops():
        return F.conv2d(mr.Tensor(x), mr.Tensor(w), padding=padding).data


# %% [markdown]
# ## 1. Winograd: fewer multiplications for 3x3 convolutions
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
# agrees with the reference convolution and with lesson 2's im2col + GEMM to rounding:

# %%
x64 = rng.standard_normal((2, 4, 9, 9))   # odd size: the last row and column of tiles hang over
w64 = rng.standard_normal((3, 4, 3, 3))
y_wino = winograd_conv3x3(x64, w64, padding=1)
y_ref = reference_conv(x64, w64, padding=1)
print("output", y_wino.shape, "| max |winograd - reference F.conv2d|:", np.abs(y_wino - y_ref).max(),
      "| max |winograd - im2col + GEMM|:", np.abs(y_wino - conv2d_im2col(x64, w64, 1, 1)).max())
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
# **Fewer multiplications, more passes over memory.** Counted in multiply-adds, a Winograd layer does 16 GEMMs of
# (K, C) @ (C, tiles), with about N*OH*OW/4 tiles, which is about 4 K C N OH OW, where im2col's
# one (K, 9C) @ (9C, N*OH*OW) does 9 K C N OH OW: 2.25 times fewer. But multiplications are not
# all that costs time. im2col writes its columns in one copy, and BLAS reads them in one long GEMM
# that runs close to the machine's peak. Winograd's transforms are dozens of NumPy additions,
# subtractions and copies over strided views of the input and the products, each a separate pass
# over memory that writes a new array; the transformed input V and the products M are each about
# four times the size of the input and the output. And its 16 GEMMs are 9 times shorter in the
# summed dimension, small ones at CIFAR widths. In minires's fast convolution Winograd would
# compute the forward and dx; the weight gradient keeps the columns. Which of the two effects wins
# is a question for a clock, not for a count: section 3 asks yours.

# %% [markdown]
# ## 2. No columns at all: a sum of shifted GEMMs
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
y_ref = reference_conv(xs, ws, padding=1)
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
# (`shifted_gemm_max_channels`, a knob) and keeps the columns above.

# %% [markdown]
# ## 3. Three ways, timed on your machine
#
# minires's fast convolution (`minires/fast/chunked_conv.py`) is a list of branches, and the first
# one that applies computes the convolution. Three of them can compute a stride-1 3x3 "same"
# convolution, and the knobs of `minires/fast/config.py` choose between them for one block of code:
#
#     with fast.using(shifted_gemm_max_channels=0): ...       # the im2col columns
#     with fast.using(winograd_min_channels=1): ...           # Winograd, from 1 channel on
#     with fast.using(shifted_gemm_max_channels=4096): ...    # shifted GEMMs at any width
#
# Outside the block the defaults hold again: Winograd off, shifted GEMMs up to 128 channels and
# the columns above. Those defaults were chosen by timing the three ways with
# `python -m benchmarks winograd` on one machine. Yours may differ, so here they are timed where
# you run this lesson: forward and backward (y, dx and dW) of one 3x3 layer, at the widths of a
# CIFAR ResNet and of ResNet-18's last stages. Each time is the median of a few steps, so on a busy
# machine the numbers move from run to run; `python -m benchmarks winograd` measures with more
# care. The cell also checks that the three ways compute the same dx and dW.

# %%
WAYS = {"columns": dict(shifted_gemm_max_channels=0),
        "Winograd": dict(shifted_gemm_max_channels=0, winograd_min_channels=1),
        "shifted GEMMs": dict(shifted_gemm_max_channels=4096)}
LAYERS = ([(4, 16, 16), (4, 64, 8)] if QUICK else        # (batch, channels, size)
          [(32, 16, 32), (32, 64, 16), (32, 128, 16), (32, 256, 8), (16, 512, 7)])
REPEATS = 3 if QUICK else 5


def branch_name(xb, wb):
    """The branch of the fast convolution that computes this 3x3 "same" layer, knobs as now."""
    return chunked_conv.branch_for(xb, wb, 1, 1).__name__.rsplit(".", 1)[-1]


def step_time(xb, wb, gyb, knobs):
    """Median seconds of forward + backward with these knobs; the branch; the dx and dW."""
    xt, wt = mr.Tensor(xb, requires_grad=True), mr.Tensor(wb, requires_grad=True)

    def step():
        xt.grad = wt.grad = None
        F.conv2d(xt, wt, padding=1).backward(gyb)
    with fast.using(**knobs):
        branch = branch_name(xb, wb)
        step()  # warm-up: buffers are allocated on the first call
        seconds = median_time(step, REPEATS)
    return seconds, branch, xt.grad, wt.grad


measured = {}
print(f"{'layer':>16} {'columns':>9} {'Winograd':>17} {'shifted GEMMs':>17}   minires's default")
for N, C, H in LAYERS:
    xb = rng.standard_normal((N, C, H, H)).astype(np.float32)
    wb = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    gyb = rng.standard_normal(xb.shape).astype(np.float32)
    runs = {name: step_time(xb, wb, gyb, knobs) for name, knobs in WAYS.items()}
    _, _, dx0, dw0 = runs["columns"]
    for name, (_, branch, dx, dw) in runs.items():
        assert np.allclose(dx, dx0, rtol=1e-3, atol=1e-4 * np.abs(dx0).max()), f"{branch}: dx"
        assert np.allclose(dw, dw0, rtol=1e-3, atol=1e-4 * np.abs(dw0).max()), f"{branch}: dW"
    measured[N, C, H] = {name: run[0] for name, run in runs.items()}
    t0 = measured[N, C, H]["columns"]
    print(f"{f'N{N} {C}ch {H}x{H}':>16} {t0 * 1e3:7.1f}ms "
          + " ".join(f"{measured[N, C, H][n] * 1e3:8.1f}ms ({measured[N, C, H][n] / t0:4.2f}x)"
                     for n in ("Winograd", "shifted GEMMs"))
          + f"   {branch_name(xb, wb)}")

fig, ax = plt.subplots(figsize=(7, 3.4))
for k, name in enumerate(WAYS):
    ratios = [measured[layer][name] / measured[layer]["columns"] for layer in LAYERS]
    ax.bar(np.arange(len(LAYERS)) + (k - 1) * 0.27, ratios, 0.27, label=name)
ax.axhline(1, color="black", lw=0.8)
ax.set_xticks(np.arange(len(LAYERS)), [f"N{N} {C}ch\n{H}x{H}" for N, C, H in LAYERS])
ax.set(ylabel="time / time of the columns",
       title="3x3 convolution, forward + backward, on this machine")
ax.legend()
show(fig, "02b_timing.png")

# %% [markdown]
# Read your table against the arithmetic. Winograd does 2.25 times fewer multiplications than the
# columns at even sizes (Exercise 2 counts them); where its ratio is above 1 on your machine, its
# extra passes over memory cost more than the multiplications save. The shifted GEMMs do *more*
# multiplications than the columns (the garbage outputs: 1.06x at 32x32, 1.31x at 7x7) and write
# no columns at all; where they win, copying the columns was the expensive part. The last column
# names the branch minires picks by default (`shifted_gemm`, or `flipped_dx`: the padded-width
# columns). If another way beats the default at the widths you train on, train inside
# `with fast.using(...)`: the knobs change how a convolution is computed, never what it computes
# (`tests/fast/` checks every setting against the reference ops, and the cell above compared dx
# and dW).
#
# ## Summary
#
# * Winograd's F(2x2, 3x3), Y = A^T[(G g G^T) * (B^T d B)]A, computes a stride-1 3x3 convolution
#   with 16 multiplications per 2x2 output tile instead of 36; its transforms are additions, and
#   extra passes over memory (`minires/fast/winograd.py`, off by default).
# * On a layout with shared padding, a "same" convolution is k*k GEMMs over shifted windows of the
#   input, summed in BLAS: no columns are written (`minires/fast/shifted_gemm.py`).
# * Fewer multiplications are not less time: which way is fastest depends on the layer and the
#   machine, so minires's defaults come from measurements, and `fast.using(...)` lets you take
#   your own.
#
# ## Exercises
#
# Each exercise has a checker. Write your answer, then uncomment the `check_exercise_...` line.
# Worked solutions are at the very end, under **Solutions**.
#
# **Exercise 1: Winograd along a row.** Write `winograd_row(d, g)`, the n outputs of a 3-tap
# correlation over n + 2 inputs d (n even), y[k] = d[k] g0 + d[k+1] g1 + d[k+2] g2, with F(2, 3)
# on tiles of 4 inputs that overlap by 2, as a layer tiles its rows. The checker passes d as a list
# of `Counted` numbers (section 1; use only +, - and * on them) and g as plain numbers. It compares
# your outputs with NumPy's `np.correlate` and counts the multiplications that touch d: 2 per
# output, where the direct form needs 3.

# %%
def check_exercise_1(winograd_row):
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
    print("exercise 1: correct")


def winograd_row(d, g):
    raise NotImplementedError


# check_exercise_1(winograd_row)

# %% [markdown]
# **Exercise 2: what Winograd saves on a real layer.** Write `multiplications(N, C, K, H, W)`, the
# number of multiplications of a stride-1 3x3 "same" convolution from an (N, C, H, W) input to K
# channels, as a pair (direct, winograd). Direct counts the definition's 9 per output and input
# channel; winograd counts the 16 GEMMs of F(2x2, 3x3) over 2x2 output tiles, where a tile that
# hangs over the edge of an odd-sized output is computed whole. The filter transform, done once per
# layer, is not counted. The checker tries CIFAR and ImageNet layers and prints the saving.

# %%
def check_exercise_2(multiplications):
    cases = [(32, 16, 16, 32, 32), (32, 64, 64, 16, 16), (16, 512, 512, 7, 7), (1, 3, 5, 9, 4),
             (2, 1, 1, 1, 1)]
    for N, C, K, H, W in cases:
        tiles = N * -(-H // 2) * -(-W // 2)  # ceil(H/2) * ceil(W/2) per image
        want = (9 * N * C * K * H * W, 16 * K * C * tiles)
        got = tuple(multiplications(N, C, K, H, W))
        assert got == want, f"N={N}, C={C}, K={K}, {H}x{W}: you say {got}, expected {want}"
        print(f"  N{N} {C} -> {K} channels, {H}x{W}: direct / Winograd = {want[0] / want[1]:.2f}")
    print("exercise 2: correct")


def multiplications(N, C, K, H, W):
    raise NotImplementedError


# check_exercise_2(multiplications)

# %% [markdown]
# ## Solutions
#
# Try the exercises first.
#
# **1.** Transform the filter once, then run `f23` from section 1 on the tiles d[0:4], d[2:6], ...:
# each gives two outputs with 4 multiplications.

# %%
def winograd_row_solution(d, g):
    Gg = [g[0], (g[0] + g[1] + g[2]) / 2, (g[0] - g[1] + g[2]) / 2, g[2]]  # once per filter
    y = []
    for t in range(0, len(d) - 2, 2):
        y.extend(f23(d[t:t + 4], Gg))
    return y


check_exercise_1(winograd_row_solution)

# %% [markdown]
# **2.** A "same" output is H x W. Direct: 9 multiplications per output and input channel.
# Winograd: ceil(H/2) * ceil(W/2) tiles per image, and each of the 16 GEMMs multiplies a (K, C)
# matrix by a (C, tiles) one. The saving is 36/16 = 2.25 at even sizes and less at odd ones, where
# the last row and column of tiles compute outputs that are thrown away (1.72 at 7x7).

# %%
def multiplications_solution(N, C, K, H, W):
    tiles = N * ((H + 1) // 2) * ((W + 1) // 2)
    return 9 * N * C * K * H * W, 16 * K * C * tiles


check_exercise_2(multiplications_solution)
