"""What CuPy refuses, and where its results differ from NumPy's: the rules the strict stand-in
(tests/fake_cupy) copies, checked with CuPy's own exception types and messages.

These run on a real GPU too, against real CuPy: there they check that the stand-in's rules are
CuPy's (a failure on a GPU means the stand-in drifted and must follow). The few that test the
stand-in itself (its listing, its counting, where it is stricter) take ``stand_in``.
"""
import operator
import re

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")
UNSUPPORTED = "Unsupported type <class 'numpy.ndarray'>"


def refuses(error, message, fn):
    with pytest.raises(error, match=re.escape(message)):
        fn()


@pytest.fixture
def d(gpu):
    return gpu.arange(6, dtype=gpu.float32).reshape(2, 3)


def test_a_device_array_is_not_a_numpy_array(gpu, d):
    assert not isinstance(d, np.ndarray)
    assert type(d).__module__ == "cupy" and isinstance(d, gpu.ndarray)


def test_implicit_conversion_to_numpy_is_refused(d):
    refuses(TypeError, IMPLICIT, lambda: np.asarray(d))
    refuses(TypeError, IMPLICIT, lambda: np.array(d))
    refuses(TypeError, IMPLICIT, lambda: np.testing.assert_allclose(d, 0))
    refuses(TypeError, IMPLICIT, lambda: np.float32(d[0, 0]))
    assert np.array_equal(d.get(), np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("op", ["add", "mul", "sub", "truediv", "lt", "eq"])
def test_a_host_array_in_an_operator_is_refused_either_side(d, op):
    h, f = np.ones(3, np.float32), getattr(operator, op)
    refuses(TypeError, UNSUPPORTED, lambda: f(d, h))
    refuses(TypeError, UNSUPPORTED, lambda: f(h, d))


def test_a_host_array_in_a_ufunc_or_in_place_op_is_refused(gpu, d):
    h = np.ones(3, np.float32)
    refuses(TypeError, UNSUPPORTED, lambda: gpu.maximum(d, h))
    refuses(TypeError, UNSUPPORTED, lambda: np.maximum(d, h))

    def iadd():
        d[...] += h
    refuses(TypeError, UNSUPPORTED, iadd)
    refuses(TypeError, "Unsupported type <class 'list'>", lambda: d + [1, 2, 3])


def test_scalars_are_welcome(d):
    assert float((d * 2 + np.float32(1) - 0.5).sum()) == 33.0
    assert bool((d > np.asarray(2.0)).any())  # a 0-d host array in a comparison becomes a scalar


def test_a_host_array_assigned_into_a_device_slice_is_refused(gpu, d):
    def assign():
        d[0] = np.zeros(3, np.float32)
    refuses(ValueError, "non-scalar numpy.ndarray cannot be used for fill", assign)
    d[0] = np.float32(7)  # a scalar fills
    d[np.array([1])] = np.zeros((1, 3), np.float32)  # an integer-array index copies it up
    assert d.get().tolist() == [[7, 7, 7], [0, 0, 0]]


def test_host_only_attributes_do_not_exist(gpu, d):
    refuses(AttributeError, "'ndarray' object has no attribute 'ctypes'", lambda: d.ctypes)
    refuses(AttributeError, "'Flags' object has no attribute 'writeable'",
            lambda: d.flags.writeable)
    refuses(KeyError, "WRITEABLE is not defined for cupy.ndarray.flags",
            lambda: d.flags["WRITEABLE"])
    refuses(TypeError, "a bytes-like object is required, not 'ndarray'",
            lambda: np.ndarray((6,), np.float32, d))


def test_a_device_scalar_is_no_python_index(d):
    refuses(TypeError, "list indices must be integers or slices, not ndarray",
            lambda: [1, 2, 3][d.argmax() // 3])
    refuses(TypeError, "'ndarray' object cannot be interpreted as an integer",
            lambda: range(d.argmax()))
    assert [1, 2, 3][int(d.argmax()) // 3] == 2  # int() reads it back


def test_cupy_signatures_and_names(gpu, d):
    refuses(TypeError, "as_strided() got an unexpected keyword argument 'writeable'",
            lambda: gpu.lib.stride_tricks.as_strided(d, (2,), (4,), writeable=False))
    refuses(TypeError, "got an unexpected keyword argument 'where'", lambda: d.sum(where=d > 0))
    refuses(TypeError, "Wrong arguments {'where': True}", lambda: gpu.add(d, 1, where=True))
    refuses(NotImplementedError, "`cupy_maximum.reduce` is not supported yet",
            lambda: gpu.maximum.reduce(d, axis=1))
    refuses(TypeError, "Only cupy arrays can be concatenated",
            lambda: gpu.concatenate([d, np.ones((1, 3), np.float32)]))
    refuses(AttributeError, "module 'cupy' has no attribute 'insert'", lambda: gpu.insert)
    assert gpu.add.reduce(d, axis=1).get().tolist() == [3, 12]


def test_numpy_functions_on_device_arrays_dispatch_to_cupy(gpu, d):
    assert isinstance(np.concatenate([d, d]), gpu.ndarray)
    assert isinstance(np.sum(d), gpu.ndarray)


def test_reductions_and_scalar_indexing_give_0d_device_arrays(gpu, d):
    for r in (d.sum(), d.max(), d[1, 2], d.mean(axis=None)):
        assert isinstance(r, gpu.ndarray) and r.shape == ()
    assert d.sum().item() == 15.0 and isinstance(d.sum().item(), float)


def test_elementwise_results_are_c_ordered(gpu):
    cm = gpu.zeros((3, 2, 4, 4), gpu.float32).swapaxes(0, 1)  # channel-major NCHW
    assert not cm.flags.c_contiguous
    for r in (cm + 1, gpu.maximum(cm, 0), cm * cm, -cm):
        assert r.flags.c_contiguous
    assert gpu.empty_like(cm).strides == cm.strides  # empty_like keeps the layout
    assert cm.get().flags.c_contiguous  # and get() copies to C order


def test_integer_array_indices_wrap_around_and_scalar_ones_raise(gpu, d):
    assert d[np.array([0, 2])].get().tolist() == d[np.array([0, 0])].get().tolist()
    assert d[:, [1, 4]].get().tolist() == [[1, 1], [4, 4]]
    refuses(IndexError, "Index 5 is out of bounds for axis 0 with size 2", lambda: d[5])


def test_the_listing_covers_both_cupy_versions(stand_in):
    from cupy import _names

    if set(_names.VERSIONS) != {"13", "14"}:
        pytest.skip(f"FAKE_CUPY_VERSIONS={','.join(_names.VERSIONS)}: one version checked")
    assert {d["version"].split(".")[0] for d in _names.LISTINGS.values()} == {"13", "14"}
    # CuPy 14 only: refused (code must run on 13 too), saying so
    refuses(AttributeError, "module 'cupy' has no attribute 'concat'  [CuPy stand-in: CuPy "
            "14.2.0 has it, not all of CuPy 13.6.0, CuPy 14.2.0]", lambda: stand_in.concat)
    refuses(TypeError, "asarray() got an unexpected keyword argument 'copy'  [CuPy stand-in: "
            "CuPy 13.6.0 refuses this call", lambda: stand_in.asarray(np.ones(2), copy=True))
    refuses(AttributeError, "'ndarray' object has no attribute 'mT'", lambda: stand_in.ones(2).mT)


def test_the_stand_in_is_stricter_where_cupy_is_silent(stand_in, d):
    # Real CuPy makes a new Flags object on every d.flags: setting writeable on it is lost and
    # protects nothing. The stand-in refuses it, so code that relies on it is found.
    def set_writeable():
        d.flags.writeable = False
    refuses(AttributeError, "'Flags' object has no attribute 'writeable'", set_writeable)


def test_the_stand_in_counts_calls_and_kernel_launches(stand_in):
    from cupy import _core

    x = stand_in.ones((4, 4), stand_in.float32)
    _core.reset_counts()
    y = (x * 2 + 1).T.reshape(16)
    assert _core.CALLS["multiply"] == 1 and _core.CALLS["add"] == 1
    assert sum(_core.KERNELS.values()) == 3  # the transpose is a view; reshape copies it
    assert y.shape == (16,)


def test_elementwise_kernels_run_from_their_c_source(gpu):
    k = gpu.ElementwiseKernel("T x, T s", "T y", "y = x > (T)0 ? x * s : (T)0", "scale_pos")
    x = gpu.asarray(np.array([-1.0, 2.0, 3.0], np.float32))
    assert k(x, 2.0).get().tolist() == [0, 4, 6] and k(x, 2.0).dtype == np.float32
    refuses(TypeError, UNSUPPORTED, lambda: k(np.ones(3, np.float32), 1.0))
    refuses(TypeError, "Type is mismatched.", lambda: k(x, x.astype(np.float64)))
