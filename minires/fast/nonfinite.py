"""NaN and inf in the fast convolution: non-finite in exactly the entries the reference's are.

A NaN or an inf spreads through sums and products, and 0 * inf is NaN. A branch that multiplies
more numbers than the reference does, even by zero, can therefore turn entries non-finite that
the reference keeps finite:

- the shifted GEMMs' garbage outputs read real pixels: dY is zero there, so their part of dW is
  0 * x, NaN where x is not finite (one NaN pixel at a right border: 27 NaN entries of a 3x3 dW
  where the reference has 18);
- an input gradient computed as a convolution of dY with the flipped kernel (the shifted GEMMs,
  ``flipped_dx.py``, Winograd) multiplies every weight by dY's zero padding too, NaN where the
  weight is not finite;
- Winograd's transforms add and subtract inputs before the products (inf - inf is NaN).

With finite numbers those extra products are exact zeros, which change no bit of any sum, and
nothing below runs. Where a number is not finite, the branch takes the reference's route (the
im2col columns, col2im) for the part concerned, so that NaN and inf land where they land there:

    shifted_gemm   a chunk whose part of dW is not finite: that part again from the columns;
                   weights not finite: dx by col2im (and dW from the columns)
    flipped_dx     weights not finite: dx by col2im
    winograd       x or weights not finite: the columns' forward; weights or dY: their backward

The checks read the weights (small) and a chunk's part of dW (small), except Winograd's (off by
default), which read x and dY as well. On the GPU each check waits for the device once.
"""
from .. import backend


def all_finite(a):
    """True when no entry of ``a`` is NaN or infinite."""
    return bool(backend.get_array_module(a).isfinite(a).all())
