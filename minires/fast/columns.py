"""The convolution on im2col columns, over chunks of images: the branch that takes any geometry.

For each chunk of images n in [lo, hi) (on the GPU, the whole batch at once):

    forward    y[n] = W @ cols(x[n]) + b
    backward   dW  += dy[n] @ cols(x[n])^T        dx[n] = col2im(W^T @ dy[n])

Chunks. On the CPU the batch is cut into chunks of a few images whose columns take at most
``chunk_bytes`` (a knob, ``config.py``); each chunk's im2col copy and its GEMM run back to back on
one thread, so the GEMM reads the columns from cache rather than from memory, and the chunks run
side by side on the threads of ``threads.py``. The chunks share nothing but the dW sum, which
adds their parts in chunk order. The columns live in per-thread workspaces
(``memory.workspace``), rebuilt in the backward rather than kept.

Padded-width columns (stride 1). im2col copies each (c, i, j) row of the columns as N*OH runs of
only OW numbers, and such a copy is bound by the count of runs, not by bytes. For stride 1 there
is a layout with long runs. Lay the padded image out in rows of Wp numbers: p zeros, the W
pixels, zeros up to Wp. The p zeros at the start of row r+1 double as the right padding of row r,
so Wp = W + p is enough (W + max(p, 2p - kw + 1) in general). Now compute the output on a grid of
that width Wp: output t = r*Wp + q of image n reads, for kernel offset (i, j), element
i*Wp + j + t of the flattened padded image, so row (c, i, j) of the columns is ONE run of OH*Wp
numbers per image (3-5x faster to copy). The Wp - OW extra outputs per row (kw - 1 - p of them;
one for a 3x3 "same" convolution) wrap around into the next row: garbage, which the GEMM computes
(it grows by Wp/OW) and ``drop_wrapped`` leaves out of the result.

The input gradient here is col2im's scatter-add; ``flipped_dx.py`` replaces it for stride 1.
"""
from .. import backend
from ..functional.conv import check_geometry, col2im, im2col, out_size, strided_view
from ..functional.layout import channels_first_2d
from .config import knobs
from .memory import workspace
from .threads import map_chunks, sum_in_chunk_order


def applies(x, w, stride, padding):
    """Every convolution: the branch that the others fall back on."""
    return True


def wide_width(W, kw, padding):
    """Row length Wp of the padded-width layout for width W, kernel width kw, padding p."""
    return W + max(padding, 2 * padding - kw + 1)


def im2col_wide(a, kh, kw, padding=0, out=None):
    """Stride-1 columns on the padded width: (N, C, H, W) -> (C*kh*kw, N*OH*Wp).

    Wp = wide_width(W, kw, p); cols[(c*kh + i)*kw + j, (n*OH + r)*Wp + q] =
    flat(xpad[n, c])[(r + i)*Wp + q + j]; for q < OW that is im2col's column (n, r, q), for
    q >= OW a wrapped-around value to be ignored.
    """
    OH, OW = check_geometry("im2col_wide", a.shape, kh, kw, 1, padding)
    xp = backend.get_array_module(a)
    N, C, H, W = a.shape
    Hp, Wp = H + 2 * padding, wide_width(W, kw, padding)
    # kw - 1 zeros of slack: the last image's garbage outputs read that far past its end.
    flat = xp.zeros((C, N * Hp * Wp + kw - 1), dtype=a.dtype)
    image = flat[:, :N * Hp * Wp].reshape(C, N, Hp, Wp)
    image[:, :, padding:padding + H, padding:padding + W] = a.swapaxes(0, 1)
    e = flat.itemsize
    windows = strided_view(xp, flat, (C, kh, kw, N, OH * Wp),
                           (flat.strides[0], Wp * e, e, Hp * Wp * e, e))
    if out is None:
        out = xp.empty((C * kh * kw, N * OH * Wp), dtype=a.dtype)
    out.reshape(C, kh, kw, N, OH * Wp)[...] = windows
    return out


def drop_wrapped(wide, out, OW):
    """Copy the valid part of a (C, n*OH*Wp) padded-width result into ``out`` (C, n*OH*OW)."""
    C, n_OH_OW = out.shape
    rows = n_OH_OW // OW
    out.reshape(C, rows, OW)[...] = wide.reshape(C, rows, -1)[:, :, :OW]


def images_per_chunk(x, per_image):
    """Images per chunk, given the entries one image needs (``chunk_bytes``; GPU: the batch).

    Small enough that a chunk's columns are still in the cache when its GEMM reads them back,
    big enough that each GEMM is worth a call: 2-4 MiB measured best on a 2-core EPYC (32 MiB
    L3), 4 MiB of 0.5-8 MiB on a 2-core AVX-512 Xeon (benchmarks/README.md).
    """
    if backend.is_gpu_array(x):
        return x.shape[0]
    return knobs.chunk_bytes // max(1, per_image * x.dtype.itemsize)


def forward(x, w, b, stride, padding):
    """y = W @ cols(x) + b as a (C_out, N*OH*OW) channel-major matrix, chunk by chunk."""
    xp = backend.get_array_module(x)
    s, p = stride, padding
    C_out, C, kh, kw = w.shape
    N, _, H, W = x.shape
    OH, OW = out_size(H, kh, s, p), out_size(W, kw, s, p)
    S, w2, wide = OH * OW, w.reshape(C_out, -1), s == 1
    y = xp.empty((C_out, N * S), dtype=x.dtype)  # channel-major: the next layer's layout

    def run(lo, hi):
        x_n, y_n, n = x[lo:hi], y[:, lo * S:hi * S], hi - lo
        if wide:
            cols = workspace((C * kh * kw, n * OH * wide_width(W, kw, p)), x.dtype, x)
            im2col_wide(x_n, kh, kw, p, out=cols)
            out = workspace((C_out, cols.shape[1]), x.dtype, x, "out")
            drop_wrapped(xp.matmul(w2, cols, out=out), y_n, OW)
        else:
            cols = im2col(x_n, kh, kw, s, p, out=workspace((C * kh * kw, n * S), x.dtype, x))
            xp.matmul(w2, cols, out=y_n)
        if b is not None:
            y_n += b[:, None]

    per_image = C * kh * kw * (OH * wide_width(W, kw, p) if wide else S)
    map_chunks(N, images_per_chunk(x, per_image), run, like=x)
    return y


def weight_grad(x_n, g2, w, stride, padding):
    """One chunk's part of dW, dy (C_out, n*OH*OW) @ cols(x)^T, as a (C_out, C*kh*kw) matrix.

    (Columns on the padded width would need dy on the padded width too: no gain.)"""
    C_out, C, kh, kw = w.shape
    cols = workspace((C * kh * kw, g2.shape[1]), g2.dtype, g2)
    return g2 @ im2col(x_n, kh, kw, stride, padding, out=cols).T


def backward_in_chunks(x, w, gy, need_x, need_w, per_image, weight_grad, input_grad):
    """(dx as a channel-major (C, N*H*W) matrix or None, dW or None), over chunks of images.

    For each chunk, ``weight_grad(x_n, g2)`` returns its part of dW as a (C_out, C*kh*kw) matrix
    and ``input_grad(x_n, gy_n, g2, gx_n)`` writes its dx into the (C, n*H*W) matrix gx_n, where
    g2 is dy as (C_out, n*OH*OW); ``per_image`` entries of workspace set the chunk size.
    """
    xp = backend.get_array_module(gy)
    C_out = w.shape[0]
    N, C, H, W = x.shape
    HW = H * W
    gx2 = xp.empty((C, N * HW), dtype=gy.dtype) if need_x else None

    def run(lo, hi):
        x_n, gy_n = x[lo:hi], gy[lo:hi]
        g2 = channels_first_2d(gy_n)  # (C_out, n*OH*OW)
        gw = weight_grad(x_n, g2) if need_w else None
        if need_x:
            input_grad(x_n, gy_n, g2, gx2[:, lo * HW:hi * HW])
        return gw

    parts = map_chunks(N, images_per_chunk(x, per_image), run, like=gy)
    gw = None
    if need_w:
        gw = sum_in_chunk_order(parts, xp.zeros((C_out, w[0].size), dtype=gy.dtype))
        gw = gw.reshape(w.shape)
    return gx2, gw


def backward(x, w, gy, stride, padding, need_x, need_w):
    """dW from the columns, dx = col2im(W^T @ dy): the scatter-add, for any stride."""
    xp = backend.get_array_module(gy)
    C_out, C, kh, kw = w.shape
    N, _, H, W = x.shape
    S, w2 = gy.shape[2] * gy.shape[3], w.reshape(C_out, -1)

    def input_grad(x_n, gy_n, g2, gx_n):
        dcols = xp.matmul(w2.T, g2, out=workspace((C * kh * kw, g2.shape[1]), gy.dtype, gy))
        dx = col2im(dcols, x_n.shape, kh, kw, stride, padding)
        gx_n.reshape(C, x_n.shape[0], H, W)[...] = dx.swapaxes(0, 1)

    return backward_in_chunks(x, w, gy, need_x, need_w, C * kh * kw * S,
                              lambda x_n, g2: weight_grad(x_n, g2, w, stride, padding), input_grad)
