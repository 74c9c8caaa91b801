"""Convolution's fast paths give the same numbers as the reference path they replace."""
import numpy as np
import pytest

import minires as mr
from minires import backend
from minires import functional as F


def _grads(x, w, stride, padding, gy):
    xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
    F.conv2d(xt, wt, stride=stride, padding=padding).backward(gy)
    return xt.grad, wt.grad


@pytest.mark.parametrize("k, padding", [(3, 1), (3, 0), (3, 2), (1, 0), (5, 2), (7, 3), (2, 1)])
def test_stride_one_input_gradient_equals_col2im_of_w_transpose_dy(k, padding, rng):
    """Backward uses a flipped-kernel convolution of dy (stride 1) or skips im2col (1x1);
    the reference is the textbook adjoint: dx = col2im(W^T dy)."""
    x = rng.standard_normal((3, 4, 9, 8))
    w = rng.standard_normal((5, 4, k, k))
    OH, OW = 9 + 2 * padding - k + 1, 8 + 2 * padding - k + 1
    gy = rng.standard_normal((3, 5, OH, OW))
    gx, gw = _grads(x, w, 1, padding, gy)
    gy2 = gy.transpose(1, 0, 2, 3).reshape(5, -1)
    ref_gx = F.col2im(w.reshape(5, -1).T @ gy2, x.shape, k, k, 1, padding)
    ref_gw = (gy2 @ F.im2col(x, k, k, 1, padding).T).reshape(w.shape)
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-10, atol=1e-10)


def test_threaded_copies_give_bit_identical_results(rng):
    # columns of 7 MB: above the size from which im2col/col2im split their work over threads
    x = rng.standard_normal((16, 32, 40, 40)).astype(np.float32)
    w = rng.standard_normal((8, 32, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((16, 8, 20, 20)).astype(np.float32)
    cols = rng.standard_normal((32 * 9, 16 * 20 * 20)).astype(np.float32)
    before = backend.num_threads()
    try:
        results = []
        for threads in (1, 3):
            backend.set_num_threads(threads)
            results.append(_grads(x, w, 2, 1, gy) + (F.im2col(x, 3, 3, 2, 1), F.col2im(cols, x.shape, 3, 3, 2, 1)))
        one, three = results
    finally:
        backend.set_num_threads(before)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
