"""Convolution as a sum of shifted GEMMs: stride-1 "same" convolutions with no im2col.

im2col writes kh*kw copies of the input so that one GEMM can read them. But a kernel offset
(i, j) only shifts where the input is read, so on a layout where that shift is a fixed distance
in memory, each offset's product can read the input where it lies:

    y = sum_{i,j} W[:, :, i, j] @ X[:, o_ij : o_ij + L]        o_ij = i*Wp + j

with X the (C, ...) padded input flattened per channel and L the outputs. kh*kw GEMMs with
K = C instead of one with K = C*kh*kw; each adds into y (BLAS's beta = 1, ``blas.window_sum``)
while y's tile is in registers, and BLAS's own packing is the only copy of the input. (The
``shifted_gemm_via`` knob set to "matmul" runs the same GEMMs through ``np.matmul``, which cannot
add into its output: a product into a buffer, then ``+=``, one more pass over y per tap.
``python -m benchmarks winograd`` times both.)

Shared padding. For a "same" convolution (stride 1, odd k, p = (k - 1)/2) lay a chunk of n
images out in rows of Wp = W + p numbers (the pixels, then p zeros that are also the left
padding of the next row) and Hs = H + p rows per image (the p zero rows below one image are the
padding above the next), after p*Wp + p zeros. Output t = (m*Hs + r)*Wp + q of image m reads,
for offset (i, j), element t + i*Wp + j: every offset is one window of the same buffer. The
outputs with r >= H or q >= W read across a border: garbage, computed and dropped, which is
(H + p)(W + p)/(HW) times the work (1.06x at 32x32, 1.27x at 8x8 for 3x3).

Backward, on the same grid:

    dW[:, :, i, j] = dY @ X[:, o_ij : o_ij + L]^T                 (dY zero on the garbage outputs)
    dX             = sum_{i,j} W[:, :, k-1-i, k-1-j]^T @ dY[:, o_ij : o_ij + L]

the second being the same-padded convolution of dY with the flipped kernel
(``flipped_dx.py``). One buffer of dY (zeros on the garbage and around the images) serves both.
Both multiply zeros the reference never multiplies, which matters only for NaN and inf: see
``nonfinite.py``.
"""
import numpy as np

from .. import backend
from ..functional.layout import channels_first_2d
from . import blas, columns
from .config import knobs
from .flipped_dx import flipped_kernel
from .memory import workspace
from .nonfinite import all_finite
from .threads import map_chunks, sum_in_chunk_order

# The knobs read here (config.py):
#
# shifted_gemm_max_channels (128): convolutions with more input or output channels keep the
#   padded-width columns. The garbage outputs cost (H + p)(W + p)/(HW) times the
#   multiplications, and with many channels the GEMMs, not the copies, take the time: ``python
#   -m benchmarks winograd`` (idle Intel Xeon, AVX-512) found these GEMMs 1.25x / 1.12x / 1.02x
#   faster than the columns at 16 / 64 / 128 channels, even at 256 channels of 8x8, and 1.43x
#   slower at 512 channels of 7x7. 0 turns them off.
# shifted_gemm_chunk_bytes (2 MiB): chunks of images whose buffers (input, output and, in the
#   backward, dY) take at most this many bytes: small enough to stay in a core's cache between
#   the copy in and the GEMMs (449, 446, 466 ms a ResNet-20 step for 1, 2, 4 MiB).
# shifted_gemm_via ("blas"): how the GEMMs add up, "blas" (beta = 1, ``blas.py``) or "matmul"
#   (1.23x the ResNet-20 step's time, and other last bits on one-channel inputs).


def applies(x, w, stride, padding):
    """True when this file computes the convolution: CPU float arrays, stride 1, odd square "same"
    kernel > 1, at most ``shifted_gemm_max_channels`` channels in and out, and either a BLAS to
    call (``blas.available``) or ``shifted_gemm_via="matmul"``."""
    C_out, C, kh, kw = w.shape
    same = stride == 1 and kh == kw > 1 and kh % 2 == 1 and 2 * padding == kh - 1
    return (same and max(C, C_out) <= knobs.shifted_gemm_max_channels
            and not backend.is_gpu_array(x) and x.dtype == w.dtype
            and x.dtype in (np.float32, np.float64)
            and (knobs.shifted_gemm_via == "matmul" or blas.available()))


def grid(H, W, p):
    """(Hs, Wp): rows per image and numbers per row of the shared-padding layout."""
    return H + p, W + p


def taps(w):
    """W (C_out, C, k, k) -> (k*k, C_out, C): tap (i, j) is the matrix W[:, :, i, j]."""
    C_out, C, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(kh * kw, C_out, C)


def offsets(k, Wp):
    """Where tap (i, j) starts reading, i*Wp + j, in tap order."""
    return [i * Wp + j for i in range(k) for j in range(k)]


def shared_padding(a, k, p, name):
    """(n, C, H, W) images -> (C, n*Hs*Wp + (k-1)*Wp + k-1) buffer of the shared-padding layout.

    The images start at p*Wp + p; everything else is zero. Returns the buffer and that start.
    """
    n, C, H, W = a.shape
    Hs, Wp = grid(H, W, p)
    start, L = p * Wp + p, n * Hs * Wp
    buf = workspace((C, L + (k - 1) * (Wp + 1)), a.dtype, a, name)
    buf[:, :start] = 0
    body = buf[:, start:start + L].reshape(C, n, Hs, Wp)
    body[:, :, :H, :W] = a.swapaxes(0, 1)
    body[:, :, H:] = 0
    body[:, :, :H, W:] = 0
    buf[:, start + L:] = 0
    return buf, start


def window_sum(a, b, where, out):
    """out = sum_k a[k] @ b[:, o_k : o_k + N] (``blas.window_sum``, or np.matmul and +=)."""
    if knobs.shifted_gemm_via == "blas":
        return blas.window_sum(a, b, where, out)
    N = out.shape[1]
    product = workspace(out.shape, out.dtype, out, "shifted_product")
    np.matmul(a[0], b[:, where[0]:where[0] + N], out=out)
    for k, o in enumerate(where[1:], 1):
        out += np.matmul(a[k], b[:, o:o + N], out=product)
    return out


def window_products(a, b, where, out):
    """out[k] = a @ b[:, o_k : o_k + N].T for each k (``blas.window_products``, or np.matmul)."""
    if knobs.shifted_gemm_via == "blas":
        return blas.window_products(a, b, where, out)
    N = a.shape[1]
    for k, o in enumerate(where):
        np.matmul(a, b[:, o:o + N].T, out=out[k])
    return out


def forward(x, w, b, stride, padding):
    """y = conv(x, w) + b as (C_out, N*H*W), channel-major; x (N, C, H, W), stride 1, padding p."""
    C_out, C, k, _ = w.shape
    N, _, H, W = x.shape
    p = padding
    Hs, Wp = grid(H, W, p)
    W_taps, where = taps(w), offsets(k, Wp)
    y = np.empty((C_out, N * H * W), dtype=x.dtype)

    def run(lo, hi):
        n = hi - lo
        buf, _ = shared_padding(x[lo:hi], k, p, "shifted_x")
        out = workspace((C_out, n * Hs * Wp), x.dtype, x, "shifted_out")
        window_sum(W_taps, buf, where, out)
        y_n = y[:, lo * H * W:hi * H * W].reshape(C_out, n, H, W)
        y_n[...] = out.reshape(C_out, n, Hs, Wp)[:, :, :H, :W]
        if b is not None:
            y_n += b[:, None, None, None]

    map_chunks(N, knobs.shifted_gemm_chunk_bytes // ((C + C_out) * Hs * Wp * x.itemsize), run)
    return y


def backward(x, w, gy, stride, padding, need_x, need_w):
    """(dx as (C, N*H*W) channel-major or None, dW (C_out, C, k, k) or None) of the above."""
    if need_x and not all_finite(w):  # flipped weights times dY's zeros: see nonfinite.py
        return columns.backward(x, w, gy, stride, padding, need_x, need_w)
    C_out, C, k, _ = w.shape
    N, _, H, W = x.shape
    p = padding
    Hs, Wp = grid(H, W, p)
    L_image, where = Hs * Wp, offsets(k, Wp)
    flipped = taps(flipped_kernel(w)) if need_x else None
    gx = np.empty((C, N * H * W), dtype=gy.dtype) if need_x else None

    def run(lo, hi):
        n = hi - lo
        g_buf, start = shared_padding(gy[lo:hi], k, p, "shifted_gy")
        g_wide = g_buf[:, start:start + n * L_image]  # dY on the grid, zero on the garbage outputs
        gw = None
        if need_w:
            x_buf, _ = shared_padding(x[lo:hi], k, p, "shifted_x")
            gw = np.empty((k * k, C_out, C), dtype=gy.dtype)
            window_products(g_wide, x_buf, where, gw)
            if not all_finite(gw):  # perhaps 0 * x on a garbage output: see nonfinite.py
                g2 = channels_first_2d(gy[lo:hi])
                gw = taps(columns.weight_grad(x[lo:hi], g2, w, 1, p).reshape(w.shape))
        if need_x:
            out = workspace((C, n * L_image), gy.dtype, gy, "shifted_out")
            window_sum(flipped, g_buf, where, out)
            gx_n = gx[:, lo * H * W:hi * H * W].reshape(C, n, H, W)
            gx_n[...] = out.reshape(C, n, Hs, Wp)[:, :, :H, :W]
        return gw

    per_image = (C_out + (C if need_w else 0) + (C if need_x else 0)) * L_image * gy.itemsize
    parts = map_chunks(N, knobs.shifted_gemm_chunk_bytes // per_image, run)
    gw = None
    if need_w:
        gw = sum_in_chunk_order(parts, np.zeros((k * k, C_out, C), dtype=gy.dtype))
        gw = np.ascontiguousarray(gw.reshape(k, k, C_out, C).transpose(2, 3, 0, 1))
    return gx, gw
