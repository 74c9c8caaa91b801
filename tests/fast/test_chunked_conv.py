"""How the fast convolution is made fast (minires/fast/chunked_conv.py and its branches): its
shortcuts against the textbook formulas they replace, chunks of any size, and the same bits on any
number of threads.

The rule that every fast branch equals the reference op is stated in test_fast_equals_reference.py.
"""
import numpy as np
import pytest

import minires as mr
from minires import fast
from minires import functional as F
from minires.fast.columns import im2col_wide


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


@pytest.mark.parametrize("kh, kw, padding", [(3, 3, 1), (3, 3, 0), (3, 3, 2), (5, 5, 2), (2, 2, 1),
                                             (2, 2, 2), (3, 1, 1), (1, 1, 1), (7, 7, 3)])
def test_padded_width_columns_contain_the_im2col_columns(kh, kw, padding, rng):
    x = rng.standard_normal((3, 2, 6, 7))
    OH, OW = 6 + 2 * padding - kh + 1, 7 + 2 * padding - kw + 1
    Wp = 7 + max(padding, 2 * padding - kw + 1)
    wide = im2col_wide(x, kh, kw, padding)
    assert wide.shape == (2 * kh * kw, 3 * OH * Wp)
    np.testing.assert_array_equal(wide.reshape(-1, 3, OH, Wp)[..., :OW],
                                  F.im2col(x, kh, kw, 1, padding).reshape(-1, 3, OH, OW))


# One image per chunk, a few, the whole batch:
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 30])
@pytest.mark.parametrize("k, stride, padding", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0),
                                                (5, 1, 2), (2, 1, 1), (3, 1, 0), (3, 1, 3)])
def test_convolution_over_image_chunks_equals_one_gemm_over_the_batch(k, stride, padding,
                                                                       chunk_bytes, rng, using):
    """The reference is the textbook pass over the whole batch: y = W im2col(x) + b,
    dW = dy im2col(x)^T, db = sum(dy), dx = col2im(W^T dy)."""
    using(chunk_bytes=chunk_bytes, shifted_gemm_chunk_bytes=chunk_bytes)
    N, C, C_out = 7, 3, 4
    x, w = rng.standard_normal((N, C, 9, 8)), rng.standard_normal((C_out, C, k, k))
    b = rng.standard_normal(C_out)
    xt, wt, bt = (mr.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)

    cols = F.im2col(x, k, k, stride, padding)
    w2, gy2 = w.reshape(C_out, -1), gy.transpose(1, 0, 2, 3).reshape(C_out, -1)
    y_ref = (w2 @ cols + b[:, None]).reshape(C_out, N, *y.shape[2:]).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y.data, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, (gy2 @ cols.T).reshape(w.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad, gy2.sum(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad, F.col2im(w2.T @ gy2, x.shape, k, k, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("via", ["blas", "matmul"])
def test_results_are_bit_identical_on_any_number_of_threads(rng, using, via):
    # Small chunks and blocks, so that the work is spread over many of them.
    using(chunk_bytes=1 << 16, shifted_gemm_chunk_bytes=1 << 16, block_bytes=1 << 12,
          shifted_gemm_via=via)
    x = rng.standard_normal((16, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    gamma = rng.standard_normal(8).astype(np.float32)
    beta = rng.standard_normal(8).astype(np.float32)

    def step():
        xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
        gt, bt = mr.Tensor(gamma, requires_grad=True), mr.Tensor(beta, requires_grad=True)
        h = F.conv2d(xt, wt, padding=1)                     # same: shifted GEMMs
        h = F.batch_norm(h, gt, bt, np.zeros(8, np.float32), np.ones(8, np.float32), training=True)
        h = F.relu(h)                                       # rows over the threads
        y = F.conv2d(h, wt, stride=2, padding=1)            # stride 2: im2col, col2im
        y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        return y.data, xt.grad, wt.grad, gt.grad, bt.grad

    results = []
    for threads in (1, 3):
        with fast.using(num_threads=threads):
            results.append(step())
    for one, three in zip(*results):
        np.testing.assert_array_equal(one, three)
