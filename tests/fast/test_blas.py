"""The direct BLAS calls (minires/fast/blas.py): the same products as NumPy's matmul, summed or
one per window, on slices and transposed views; bad operands refused with a line naming them."""
import numpy as np
import pytest

from minires.fast import blas

pytestmark = pytest.mark.skipif(not blas.available(),
                                reason="no BLAS GEMM could be called in this process")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def test_blas_is_found_where_numpy_uses_openblas():
    # NumPy's own wheels ship OpenBLAS: there the direct route must be on, or the fast
    # convolution silently falls back to im2col.
    from minires.fast.threads import blas_libraries
    libs = blas_libraries()
    if libs is None or not any(lib.internal_api == "openblas" for lib in libs.lib_controllers):
        pytest.skip("NumPy does not use OpenBLAS here")
    assert blas.available()


def test_integer_arguments_have_the_width_of_the_symbol_found():
    # ILP64 names (..._gemm64_) take 64-bit integers, the plain CBLAS names 32-bit ones; the enums
    # (order, transposes) are ints either way.
    import ctypes
    for fn in blas._gemm_table().values():
        width = ctypes.c_int64 if fn.__name__.endswith("64_") else ctypes.c_int
        assert fn.argtypes[:3] == [ctypes.c_int] * 3
        assert [fn.argtypes[i] for i in (3, 4, 5, 8, 10, 13)] == [width] * 6, fn.__name__


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_t, b_t", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_equals_matmul_on_slices_and_transposes(dtype, a_t, b_t, rng):
    big = rng.standard_normal((40, 50)).astype(dtype)
    a = big[5:12, 3:15].T if a_t else big[3:15, 5:12]  # (12, 7): a slice, or a transposed slice
    b = big[20:29, 30:37].T if b_t else big[20:27, 30:39]  # (7, 9)
    M = a.shape[0]
    out = np.zeros((M, b.shape[1]), dtype)
    blas.gemm(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), **TOL[dtype])
    before = out.copy()
    blas.gemm(a, b, out, accumulate=True)
    want = before + a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_sum_is_the_sum_of_the_products_with_each_window(dtype, rng):
    T, M, K, L, N = 4, 5, 3, 30, 17
    a = rng.standard_normal((T, M, K)).astype(dtype)
    b = rng.standard_normal((K, L + 6)).astype(dtype)[:, 2:2 + L]  # a slice: leading dimension > L
    offsets = [0, 5, 13, L - N]
    out = np.full((M, N), np.nan, dtype)  # the first product overwrites, whatever out held
    blas.window_sum(a, b, offsets, out)
    want = sum(a[k].astype(np.float64) @ b[:, o:o + N].astype(np.float64)
               for k, o in enumerate(offsets))
    np.testing.assert_allclose(out, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_products_are_one_product_per_window(dtype, rng):
    T, M, K, L, N = 3, 4, 6, 25, 11
    a = rng.standard_normal((M, N + 3)).astype(dtype)[:, 1:1 + N]
    b = rng.standard_normal((K, L)).astype(dtype)
    offsets = [0, 7, L - N]
    out = np.full((T, M, K), np.nan, dtype)
    blas.window_products(a, b, offsets, out)
    for k, o in enumerate(offsets):
        want = a.astype(np.float64) @ b[:, o:o + N].T.astype(np.float64)
        np.testing.assert_allclose(out[k], want, **TOL[dtype])


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint16, np.intp])
def test_window_offsets_may_be_numpy_integers(integer, rng):
    # Python ints only went through ctypes: an offset from np.arange failed with ArgumentError.
    T, M, K, L, N = 3, 4, 5, 20, 9
    a, b = rng.standard_normal((T, M, K)), rng.standard_normal((K, L))
    offsets = [0, 4, L - N]
    want = blas.window_sum(a, b, offsets, np.empty((M, N)))
    got = blas.window_sum(a, b, [integer(o) for o in offsets], np.empty((M, N)))
    np.testing.assert_array_equal(got, want)
    g = rng.standard_normal((M, N))
    want = blas.window_products(g, b, offsets, np.empty((T, M, K)))
    got = blas.window_products(g, b, np.array(offsets, dtype=integer), np.empty((T, M, K)))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [1.0, 1.5, True, "1", None])
def test_window_offsets_that_are_not_integers_are_refused_by_name(bad):
    a, b = np.ones((2, 2, 3)), np.ones((3, 10))
    with pytest.raises(ValueError, match=r"^window_sum: offsets must be integers, got \[0, "):
        blas.window_sum(a, b, [0, bad], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"^window_products: offsets must be integers"):
        blas.window_products(np.ones((2, 4)), b, [0, bad], np.zeros((2, 2, 3)))


def test_an_empty_inner_dimension_gives_zeros():
    out = np.ones((2, 3))
    blas.gemm(np.ones((2, 0)), np.ones((0, 3)), out)
    np.testing.assert_array_equal(out, 0)
    out = np.ones((2, 3))
    blas.window_sum(np.ones((2, 2, 0)), np.ones((0, 5)), [0, 1], out)
    np.testing.assert_array_equal(out, 0)


def test_bad_operands_are_refused_with_a_line_that_names_them():
    a, b, out = np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 4))
    with pytest.raises(ValueError, match="shapes do not chain"):
        blas.gemm(a, np.ones((2, 4)), out)
    with pytest.raises(ValueError, match="share a dtype"):
        blas.gemm(a.astype(np.float32), b, out)
    with pytest.raises(ValueError, match="share a dtype"):
        blas.gemm(a.astype(np.int64), b.astype(np.int64), out.astype(np.int64))
    with pytest.raises(ValueError, match="b must have unit stride"):
        blas.gemm(a, np.ones((3, 8))[:, ::2], out)
    with pytest.raises(ValueError, match="out must be row-major"):
        blas.gemm(a, b, np.zeros((4, 2)).T)
    with pytest.raises(ValueError, match="must not share memory"):
        big = np.ones((2, 7))
        blas.gemm(big[:, :3], b, big[:, 3:])
    with pytest.raises(ValueError, match="2-D NumPy array"):
        blas.gemm([[1.0]], b, out)
    w, x = np.ones((2, 2, 3)), np.ones((3, 10))
    with pytest.raises(ValueError, match=r"window b\[:, o:o\+4\] must lie inside b's 10 columns"):
        blas.window_sum(w, x, [0, 7], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="T = 3 offsets"):
        blas.window_sum(w, x, [0, 1, 2], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="b must have K = 3 rows"):
        blas.window_sum(w, np.ones((4, 10)), [0, 1], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="out must be a C-contiguous float64 array of shape"):
        blas.window_products(np.ones((2, 4)), x, [0, 1], np.zeros((2, 2, 6))[:, :, :3])


def test_without_a_blas_the_calls_say_so(monkeypatch):
    monkeypatch.setattr(blas, "_gemms", {})
    assert not blas.available()
    with pytest.raises(RuntimeError, match="no BLAS"):
        blas.gemm(np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 4)))
