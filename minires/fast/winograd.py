"""Winograd minimal filtering F(2x2, 3x3) (Lavin & Gray 2016, "Fast algorithms for convolutional
neural networks"): a stride-1 3x3 convolution with 16 multiplications per 2x2 output tile instead
of 36.

In one dimension, two outputs of a 3-tap filter g over four inputs d,

    y0 = d0 g0 + d1 g1 + d2 g2        y1 = d1 g0 + d2 g1 + d3 g2        (6 multiplications)

are also y = A^T [(G g) * (B^T d)] with an elementwise product of length 4 (4 multiplications):

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Nesting the 1-D algorithm gives the 2-D one, for a 4x4 input tile d and a 3x3 filter g:

    Y = A^T [ (G g G^T) * (B^T d B) ] A       (2x2 outputs from 4x4 = 16 products, not 2*2*9 = 36)

With C input and K output channels, U = G g G^T (per filter) and V = B^T d B (per input tile) are
computed once, and the sum over channels becomes 16 independent GEMMs, one per position of the
4x4 transformed tile:  M[xi, nu] = U[xi, nu] (K, C) @ V[xi, nu] (C, tiles).  Then Y = A^T M A.

The transforms are a few additions over whole arrays, so they cost memory passes, not
multiplications; the method pays only when the GEMMs dominate (many channels). Its float32 error
is of im2col's order (the transforms add and subtract before the products, but the sums over
channels are 9x shorter): bounded in ``tests/fast/test_winograd.py``. Works on NumPy and CuPy
arrays.

As a branch of the fast convolution (``chunked_conv.py``; the end of this file) it computes the
forward and the input gradient of stride-1 3x3 convolutions with at least
``winograd_min_channels`` channels in and out (a knob, ``config.py``), chunk by chunk; the weight
gradient keeps the im2col columns. It is off (None) by default: ``python -m benchmarks winograd``
found it slower than the default at every width from 16 to 512 channels on an idle AVX-512 CPU
(benchmarks/README.md). ``with minires.fast.using(winograd_min_channels=64):`` turns it on.
Where x, the weights or dY hold a NaN or an inf, the columns do the work (``nonfinite.py``).
"""
from .. import backend
from . import columns, flipped_dx
from .config import knobs
from .flipped_dx import flipped_kernel
from .nonfinite import all_finite
from .threads import map_chunks


def filter_transform(w):
    """U = G g G^T for every filter: (K, C, 3, 3) -> (4, 4, K, C)."""
    xp = backend.get_array_module(w)
    G = xp.asarray([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=w.dtype)
    return xp.ascontiguousarray((G @ w @ G.T).transpose(2, 3, 0, 1))  # (K, C, 4, 4) -> (4, 4, K, C)


def _input_transform_1d(d0, d1, d2, d3):
    """B^T d for four arrays d0..d3: the rows of the 1-D input transform."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _output_transform_1d(m0, m1, m2, m3):
    """A^T m: two outputs from four transformed values."""
    return m0 + m1 + m2, m1 - m2 - m3


def winograd_conv3x3(x, w, padding=1, U=None, out=None):
    """y = conv(x, w) for a 3x3 kernel, stride 1: (N, C, H, W), (K, C, 3, 3) -> (N, K, OH, OW),
    OH = H + 2p - 2 and OW = W + 2p - 2.

    ``U`` may hold ``filter_transform(w)`` computed once; ``out`` may be a (K, N, OH, OW) array to
    write into. The output is channel-major memory (an NCHW view of a (K, N, OH, OW) array), the
    layout the next layer wants.
    """
    xp = backend.get_array_module(x)
    N, C, H, W = x.shape
    if U is None:
        U = filter_transform(w)
    K = U.shape[2]
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    th, tw = -(-OH // 2), -(-OW // 2)  # tiles per column and row (the last may hang over the edge)
    # Padded input, channel-major, large enough for whole tiles: tile (i, j) reads rows 2i..2i+3.
    P = xp.zeros((C, N, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    rows, cols = min(H, 2 * th + 2 - padding), min(W, 2 * tw + 2 - padding)
    P[:, :, padding:padding + rows, padding:padding + cols] = x.swapaxes(0, 1)[:, :, :rows, :cols]

    # V = B^T d B for every tile at once: d[a][b] is the (C, N, th, tw) array of entries (a, b).
    d = [[P[:, :, a:a + 2 * th:2, b:b + 2 * tw:2] for b in range(4)] for a in range(4)]
    # e[a'][b]: the 1-D transform down the columns.
    e = list(zip(*[_input_transform_1d(*[d[a][b] for a in range(4)]) for b in range(4)]))
    V = xp.empty((4, 4, C, N, th, tw), dtype=x.dtype)
    for a in range(4):
        for b, v in enumerate(_input_transform_1d(*e[a])):
            V[a, b] = v

    M = xp.matmul(U.reshape(16, K, C), V.reshape(16, C, N * th * tw)).reshape(4, 4, K, N, th, tw)

    # Y = A^T M A, written into the 2x2 positions of every output tile.
    Y = xp.empty((K, N, 2 * th, 2 * tw), dtype=x.dtype)
    s = [_output_transform_1d(*[M[a, b] for a in range(4)]) for b in range(4)]  # s[b][a']
    for a in range(2):
        for b, y in enumerate(_output_transform_1d(*[s[bb][a] for bb in range(4)])):
            Y[:, :, a::2, b::2] = y
    if out is None:
        return Y[:, :, :OH, :OW].swapaxes(0, 1)
    out[...] = Y[:, :, :OH, :OW]
    return out.swapaxes(0, 1)


def winograd_conv3x3_input_grad(gy, w, padding=1):
    """dx of y = conv(x, w) (3x3, stride 1, padding p <= 2), itself a stride-1 3x3 convolution:
    dx = conv(dy, w flipped in space with input and output channels swapped, padding 2 - p)."""
    if not 0 <= padding <= 2:
        raise ValueError(f"winograd_conv3x3_input_grad: padding must be 0, 1 or 2, got {padding}")
    return winograd_conv3x3(gy, flipped_kernel(w), 2 - padding)


# -- the branch of the fast convolution ------------------------------------------------------------

def applies(x, w, stride, padding):
    """Stride-1 3x3 convolutions, padding <= 2, ``winograd_min_channels`` channels in and out."""
    m, (C_out, C, kh, kw) = knobs.winograd_min_channels, w.shape
    return m is not None and kh == kw == 3 and stride == 1 and padding <= 2 and min(C, C_out) >= m


def forward(x, w, b, stride, padding):
    """y = conv(x, w) + b as a (C_out, N*OH*OW) channel-major matrix, chunk by chunk."""
    if not (all_finite(x) and all_finite(w)):  # the transforms' inf - inf: see nonfinite.py
        return columns.forward(x, w, b, stride, padding)
    xp = backend.get_array_module(x)
    C_out = w.shape[0]
    N, C, H, W = x.shape
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    S, U = OH * OW, filter_transform(w)
    y = xp.empty((C_out, N * S), dtype=x.dtype)

    def run(lo, hi):
        y_n = y[:, lo * S:hi * S]
        winograd_conv3x3(x[lo:hi], w, padding, U=U, out=y_n.reshape(C_out, hi - lo, OH, OW))
        if b is not None:
            y_n += b[:, None]

    # The transformed tiles: 16 values per 2x2 outputs, in and out.
    map_chunks(N, columns.images_per_chunk(x, 4 * (C + C_out) * S), run, like=x)
    return y


def backward(x, w, gy, stride, padding, need_x, need_w):
    """dx = Winograd conv(dy, flipped kernel, padding 2 - p); dW from the im2col columns."""
    if not need_x:  # dW alone is the columns' work, chunked as theirs
        return flipped_dx.backward(x, w, gy, stride, padding, need_x, need_w)
    if not (all_finite(w) and all_finite(gy)):  # the transforms' inf - inf: see nonfinite.py
        return columns.backward(x, w, gy, stride, padding, need_x, need_w)
    C_out = w.shape[0]
    N, C, H, W = x.shape
    S, U_flip = gy.shape[2] * gy.shape[3], filter_transform(flipped_kernel(w))

    def input_grad(x_n, gy_n, g2, gx_n):
        winograd_conv3x3(gy_n, None, 2 - padding, U=U_flip, out=gx_n.reshape(C, x_n.shape[0], H, W))

    per_image = max(C * 9 * S, 4 * (C + C_out) * H * W)
    return columns.backward_in_chunks(x, w, gy, need_x, need_w, per_image,
                                      lambda x_n, g2: columns.weight_grad(x_n, g2, w, 1, padding),
                                      input_grad)
