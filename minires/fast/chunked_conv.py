"""The convolution over chunks of images: ``ChunkedConv2d``, the fast twin of ``functional.conv.Conv2d``.

Chunks. On the CPU the batch is cut into chunks of a few images whose columns take at most
``CHUNK_BYTES``; each chunk's im2col copy and its GEMM run back to back on one thread, so the GEMM
reads the columns from cache rather than from memory, and the chunks run side by side on the
threads of ``threads.py``.

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

Stride-1 "same" convolutions (odd square kernels, p = (k - 1)/2) of up to ``shifted_gemm.MAX_CHANNELS``
channels skip columns altogether: they are sums of shifted GEMMs (``shifted_gemm.py``), whenever
NumPy's BLAS can be called directly.

Input gradient without col2im (stride 1): dx is a convolution of dy with the kernel flipped in
space and its in/out channels swapped, with padding kh - 1 - p: another contiguous gather and
GEMM instead of col2im's scatter-add.
"""
from .. import backend
from ..functional.conv import Conv2d, check_geometry, col2im, im2col, out_size, strided_view
from ..functional.layout import channels_first_2d, from_channels_first_2d
from . import shifted_gemm
from .memory import workspace
from .threads import map_chunks
from .winograd import filter_transform, flipped_filters, winograd_conv3x3


def wide_width(W, kw, padding):
    """Row length Wp of the padded-width layout for width W, kernel width kw, padding p."""
    return W + max(padding, 2 * padding - kw + 1)


def im2col_wide(a, kh, kw, padding=0, out=None):
    """Stride-1 columns on the padded width: (N, C, H, W) -> (C*kh*kw, N*OH*Wp), Wp = wide_width(W, kw, p).

    cols[(c*kh + i)*kw + j, (n*OH + r)*Wp + q] = flat(xpad[n, c])[(r + i)*Wp + q + j]; for q < OW
    that is im2col's column (n, r, q), for q >= OW a wrapped-around value to be ignored.
    """
    OH, OW = check_geometry("im2col_wide", a.shape, kh, kw, 1, padding)
    xp = backend.get_array_module(a)
    N, C, H, W = a.shape
    Hp, Wp = H + 2 * padding, wide_width(W, kw, padding)
    # kw - 1 zeros of slack: the last image's garbage outputs read that far past its end.
    flat = xp.zeros((C, N * Hp * Wp + kw - 1), dtype=a.dtype)
    flat[:, :N * Hp * Wp].reshape(C, N, Hp, Wp)[:, :, padding:padding + H, padding:padding + W] = a.swapaxes(0, 1)
    e = flat.itemsize
    windows = strided_view(xp, flat, (C, kh, kw, N, OH * Wp), (flat.strides[0], Wp * e, e, Hp * Wp * e, e))
    if out is None:
        out = xp.empty((C * kh * kw, N * OH * Wp), dtype=a.dtype)
    out.reshape(C, kh, kw, N, OH * Wp)[...] = windows
    return out


def drop_wrapped(wide, out, OW):
    """Copy the valid part of a (C, n*OH*Wp) padded-width result into ``out`` (C, n*OH*OW)."""
    C, n_OH_OW = out.shape
    rows = n_OH_OW // OW
    out.reshape(C, rows, OW)[...] = wide.reshape(C, rows, -1)[:, :, :OW]


# On the CPU a convolution runs over chunks of images whose columns take at most this many bytes:
# small enough that a chunk's columns are still in the cache when its GEMM reads them back, big
# enough that each GEMM is worth a call. (2-4 MiB measured best on a 2-core EPYC, 32 MiB L3.)
CHUNK_BYTES = 4 << 20


# Stride-1 3x3 convolutions with at least this many input and output channels would use Winograd
# F(2x2, 3x3) (``winograd.py``) for the forward and the input gradient. Its transforms are memory
# passes that can pay only when the GEMMs are large, and ``python -m benchmarks winograd`` found it
# slower at every width from 16 to 512 channels on an idle AVX-512 CPU (benchmarks/README.md), so
# it is off: None. Set a channel count to turn it on.
WINOGRAD_MIN_CHANNELS = None


def uses_winograd(C, C_out, kh, kw, stride, padding):
    """True when the Winograd branch computes this convolution's forward and input gradient."""
    m = WINOGRAD_MIN_CHANNELS
    return m is not None and kh == kw == 3 and stride == 1 and padding <= 2 and min(C, C_out) >= m


class ChunkedConv2d(Conv2d):
    """The reference ``Conv2d`` over chunks of images on the threads: same arguments, same function.

    For each chunk of images n in [lo, hi) (on the GPU, the whole batch at once):

        forward    y[n]  = W @ im2col(x[n]) + b
        backward   dW   += dy[n] @ im2col(x[n])^T          dx[n] = col2im(W^T @ dy[n])

    The chunks share nothing but the dW sum, which adds their parts in chunk order, so the result
    is the same however many threads ran them (``threads.map_chunks``). The columns live in
    per-thread workspaces (``memory.workspace``), rebuilt in the backward rather than kept.

    Shortcuts, all exact: a 1x1 stride-1 convolution needs no im2col (its columns are x itself,
    viewed as (C, N*H*W)); a stride-1 "same" convolution is a sum of shifted GEMMs with no
    columns (``shifted_gemm.py``, whenever ``shifted_gemm.applies``); other stride-1 convolutions
    build their columns on the padded width (``im2col_wide``); and for stride 1 the input gradient
    is computed as a convolution of dy with the flipped kernel (a gather: im2col + GEMM) instead of GEMM + col2im (a scatter-add), which
    moves less memory. ``im2col`` and ``col2im`` serve every other stride. When ``uses_winograd``
    (off by default), stride-1 3x3 convolutions compute the forward and the input gradient with
    Winograd's F(2x2, 3x3) instead (``winograd.py``); the weight gradient keeps the columns.
    """

    @staticmethod
    def _chunk(x, per_image):
        """Images per chunk, given the column entries one image needs."""
        if backend.is_gpu_array(x):
            return x.shape[0]
        return CHUNK_BYTES // max(1, per_image * x.dtype.itemsize)

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        s, p = self.stride, self.padding
        C_out, C, kh, kw = w.shape
        N, _, H, W = x.shape
        OH, OW = out_size(H, kh, s, p), out_size(W, kw, s, p)
        pointwise, wide = kh == kw == 1 and s == 1 and p == 0, s == 1
        winograd = uses_winograd(C, C_out, kh, kw, s, p)
        self.x, self.w, self.has_bias = x, w, b is not None
        self.shifted = not winograd and shifted_gemm.applies(x, w, s, p)
        if self.shifted:
            return from_channels_first_2d(shifted_gemm.conv2d_forward(x, w, b, p), (N, C_out, OH, OW))
        U = filter_transform(w) if winograd else None
        S, w2 = OH * OW, w.reshape(C_out, -1)
        y = xp.empty((C_out, N * S), dtype=x.dtype)  # channel-major: the next layer's layout

        def run(lo, hi):
            x_n, y_n, n = x[lo:hi], y[:, lo * S:hi * S], hi - lo
            if winograd:
                winograd_conv3x3(x_n, w, p, U=U, out=y_n.reshape(C_out, n, OH, OW))
            elif pointwise:
                xp.matmul(w2, channels_first_2d(x_n), out=y_n)
            elif wide:
                cols = im2col_wide(x_n, kh, kw, p, out=workspace((C * kh * kw, n * OH * wide_width(W, kw, p)), x.dtype, x))
                drop_wrapped(xp.matmul(w2, cols, out=workspace((C_out, cols.shape[1]), x.dtype, x, "out")), y_n, OW)
            else:
                xp.matmul(w2, im2col(x_n, kh, kw, s, p, out=workspace((C * kh * kw, n * S), x.dtype, x)), out=y_n)
            if b is not None:
                y_n += b[:, None]

        per_image = C * kh * kw * (OH * wide_width(W, kw, p) if wide else S)
        if winograd:  # the transformed tiles: 16 values per 2x2 outputs, in and out
            per_image = 4 * (C + C_out) * S
        map_chunks(N, self._chunk(x, per_image), run)
        return from_channels_first_2d(y, (N, C_out, OH, OW))

    def backward(self, gy):
        need_x, need_w = self.needs_input_grad[:2]
        if self.shifted:
            gx2, gw = shifted_gemm.conv2d_backward(self.x, self.w, gy, self.padding, need_x, need_w)
        else:
            gx2, gw = self._backward_on_columns(gy, need_x, need_w)
        gb = channels_first_2d(gy).sum(axis=1) if self.has_bias and self.needs_input_grad[2] else None
        gx = from_channels_first_2d(gx2, self.x.shape) if need_x else None
        return (gx, gw, gb) if self.has_bias else (gx, gw)

    def _backward_on_columns(self, gy, need_x, need_w):
        """(dx as a channel-major (C, N*H*W) matrix or None, dW or None), over chunks of images."""
        x, w, s, p = self.x, self.w, self.stride, self.padding
        xp = backend.get_array_module(gy)
        C_out, C, kh, kw = w.shape
        N, _, H, W = x.shape
        OH, OW = gy.shape[2], gy.shape[3]
        S, HW, w2 = OH * OW, H * W, w.reshape(C_out, -1)
        pointwise = kh == kw == 1 and s == 1 and p == 0
        flipped = s == 1 and kh == kw and p < kh and not pointwise
        winograd = need_x and uses_winograd(C, C_out, kh, kw, s, p)
        U_flip = filter_transform(flipped_filters(w)) if winograd else None
        if flipped:  # dx = conv(dy, w flipped in space with in/out channels swapped, padding q = kh-1-p)
            w_flip, q = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1), kh - 1 - p
        gx2 = xp.empty((C, N * HW), dtype=gy.dtype) if need_x else None

        def ws(rows, cols, name="cols"):
            return workspace((rows, cols), gy.dtype, gy, name)

        def run(lo, hi):
            x_n, gy_n, n = x[lo:hi], gy[lo:hi], hi - lo
            g2 = channels_first_2d(gy_n)  # (C_out, n*OH*OW)
            gw = None
            if need_w:  # (the padded-width columns would need dy on the padded width too: no gain)
                cols = channels_first_2d(x_n) if pointwise else im2col(x_n, kh, kw, s, p, out=ws(C * kh * kw, n * S))
                gw = g2 @ cols.T
            if need_x:
                gx_n = gx2[:, lo * HW:hi * HW]
                if winograd:
                    winograd_conv3x3(gy_n, None, 2 - p, U=U_flip, out=gx_n.reshape(C, n, H, W))
                elif pointwise:
                    xp.matmul(w2.T, g2, out=gx_n)
                elif flipped:
                    cols = im2col_wide(gy_n, kh, kw, q, out=ws(C_out * kh * kw, n * H * wide_width(OW, kw, q)))
                    drop_wrapped(xp.matmul(w_flip, cols, out=ws(C, cols.shape[1], "out")), gx_n, W)
                else:
                    dcols = xp.matmul(w2.T, g2, out=ws(C * kh * kw, n * S))
                    gx_n.reshape(C, n, H, W)[...] = col2im(dcols, x_n.shape, kh, kw, s, p).swapaxes(0, 1)
            return gw

        per_image = max(C * kh * kw * S, C_out * kh * kw * H * wide_width(OW, kw, q) if flipped else 0)
        if winograd:
            per_image = max(C * kh * kw * S, 4 * (C + C_out) * H * W)
        parts = map_chunks(N, self._chunk(x, per_image), run)
        gw = None
        if need_w:
            gw = xp.zeros(w2.shape, dtype=gy.dtype)
            for part in parts:  # in chunk order: the same sum on any number of threads
                gw += part
            gw = gw.reshape(w.shape)
        return gx2, gw


