"""The convolution as a sum of shifted GEMMs (minires/fast/shifted_gemm.py): its shared-padding
layout puts every pixel where the docstring says, each tap's window reads the padded input at
its offset, and the forward and both gradients equal the loop definitions."""
import numpy as np
import pytest

import oracles
from minires import fast
from minires.fast import blas, shifted_gemm

needs_blas = pytest.mark.skipif(not blas.available(), reason="no BLAS GEMM could be called here")


@pytest.mark.parametrize("k, H, W", [(3, 4, 5), (5, 3, 6), (3, 1, 1), (7, 4, 4)])
def test_shared_padding_puts_each_pixel_at_its_place_and_zeros_elsewhere(k, H, W, rng):
    p, n, C = (k - 1) // 2, 3, 2
    x = rng.standard_normal((n, C, H, W))
    buf, start = shifted_gemm.shared_padding(x, k, p, "test")
    Hs, Wp = H + p, W + p
    want = np.zeros((C, n * Hs * Wp + (k - 1) * (Wp + 1)))
    for m in range(n):
        for r in range(H):
            for q in range(W):
                want[:, p * Wp + p + (m * Hs + r) * Wp + q] = x[m, :, r, q]
    assert start == p * Wp + p
    np.testing.assert_array_equal(buf, want)


@pytest.mark.parametrize("k, H, W", [(3, 4, 5), (5, 3, 6), (3, 1, 2), (7, 5, 4)])
def test_each_tap_reads_the_zero_padded_input_at_its_offset(k, H, W, rng):
    # The claim the whole file rests on: output (m, r, q) reads, for tap (i, j), element
    # t + i*Wp + j of the buffer, t = (m*Hs + r)*Wp + q, and that is xpad[m, :, r + i, q + j].
    p, n, C = (k - 1) // 2, 2, 3
    x = rng.standard_normal((n, C, H, W))
    buf, _ = shifted_gemm.shared_padding(x, k, p, "test")
    xpad = oracles.pad_hw(x, p)
    Hs, Wp = shifted_gemm.grid(H, W, p)
    offsets = shifted_gemm.offsets(k, Wp)
    for m in range(n):
        for r in range(H):
            for q in range(W):
                t = (m * Hs + r) * Wp + q
                for tap, (i, j) in enumerate((i, j) for i in range(k) for j in range(k)):
                    got = buf[:, t + offsets[tap]]
                    np.testing.assert_array_equal(got, xpad[m, :, r + i, q + j])


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("N, H, W", [(1, 1, 1), (3, 4, 7), (2, 9, 8)])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("via", [pytest.param("blas", marks=needs_blas), "matmul"])
def test_forward_and_gradients_equal_the_loop_definitions(using, k, N, H, W, chunk_bytes, bias, via,
                                                          rng):
    # One image per chunk, or all in one; the GEMMs through BLAS (beta = 1) or np.matmul and +=.
    using(shifted_gemm_chunk_bytes=chunk_bytes, shifted_gemm_via=via)
    p, C, C_out = (k - 1) // 2, 3, 4
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C_out, C, k, k))
    b = rng.standard_normal(C_out) if bias else None
    gy = rng.standard_normal((N, C_out, H, W))
    assert shifted_gemm.applies(x, w, 1, p)
    y = shifted_gemm.forward(x, w, b, 1, p).reshape(C_out, N, H, W).swapaxes(0, 1)
    np.testing.assert_allclose(y, oracles.conv2d(x, w, b, 1, p), rtol=1e-12, atol=1e-12)
    gx, gw = shifted_gemm.backward(x, w, gy, 1, p, True, True)
    dx, dw, _ = oracles.conv2d_backward(x, w, gy, 1, p)
    np.testing.assert_allclose(gx.reshape(C, N, H, W).swapaxes(0, 1), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, dw, rtol=1e-12, atol=1e-12)
    only_w = shifted_gemm.backward(x, w, gy, 1, p, False, True)
    only_x = shifted_gemm.backward(x, w, gy, 1, p, True, False)
    assert only_w[0] is None and only_x[1] is None
    np.testing.assert_array_equal(only_w[1], gw)
    np.testing.assert_array_equal(only_x[0], gx)


@needs_blas
def test_float32_error_is_no_larger_than_im2cols(rng):
    # The sum runs tap by tap (K = C per GEMM, then over the taps) instead of over (c, i, j) at
    # once: a different rounding, which must not be a worse one.
    from minires import functional as F
    x = rng.standard_normal((8, 64, 8, 8))
    w = rng.standard_normal((64, 64, 3, 3)) / 24
    truth = oracles.conv2d(x, w, None, 1, 1)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    shifted = shifted_gemm.forward(x32, w32, None, 1, 1).reshape(64, 8, 8, 8).swapaxes(0, 1)
    im2col = (w32.reshape(64, -1) @ F.im2col(x32, 3, 3, 1, 1)).reshape(64, 8, 8, 8).swapaxes(0, 1)
    err = {name: np.abs(a - truth).max() / np.abs(truth).max()
           for name, a in (("shifted", shifted), ("im2col", im2col))}
    assert err["shifted"] <= 2 * err["im2col"], err


@needs_blas
def test_applies_only_to_cpu_float_same_convolutions_of_few_channels_with_a_blas(monkeypatch,
                                                                               using):
    x, w = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))
    assert shifted_gemm.applies(x, w, 1, 1)
    assert shifted_gemm.applies(x.astype(np.float32), w.astype(np.float32), 1, 1)
    assert not shifted_gemm.applies(x, w, 2, 1)                         # stride 2: im2col
    assert not shifted_gemm.applies(x, w, 1, 0)                         # valid, not same
    assert not shifted_gemm.applies(x, np.zeros((4, 3, 2, 2)), 1, 1)    # even kernel
    assert not shifted_gemm.applies(x, np.zeros((4, 3, 1, 1)), 1, 0)    # 1x1: no im2col anyway
    assert not shifted_gemm.applies(x, np.zeros((4, 3, 3, 1)), 1, 1)    # not square
    assert not shifted_gemm.applies(x.astype(np.float32), w, 1, 1)      # mixed dtypes
    assert not shifted_gemm.applies(x.astype(np.float16), w.astype(np.float16), 1, 1)
    wide = np.zeros((2, fast.knobs.shifted_gemm_max_channels + 1, 5, 5))
    assert not shifted_gemm.applies(wide, np.zeros((4, wide.shape[1], 3, 3)), 1, 1)  # columns
    assert not shifted_gemm.applies(x, np.zeros((wide.shape[1], 3, 3, 3)), 1, 1)
    with fast.using(shifted_gemm_max_channels=0):
        assert not shifted_gemm.applies(x, w, 1, 1)                     # turned off
    monkeypatch.setattr(blas, "available", lambda: False)
    assert not shifted_gemm.applies(x, w, 1, 1)                         # no BLAS: wide columns
    using(shifted_gemm_via="matmul")
    assert shifted_gemm.applies(x, w, 1, 1)                             # np.matmul needs none
