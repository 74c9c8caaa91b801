"""Channel-major memory behind NCHW shapes: the layout the convolution GEMM wants.

A convolution done as one GEMM, ``W (C_out, C_in*kh*kw) @ cols (C_in*kh*kw, N*OH*OW)``, produces
its output as a (C_out, N*OH*OW) matrix: channel-major. Copying that into NCHW order would cost a
full transposed copy per layer, and the next layer's im2col (and batch norm, which reduces per
channel) would want channel-major again. So minires never makes that copy: an activation has the
NCHW *shape* everyone expects, ``(N, C, H, W)``, but is a transposed *view* of a contiguous
``(C, N, H, W)`` array. Elementwise NumPy ops keep their inputs' memory order (``order='K'``), so
on the CPU ReLU, the residual addition and their gradients stay channel-major too, for free.
CuPy's do not: every CuPy ufunc and operator allocates its output C-ordered. On the GPU an
activation comes out of the reference ReLU or a residual addition in NCHW order, and a gradient
out of autograd's sum of a block's two paths; the next :func:`channels_first_2d` (batch norm's)
then pays a transposed copy, and a convolution reads its input with long strides.
``benchmarks/gpu_calls.py`` counts the copies: 9 per ResNet-20 training step, all in backward.
The fused GPU kernels (``minires/fast/gpu_kernels.py``) write their outputs channel-major.

Everything still works on a plain C-contiguous NCHW array; it just costs one copy in
:func:`channels_first_2d`. The reference ops use these helpers so that they hand the next layer
the same layout as their fast twins do.
"""

import math

from .. import backend


def channels_first_2d(a):
    """(N, C, ...) array -> (C, N*...) matrix; a view when ``a`` is channel-major, else a copy."""
    # the size spelt out: reshape(C, -1) is ambiguous when the array is empty
    return a.swapaxes(0, 1).reshape(a.shape[1], a.shape[0] * math.prod(a.shape[2:]))


def from_channels_first_2d(m, shape):
    """(C, N*...) matrix -> array of NCHW ``shape`` viewing the same memory."""
    n, c = shape[0], shape[1]
    return m.reshape((c, n) + tuple(shape[2:])).swapaxes(0, 1)


def empty_channel_major(shape, dtype, like):
    """An uninitialised array of NCHW ``shape`` laid out channel-major, on ``like``'s device."""
    xp = backend.get_array_module(like)
    return xp.empty((shape[1], shape[0]) + tuple(shape[2:]), dtype=dtype).swapaxes(0, 1)


def zeros_channel_major(shape, dtype, like):
    xp = backend.get_array_module(like)
    return xp.zeros((shape[1], shape[0]) + tuple(shape[2:]), dtype=dtype).swapaxes(0, 1)
