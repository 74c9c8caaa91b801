"""GEMM that accumulates, C = A @ B + beta * C, and products with windows of a matrix: from the
BLAS NumPy loaded.

``np.matmul`` always overwrites its output, so a sum of products costs one more pass over the
output per term (``out += a @ b``). BLAS's own ``gemm`` computes C = alpha * A @ B + beta * C in
one pass: with beta = 1 it adds into C while C's tile is in registers. (Measured: a ResNet-20
step with the shifted GEMMs through ``np.matmul`` and ``+=`` took 1.23x as long, and matmul's
matrix-vector route for one-channel inputs rounds differently; benchmarks/README.md.)

:func:`gemm` calls it (ctypes) on NumPy arrays, checked first: float32 or float64 alike, 2-D,
each operand with unit stride along its rows or along its columns (a slice of a bigger matrix,
or its transpose, is fine: BLAS takes a leading dimension), nothing copied. :func:`window_sum` and
:func:`window_products` run a series of such products over windows b[:, o:o+N] of one matrix
(the shifted GEMMs of ``shifted_gemm.py``), checked once for the whole series: a view's address
is computed, not asked of NumPy, since asking costs more than a small GEMM. Offsets may be any
integers, NumPy's included.

The library is the one threadpoolctl finds in the process (NumPy's OpenBLAS, or MKL), so its
thread count is the one ``threads.py`` sets. Its integer arguments are declared from the symbol
found: 64-bit for the ILP64 names (``..._sgemm64_``), 32-bit for the plain CBLAS ones. A symbol's
name does not prove its ABI, though (a library may export plain names with 64-bit integers):
what guarantees the result is the check run before first use, a small product with offsets and
a transposed operand compared with NumPy's, per dtype. When no library passes it,
:func:`available` is False and callers take another route.
"""
import ctypes
import operator

import numpy as np

from .threads import blas_libraries

# Symbol names to try, in order, with the width of their integers: NumPy's wheels ship OpenBLAS
# built with a "scipy_" prefix and a "64_" suffix (ILP64); system and MKL builds use the plain
# CBLAS names (LP64).
_I64, _I32 = ctypes.c_int64, ctypes.c_int
_NAMES = {np.float32: (("scipy_cblas_sgemm64_", _I64), ("cblas_sgemm64_", _I64),
                       ("cblas_sgemm", _I32)),
          np.float64: (("scipy_cblas_dgemm64_", _I64), ("cblas_dgemm64_", _I64),
                       ("cblas_dgemm", _I32))}
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_gemms = None  # dtype -> ctypes function; {} when there is none


def _find(path):
    lib = ctypes.CDLL(path)
    found = {}
    for dtype, names in _NAMES.items():
        scalar = ctypes.c_float if dtype is np.float32 else ctypes.c_double
        for name, L in names:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            E, P = ctypes.c_int, ctypes.c_void_p  # CBLAS's enums (order, transposes) are ints
            fn.argtypes = [E, E, E, L, L, L, scalar, P, L, P, L, scalar, P, L]
            fn.restype = None
            found[np.dtype(dtype)] = fn
            break
    return found


def _agrees(fns):
    """One accumulating product per dtype, with offsets and a transposed operand, against NumPy."""
    rng = np.random.default_rng(0)
    for dtype in fns:
        big = rng.standard_normal((5, 11)).astype(dtype)
        a, b = big[1:4, 2:6], big[0:5, 3:7].T  # a (3, 4): a slice; b (4, 5): a transposed slice
        c = rng.standard_normal((3, 5)).astype(dtype)
        want = a @ b + c
        got = c.copy()
        _call(fns[dtype], a, b, got, 1.0)
        if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
            return False
    return True


def _gemm_table():
    global _gemms
    if _gemms is None:
        _gemms = {}
        for lib in getattr(blas_libraries(), "lib_controllers", ()):
            try:
                fns = _find(lib.filepath)
            except OSError:  # pragma: no cover - a library that cannot be opened again
                continue
            if len(fns) == 2 and _agrees(fns):
                _gemms = fns
                break
    return _gemms


def available():
    """True when :func:`gemm` can run: a BLAS with float32 and float64 GEMMs passed the check."""
    return bool(_gemm_table())


def _layout(m, name):
    """(transposed, leading dimension) of a 2-D operand with unit stride along one axis."""
    e = m.itemsize
    if m.size == 0:  # nothing is read: any leading dimension BLAS accepts
        return False, max(1, m.shape[1])
    r, c = m.strides
    if c == e and r % e == 0 and r // e >= max(1, m.shape[1]):
        return False, r // e
    if r == e and c % e == 0 and c // e >= max(1, m.shape[0]):
        return True, c // e
    raise ValueError(f"gemm: {name} must have unit stride along its rows or its columns, got shape "
                     f"{m.shape} and strides {m.strides}")


def _call(fn, a, b, c, beta):
    ta, lda = _layout(a, "a")
    tb, ldb = _layout(b, "b")
    tc, ldc = _layout(c, "out")
    if tc:
        raise ValueError("gemm: out must be row-major (unit stride along its rows), got strides "
                         f"{c.strides}")
    (M, K), N = a.shape, b.shape[1]
    fn(_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, M, N, K, 1.0,
       a.ctypes.data, lda, b.ctypes.data, ldb, beta, c.ctypes.data, ldc)


def gemm(a, b, out, accumulate=False):
    """out = a @ b, or out += a @ b with ``accumulate``: one BLAS call, no temporary.

    a (M, K), b (K, N), out (M, N): NumPy arrays of one float dtype; ``out`` row-major and apart
    from a and b in memory. Raises ValueError for anything else, and RuntimeError when no BLAS is
    available (see :func:`available`).
    """
    fns = _gemm_table()
    for name, m in (("a", a), ("b", b), ("out", out)):
        if not isinstance(m, np.ndarray) or m.ndim != 2:
            raise ValueError(f"gemm: {name} must be a 2-D NumPy array, got {type(m).__name__} "
                             f"{getattr(m, 'shape', '')}")
    if not a.dtype == b.dtype == out.dtype or a.dtype not in (np.float32, np.float64):
        raise ValueError(f"gemm: a, b and out must share a dtype, float32 or float64; got "
                         f"{a.dtype}, {b.dtype}, {out.dtype}")
    if a.shape[1] != b.shape[0] or out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"gemm: shapes do not chain: a {a.shape} @ b {b.shape} -> out {out.shape}")
    if not out.flags.writeable:
        raise ValueError("gemm: out is read-only")
    _ready("gemm", fns, out, a, b)
    if out.size == 0:
        return out
    if a.shape[1] == 0:  # an empty sum: BLAS may leave out untouched
        if not accumulate:
            out[...] = 0
        return out
    _call(fns[a.dtype], a, b, out, 1.0 if accumulate else 0.0)
    return out


def _float_dtype(where, a):
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where}: arrays must be float32 or float64, got {a.dtype}")
    return a.dtype


def _offsets(where, offsets):
    """The offsets as Python ints (ctypes takes no NumPy integers): any integral value, not bool."""
    try:
        if any(isinstance(o, (bool, np.bool_)) for o in offsets):
            raise TypeError
        return [operator.index(o) for o in offsets]
    except TypeError:
        raise ValueError(f"{where}: offsets must be integers, got {list(offsets)!r}") from None


def _check_windows(where, b, offsets, N, dtype):
    if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype != dtype:
        got = f"{getattr(b, 'dtype', type(b).__name__)} {getattr(b, 'shape', '')}"
        raise ValueError(f"{where}: b must be a 2-D {dtype} NumPy array, got {got}")
    transposed, ldb = _layout(b, "b")
    if transposed:
        raise ValueError(f"{where}: b must be row-major (unit stride along its rows), got strides "
                         f"{b.strides}")
    if any(not 0 <= o <= b.shape[1] - N for o in offsets):
        raise ValueError(f"{where}: every window b[:, o:o+{N}] must lie inside b's {b.shape[1]} "
                         f"columns, got offsets {list(offsets)}")
    return ldb


def _check_stack(where, name, m, shape, dtype):
    if (not isinstance(m, np.ndarray) or m.shape != shape or m.dtype != dtype
            or not m.flags.c_contiguous):
        got = f"{getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}"
        raise ValueError(f"{where}: {name} must be a C-contiguous {dtype} array of shape {shape}, "
                         f"got {got}")


def _ready(where, fns, out, a, b):
    """The last checks of a series of products: out apart from a and b, and a BLAS to call."""
    if np.may_share_memory(out, a) or np.may_share_memory(out, b):
        raise ValueError(f"{where}: out must not share memory with a or b")
    if not fns:
        raise RuntimeError(f"{where}: no BLAS with an accumulating GEMM was found in this process")


def window_sum(a, b, offsets, out):
    """out = sum_k a[k] @ b[:, o_k : o_k + N]: a (T, M, K), b (K, L) row-major, out (M, N).

    One GEMM per window, each adding into out (beta = 1) after the first.
    """
    fns, offsets = _gemm_table(), _offsets("window_sum", offsets)
    T, M, K = a.shape if getattr(a, "ndim", 0) == 3 else (None, None, None)
    if T is None or T != len(offsets) or T == 0:
        raise ValueError(f"window_sum: a must be (T, M, K) with T = {len(offsets)} offsets, got "
                         f"shape {getattr(a, 'shape', '')}")
    dtype = _float_dtype("window_sum", a)
    N = out.shape[1] if getattr(out, "ndim", 0) == 2 else None
    _check_stack("window_sum", "out", out, (M, N), dtype)
    _check_stack("window_sum", "a", a, (T, M, K), dtype)
    ldb = _check_windows("window_sum", b, offsets, N, dtype)
    if b.shape[0] != K:
        raise ValueError(f"window_sum: b must have K = {K} rows, got shape {b.shape}")
    _ready("window_sum", fns, out, a, b)
    if out.size == 0 or K == 0:
        out[...] = 0
        return out
    fn, e = fns[dtype], a.itemsize
    pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
    for k, o in enumerate(offsets):
        fn(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, N, K, 1.0, pa + k * M * K * e, K, pb + o * e, ldb,
           1.0 if k else 0.0, pc, N)
    return out


def window_products(a, b, offsets, out):
    """out[k] = a @ b[:, o_k : o_k + N].T for each of the T offsets: a (M, N) row-major, b (K, L)
    row-major, out (T, M, K)."""
    fns, offsets = _gemm_table(), _offsets("window_products", offsets)
    if getattr(a, "ndim", 0) != 2 or getattr(out, "ndim", 0) != 3:
        raise ValueError(f"window_products: a must be 2-D and out 3-D, got shapes "
                         f"{getattr(a, 'shape', '')} and {getattr(out, 'shape', '')}")
    (M, N), (T, _, K), dtype = a.shape, out.shape, _float_dtype("window_products", a)
    if T != len(offsets) or T == 0:
        raise ValueError(f"window_products: out must hold T = {len(offsets)} products, got shape "
                         f"{out.shape}")
    _check_stack("window_products", "out", out, (T, M, K), dtype)
    transposed, lda = _layout(a, "a")
    if transposed:
        raise ValueError(f"window_products: a must be row-major, got strides {a.strides}")
    if b.shape[0] != K:
        raise ValueError(f"window_products: b must have K = {K} rows, got shape {b.shape}")
    ldb = _check_windows("window_products", b, offsets, N, dtype)
    _ready("window_products", fns, out, a, b)
    if out.size == 0 or N == 0:
        out[...] = 0
        return out
    fn, e = fns[dtype], a.itemsize
    pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
    for k, o in enumerate(offsets):
        fn(_ROW_MAJOR, _NO_TRANS, _TRANS, M, K, N, 1.0, pa, lda, pb + o * e, ldb, 0.0,
           pc + k * M * K * e, K)
    return out
