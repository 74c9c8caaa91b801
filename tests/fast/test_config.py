"""The knobs of the fast path (minires/fast/config.py): one place, one scoped override.

``fast.using(...)`` sets knobs inside a block and gives them back after it, also when the block
raises; nested blocks stack; an unknown name or a bad value is refused, in one line that names
the knob and what it takes, before anything changes; the knobs are read-only otherwise; and
every knob is read where its decision is taken, on the next call.
"""
import numpy as np
import pytest

from minires import fast
from minires.fast import chunked_conv, columns, config, shifted_gemm, threads, winograd


def test_using_sets_knobs_inside_the_block_and_restores_them_after():
    before = repr(fast.knobs)
    with fast.using(chunk_bytes=123, winograd_min_channels=64) as knobs:
        assert knobs is fast.knobs
        assert (fast.knobs.chunk_bytes, fast.knobs.winograd_min_channels) == (123, 64)
        with fast.using(chunk_bytes=7):
            assert fast.knobs.chunk_bytes == 7 and fast.knobs.winograd_min_channels == 64
        assert fast.knobs.chunk_bytes == 123
    assert repr(fast.knobs) == before


def test_using_restores_the_knobs_when_the_block_raises():
    with pytest.raises(KeyError):
        with fast.using(block_bytes=5):
            raise KeyError("inside")
    assert fast.knobs.block_bytes == config.KNOBS["block_bytes"][0]


def test_the_defaults_are_todays_numbers():
    assert {name: default for name, (default, _, _) in config.KNOBS.items()} == {
        "num_threads": None, "chunk_bytes": 4 << 20, "shifted_gemm_chunk_bytes": 2 << 20,
        "block_bytes": 1 << 20, "shifted_gemm_max_channels": 128, "shifted_gemm_via": "blas",
        "winograd_min_channels": None}


def test_an_unknown_knob_is_refused_with_the_list_of_knobs():
    with pytest.raises(TypeError, match=r"no knob named 'chunk_size'; the knobs are num_threads, "):
        with fast.using(chunk_bytes=1, chunk_size=1):
            pass
    assert fast.knobs.chunk_bytes == 4 << 20  # nothing changed


@pytest.mark.parametrize("name, value, takes", [
    ("chunk_bytes", 0, "a positive int"), ("chunk_bytes", 1.5, "a positive int"),
    ("chunk_bytes", True, "a positive int"), ("block_bytes", "1MiB", "a positive int"),
    ("shifted_gemm_max_channels", -1, "an int >= 0"), ("num_threads", 0, "a positive int, or None"),
    ("winograd_min_channels", 0, "a positive int, or None"),
    ("shifted_gemm_via", "cuda", "'blas' .* or 'matmul'"),
])
def test_a_bad_value_is_refused_in_one_line_naming_the_knob(name, value, takes):
    with pytest.raises(ValueError, match=rf"^minires.fast.using: {name} must be {takes}") as e:
        with fast.using(**{name: value}):
            pass
    assert "\n" not in str(e.value) and repr(value) in str(e.value)


def test_the_knobs_cannot_be_patched_by_hand():
    with pytest.raises(AttributeError, match=r"use `with minires.fast.using\(chunk_bytes=...\)"):
        fast.knobs.chunk_bytes = 1


def test_each_knob_is_read_where_its_decision_is_taken():
    x, w = np.zeros((4, 16, 8, 8), np.float32), np.zeros((16, 16, 3, 3), np.float32)
    assert chunked_conv.branch_for(x, w, 1, 1) is shifted_gemm
    with fast.using(shifted_gemm_max_channels=0):
        assert chunked_conv.branch_for(x, w, 1, 1) is not shifted_gemm
    with fast.using(winograd_min_channels=16):
        assert chunked_conv.branch_for(x, w, 1, 1) is winograd
    with fast.using(chunk_bytes=1000):
        assert columns.images_per_chunk(x, 10) == 25
    with fast.using(num_threads=3):
        assert threads.num_threads() == 3
    assert threads.num_threads() >= 1


def test_set_num_threads_sets_the_knob_for_good():
    before = fast.knobs.num_threads
    try:
        fast.set_num_threads(np.int64(3))
        assert fast.knobs.num_threads == 3 and fast.num_threads() == 3
        fast.set_num_threads(None)  # the default again
        assert fast.knobs.num_threads is None and fast.num_threads() >= 1
    finally:
        config.configure(num_threads=before)


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_positive_int_by_the_argument_name(n):
    # 0 and -5 were taken as 1, 2.5 as 2: a thread count is a positive int, or None.
    before = fast.knobs.num_threads
    with pytest.raises(ValueError, match=r"^minires.fast.set_num_threads: n must be a positive "
                                         r"int \(or None for the default\), got ") as e:
        fast.set_num_threads(n)
    assert repr(n) in str(e.value) and fast.knobs.num_threads == before
