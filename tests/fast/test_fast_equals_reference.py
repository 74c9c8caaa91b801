"""The rule: every fast op computes its reference op's function, in float64, on every branch it has.

minires/fast/ computes conv2d, batch_norm and relu differently from minires/functional/ (chunks,
blocks, threads, shortcuts), never a different function. Each case runs one input through the
reference class and through its fast twin, called directly, and compares the output, every
gradient and the running statistics to 1e-12. The branches:

    ChunkedConv2d     each of its BRANCHES: 1x1 stride 1 (no im2col), shifted GEMMs (stride-1
                      "same" convolutions, through BLAS or np.matmul, and the padded-width columns
                      that replace them where no BLAS GEMM can be called), padded-width columns
                      (other stride 1), im2col (stride > 1); dx by the flipped kernel (stride 1,
                      square kernel, p < k) or by col2im (the rest); Winograd when turned on;
                      chunks of one image, of a few, of the whole batch; bias or not; an input
                      that needs no gradient; NCHW or channel-major x and dy; NaN, inf and -inf
                      in x, w or dy (in the same entries of y, dx and dW as the reference's);
                      no images, no input or output channels (the empty sums), no pixels
    BlockedBatchNorm  training and eval; blocks of one channel, of a few, of all; (N, C) and
                      (N, C, H, W); NCHW or channel-major; read-only running statistics
    BlockedReLU       blocks of one row, of a few, of all; 1-D, 2-D, 4-D; channel-major, NCHW and
                      strided (no blocks)

Then one gradient check per fast branch (the reference ops' gradient checks are in the
specification tests), and whole networks: the same loss and gradients in both modes, and a model
trained in one mode loads and runs in the other.
"""
import numpy as np
import pytest

import minires as mr
from minires import functional as F, io, models, optim
from minires.fast import (blas, chunked_conv, columns, empty, flipped_dx, pointwise, shifted_gemm,
                          winograd)
from minires.fast.blocked_norm import BlockedBatchNorm
from minires.fast.blocked_relu import BlockedReLU
from minires.fast.chunked_conv import ChunkedConv2d
from minires.functional.activation import ReLU
from minires.functional.conv import Conv2d, out_size
from minires.functional.norm import BatchNorm

from opcheck import forward_backward, leaf

TOL = dict(rtol=1e-12, atol=1e-12)


def assert_same(got, want):
    for a, b in zip(got, want):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(a, b, **TOL)


def both(make, arrays, layouts=None, seed=0, gy_layout="nchw", needs=None, gy=None,
         fast_ones=(True, False)):
    """(y, grads) of the fast twin and of the reference: ``make(fast)`` builds the Function
    (``gy``: the upstream gradient, else standard normal from ``seed``; ``fast_ones=(True,)``:
    the fast twin's alone)."""
    layouts = layouts or ["nchw"] * len(arrays)
    needs = needs or [True] * len(arrays)
    out = []
    for fast in fast_ones:
        tensors = [leaf(a, "cpu", lay) if need else mr.Tensor(a)
                   for a, lay, need in zip(arrays, layouts, needs)]
        hooked = [t for t in tensors if t.requires_grad]
        y, grads, _ = forward_backward(lambda *ts: make(fast)(*tensors), hooked, gy=gy, seed=seed,
                                       gy_layout=gy_layout)
        out.append((y, grads))
    return out


# -- convolution -----------------------------------------------------------------------------------

# name: (kh, kw, stride, padding, the module of chunked_conv.BRANCHES that computes it).
# "no BLAS": as if blas.available() were False; "matmul": the shifted_gemm_via="matmul" knob.
CONV_BRANCHES = {
    "1x1 stride 1: no im2col": (1, 1, 1, 0, pointwise),
    "3x3 same: shifted GEMMs": (3, 3, 1, 1, shifted_gemm),
    "5x5 same: shifted GEMMs": (5, 5, 1, 2, shifted_gemm),
    "3x3 same, matmul: shifted GEMMs through np.matmul": (3, 3, 1, 1, shifted_gemm),
    "3x3 same, no BLAS: wide columns, flipped dx": (3, 3, 1, 1, flipped_dx),
    "5x5 same, no BLAS: wide columns, flipped dx": (5, 5, 1, 2, flipped_dx),
    "3x3 valid: wide columns, flipped dx": (3, 3, 1, 0, flipped_dx),
    "2x2 pad 1: even kernel, flipped dx": (2, 2, 1, 1, flipped_dx),
    "1x1 pad 1: wide columns, col2im dx": (1, 1, 1, 1, columns),
    "3x3 pad 3: wide columns, col2im dx": (3, 3, 1, 3, columns),
    "3x1: wide columns, col2im dx": (3, 1, 1, 1, columns),
    "3x3 stride 2: im2col, col2im": (3, 3, 2, 1, columns),
    "1x1 stride 2: projection": (1, 1, 2, 0, columns),
    "7x7 stride 2 pad 3: the stem": (7, 7, 2, 3, columns),
}
CHUNKS = {"one image per chunk": 1, "a few images per chunk": 6000, "the whole batch": 1 << 30}


def take_branch(using, monkeypatch, branch, chunk):
    """Set the chunk size of every conv branch, and take the fallback for a "no BLAS" branch."""
    using(chunk_bytes=CHUNKS[chunk], shifted_gemm_chunk_bytes=CHUNKS[chunk])
    if "no BLAS" in branch:
        monkeypatch.setattr(blas, "available", lambda: False)
    if "matmul" in branch:
        using(shifted_gemm_via="matmul")
        monkeypatch.setattr(blas, "window_sum", None)  # not called: np.matmul does the work
        monkeypatch.setattr(blas, "window_products", None)
    kh, kw, s, p, module = CONV_BRANCHES[branch]
    x, w = conv_problem(kh, kw, False)[:2]
    assert chunked_conv.branch_for(x, w, s, p) is module
    return kh, kw, s, p


def test_every_branch_of_the_dispatcher_is_tested():
    # Winograd and the empty convolutions: below.
    tested = {module for *_, module in CONV_BRANCHES.values()} | {winograd, empty}
    assert tested == set(chunked_conv.BRANCHES)


def conv_problem(kh, kw, bias, seed=0, N=5, C=3, C_out=4, H=9, W=8):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((C_out, C, kh, kw))]
    return arrays + ([rng.standard_normal(C_out)] if bias else [])


def conv(stride, padding):
    return lambda fast: (ChunkedConv2d if fast else Conv2d)(stride, padding)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("branch", CONV_BRANCHES)
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_conv_equals_reference_conv(using, monkeypatch, branch, chunk, bias):
    kh, kw, s, p = take_branch(using, monkeypatch, branch, chunk)
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), conv_problem(kh, kw, bias))
    assert_same([y, *grads], [y_ref, *grads_ref])


@pytest.mark.parametrize("branch", CONV_BRANCHES)
@pytest.mark.parametrize("x_layout, gy_layout", [("channel_major", "channel_major"),
                                                 ("channel_major", "nchw"),
                                                 ("nchw", "channel_major")])
def test_chunked_conv_equals_reference_conv_in_either_layout(using, monkeypatch, branch, x_layout,
                                                             gy_layout):
    kh, kw, s, p = take_branch(using, monkeypatch, branch, "a few images per chunk")
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), conv_problem(kh, kw, True, seed=1),
                                          layouts=[x_layout, "nchw", "nchw"], gy_layout=gy_layout)
    assert_same([y, *grads], [y_ref, *grads_ref])


@pytest.mark.parametrize("branch", ["1x1 stride 1: no im2col", "3x3 same: shifted GEMMs",
                                    "3x3 same, matmul: shifted GEMMs through np.matmul",
                                    "3x3 same, no BLAS: wide columns, flipped dx",
                                    "3x3 stride 2: im2col, col2im"])
def test_chunked_conv_equals_reference_when_x_needs_no_gradient(using, monkeypatch, branch):
    # The network's first layer: its input is data, so only dW (and db) are wanted.
    kh, kw, s, p = take_branch(using, monkeypatch, branch, "a few images per chunk")
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), conv_problem(kh, kw, True, seed=2),
                                          needs=[False, True, True])
    assert_same([y, *grads], [y_ref, *grads_ref])


# -- batch norm ------------------------------------------------------------------------------------

BLOCKS = {"one row per block": 1, "a few rows per block": 200, "all rows in one block": 1 << 30}


def bn_problem(shape, seed=0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    view = (1, C) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0, C).reshape(view)
    x += rng.uniform(-3, 3, C).reshape(view)
    params = [x, rng.uniform(0.5, 2.0, C), rng.standard_normal(C)]
    return params, rng.standard_normal(C), rng.uniform(0.5, 2.0, C)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape, x_layout", [((4, 6, 3, 5), "channel_major"),
                                             ((4, 6, 3, 5), "nchw"), ((9, 6), "nchw")])
def test_blocked_batch_norm_equals_reference_batch_norm(using, block, training, shape, x_layout):
    using(block_bytes=BLOCKS[block])
    arrays, rm, rv = bn_problem(shape)
    stats = {True: (rm.copy(), rv.copy()), False: (rm.copy(), rv.copy())}

    def make(fast):
        return (BlockedBatchNorm if fast else BatchNorm)(training, *stats[fast], 0.1, 1e-5)

    (y, grads), (y_ref, grads_ref) = both(make, arrays, layouts=[x_layout, "nchw", "nchw"])
    assert_same([y, *grads, *stats[True]], [y_ref, *grads_ref, *stats[False]])


def read_only_stats(rm, rv, buffer):
    stats = {"running_mean": rm.copy(), "running_var": rv.copy()}
    stats[buffer].flags.writeable = False
    return stats


@pytest.mark.parametrize("buffer", ["running_mean", "running_var"])
def test_blocked_batch_norm_refuses_a_read_only_running_statistic_in_training_by_name(buffer):
    # It failed deep in a block ("output array is read-only"), after the work. The reference
    # fails too (a ValueError, "assignment destination is read-only", once it has updated
    # running_mean); the fast one names the buffer and changes nothing first.
    arrays, rm, rv = bn_problem((4, 6, 3, 5))
    tensors = [mr.Tensor(a, requires_grad=True) for a in arrays]
    with pytest.raises(ValueError):
        BatchNorm(True, *read_only_stats(rm, rv, buffer).values(), 0.1, 1e-5)(*tensors)
    stats = read_only_stats(rm, rv, buffer)
    with pytest.raises(ValueError, match=rf"^batch_norm: {buffer} is read-only, and training "
                                         "updates it in place"):
        BlockedBatchNorm(True, *stats.values(), 0.1, 1e-5)(*tensors)
    np.testing.assert_array_equal(stats["running_mean"], rm)
    np.testing.assert_array_equal(stats["running_var"], rv)
    with pytest.raises(ValueError, match=rf"batch_norm: {buffer} is read-only"):
        F.batch_norm(tensors[0], *tensors[1:], *stats.values(), training=True)


def test_blocked_batch_norm_in_eval_mode_takes_read_only_running_statistics():
    arrays, rm, rv = bn_problem((4, 6, 3, 5))
    stats = read_only_stats(rm, rv, "running_mean")
    stats["running_var"].flags.writeable = False

    def make(fast):
        return (BlockedBatchNorm if fast else BatchNorm)(False, *stats.values(), 0.1, 1e-5)

    (y, grads), (y_ref, grads_ref) = both(make, arrays)
    assert_same([y, *grads], [y_ref, *grads_ref])


# -- ReLU ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("shape, x_layout", [((3, 4, 5, 6), "channel_major"),
                                             ((3, 4, 5, 6), "nchw"), ((7, 5), "nchw"),
                                             ((11,), "nchw")])
def test_blocked_relu_equals_reference_relu(using, block, shape, x_layout):
    using(block_bytes=BLOCKS[block])
    x = np.random.default_rng(3).standard_normal(shape)
    x.reshape(-1)[::4] = 0.0  # the kink: both give y = 0 and gradient 0 there
    (y, grads), (y_ref, grads_ref) = both(lambda fast: BlockedReLU() if fast else ReLU(), [x],
                                          layouts=[x_layout])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(grads[0], grads_ref[0])


def test_blocked_relu_equals_reference_relu_on_a_strided_view():
    # Neither layout that map_rows cuts into blocks: it runs on the whole arrays at once.
    x = np.random.default_rng(4).standard_normal((4, 6, 5, 8))
    outs = []
    for cls in (BlockedReLU, ReLU):
        t = mr.Tensor(x, requires_grad=True)
        view = t[:, ::2, :, 1::2]
        y = cls()(view)
        y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
        outs.append((y.data, t.grad))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


WINOGRAD_PADDINGS = {"3x3 same: Winograd forward and dx": 1, "3x3 valid: Winograd": 0,
                     "3x3 pad 2: Winograd": 2}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("branch", WINOGRAD_PADDINGS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("need_x", [True, False])
def test_chunked_conv_with_winograd_equals_reference_conv(using, branch, chunk, bias, need_x):
    using(chunk_bytes=CHUNKS[chunk], winograd_min_channels=1)  # the tiny problem takes Winograd
    p = WINOGRAD_PADDINGS[branch]
    arrays = conv_problem(3, 3, bias)
    assert chunked_conv.branch_for(*arrays[:2], 1, p) is winograd
    needs = [need_x] + [True] * (len(arrays) - 1)
    (y, grads), (y_ref, grads_ref) = both(conv(1, p), arrays, needs=needs)
    assert_same([y, *grads], [y_ref, *grads_ref])


def shapes(C, C_out, k):
    return np.zeros((2, C, 6, 6)), np.zeros((C_out, C, k, k))


def test_winograd_runs_only_for_wide_stride_1_3x3_convolutions(using):
    assert not winograd.applies(*shapes(512, 512, 3), 1, 1)  # off by default
    m = 128
    using(winograd_min_channels=m)
    assert winograd.applies(*shapes(m, m, 3), 1, 1)
    assert not winograd.applies(*shapes(m - 1, m, 3), 1, 1)  # CIFAR widths keep im2col
    assert not winograd.applies(*shapes(m, m, 3), 2, 1)
    assert not winograd.applies(*shapes(m, m, 1), 1, 0)
    assert not winograd.applies(*shapes(m, m, 3), 1, 3)


# -- NaN and inf, and empty shapes ---------------------------------------------------------------

NON_FINITE = {"NaN": np.nan, "inf": np.inf, "-inf": -np.inf}


def spots(where, kh, kw):
    """Where the non-finite values go: borders and corners (where the fast branches read padding
    and garbage that the reference does not), and one interior entry; in a few images/channels."""
    return {"x": [(0, 0, 4, 7), (2, 1, 8, 0), (4, 2, 3, 3)],  # right border, corner, inside
            "w": [(1, 2, 0, kw - 1)],                         # a corner tap of one filter
            "dy": [(1, 3, 0, -1), (3, 0, -1, 0)]}[where]      # two corners of dy


def non_finite_problem(kh, kw, s, p, where, value):
    """conv_problem with ``value`` at ``spots(where)`` of x, w or dy; returns (x, w, b), dy."""
    x, w, b = conv_problem(kh, kw, True)
    N, C_out = x.shape[0], w.shape[0]
    gy = np.random.default_rng(0).standard_normal(
        (N, C_out, out_size(x.shape[2], kh, s, p), out_size(x.shape[3], kw, s, p)))
    target = {"x": x, "w": w, "dy": gy}[where]
    for spot in spots(where, kh, kw):
        target[spot] = NON_FINITE[value]
    return [x, w, b], gy


def assert_same_non_finite(got, want, names=("y", "dx", "dW", "db")):
    """NaN in the same entries, inf of the same sign in the same entries, the rest within TOL."""
    for name, a, b in zip(names, got, want):
        for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
            assert np.array_equal(test(a), test(b)), \
                f"{name}: {test(a).sum()} {kind} entries, the reference has {test(b).sum()}"
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("branch", CONV_BRANCHES)
def test_chunked_conv_puts_nan_and_inf_where_the_reference_does(using, monkeypatch, branch, where,
                                                                value, chunk):
    # One NaN pixel at a right border made 27 entries of a 3x3 dW NaN on the shifted GEMMs, where
    # the reference (and the exact answer) has 18: the garbage outputs' 0 * NaN.
    kh, kw, s, p = take_branch(using, monkeypatch, branch, chunk)
    arrays, gy = non_finite_problem(kh, kw, s, p, where, value)
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), arrays, gy=gy)
    assert_same_non_finite([y, *grads], [y_ref, *grads_ref])
    assert not all(np.isfinite(a).all() for a in [y_ref, *grads_ref])  # something to compare


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("branch", WINOGRAD_PADDINGS)
def test_chunked_conv_with_winograd_puts_nan_and_inf_where_the_reference_does(using, branch,
                                                                              where, value):
    using(chunk_bytes=CHUNKS["a few images per chunk"], winograd_min_channels=1)
    p = WINOGRAD_PADDINGS[branch]
    arrays, gy = non_finite_problem(3, 3, 1, p, where, value)
    (y, grads), (y_ref, grads_ref) = both(conv(1, p), arrays, gy=gy)
    assert_same_non_finite([y, *grads], [y_ref, *grads_ref])


@pytest.mark.parametrize("branch, routes", [
    ("3x3 same: shifted GEMMs", ["weight_grad", "backward"]),
    ("3x3 same, no BLAS: wide columns, flipped dx", ["backward"]),
    ("3x3 same: Winograd forward and dx", ["forward", "backward"])])
def test_finite_numbers_never_take_the_routes_kept_for_nan_and_inf(using, monkeypatch, branch,
                                                                   routes):
    # The checks of nonfinite.py only ever replace a result that is not finite: with finite
    # numbers the columns' routes that stand in for these branches never run.
    def forbidden(*args, **kwargs):
        raise AssertionError("a finite problem took the route kept for NaN and inf")

    if "Winograd" in branch:
        using(winograd_min_channels=1)
        kh, kw, s, p = 3, 3, 1, 1
    else:
        kh, kw, s, p = take_branch(using, monkeypatch, branch, "one image per chunk")
    for route in routes:
        monkeypatch.setattr(columns, route, forbidden)
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), conv_problem(kh, kw, True))
    assert_same([y, *grads], [y_ref, *grads_ref])


EMPTY = {"no images": (0, 3, 4), "no input channels": (5, 0, 4), "no output channels": (5, 3, 0)}


def empty_sums(x, w, b, gy):
    """The exact answer of an empty convolution: y = b (or 0), dx = 0, dW = 0, db = sum dy."""
    y = np.zeros(gy.shape) + (0 if b is None else b[None, :, None, None])
    db = [] if b is None else [gy.sum(axis=(0, 2, 3))]
    return [y, np.zeros(x.shape), np.zeros(w.shape), *db]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", EMPTY)
@pytest.mark.parametrize("branch", [*CONV_BRANCHES, "3x3 same: Winograd forward and dx"])
def test_chunked_conv_of_empty_shapes_is_the_empty_sums_as_in_the_reference(using, monkeypatch,
                                                                           branch, shape, bias):
    """N = 0, C_in = 0 and C_out = 0 under every branch's settings: the dispatcher takes
    ``empty``. The reference computes the first two through its GEMMs (compared); C_out = 0 it
    refuses where it reshapes w to a (0, -1) matrix, so there the exact answer is the oracle."""
    if "Winograd" in branch:
        using(winograd_min_channels=1)
        kh, kw, s, p = 3, 3, 1, 1
    else:
        kh, kw, s, p = take_branch(using, monkeypatch, branch, "a few images per chunk")
    N, C, C_out = EMPTY[shape]
    arrays = conv_problem(kh, kw, bias, N=N, C=C, C_out=C_out)
    assert chunked_conv.branch_for(*arrays[:2], s, p) is empty
    gy = np.random.default_rng(0).standard_normal(
        (N, C_out, out_size(9, kh, s, p), out_size(8, kw, s, p)))
    runs = both(conv(s, p), arrays, gy=gy, fast_ones=(True, False) if C_out else (True,))
    want = empty_sums(*arrays[:2], arrays[2] if bias else None, gy)
    for y, grads in runs:  # the fast twin's, and the reference's where it computes one
        assert [a.shape for a in [y, *grads]] == [a.shape for a in want]
        assert_same([y, *grads], want)


NO_PIXELS = {"no rows": (0, 8), "no columns": (9, 0), "neither": (0, 0)}


def fits(branch, H, W):
    kh, kw, s, p, _ = CONV_BRANCHES[branch]
    return H + 2 * p >= kh and W + 2 * p >= kw  # else conv2d refuses it, in both modes


@pytest.mark.parametrize("branch, pixels", [(b, n) for b in CONV_BRANCHES for n in NO_PIXELS
                                            if fits(b, *NO_PIXELS[n])])
def test_chunked_conv_of_images_without_pixels_equals_reference_conv(using, monkeypatch, branch,
                                                                    pixels):
    # Only the padding is left to convolve: y = W @ zeros + b (not an empty sum), dx is empty.
    # The flipped-kernel dx refused it (dy smaller than the kernel): the columns do it.
    kh, kw, s, p = take_branch(using, monkeypatch, branch, "a few images per chunk")
    H, W = NO_PIXELS[pixels]
    arrays = conv_problem(kh, kw, True, H=H, W=W)
    (y, grads), (y_ref, grads_ref) = both(conv(s, p), arrays)
    assert_same([y, *grads], [y_ref, *grads_ref])


# -- one gradient check per fast branch ------------------------------------------------------------

@pytest.mark.parametrize("branch", ["1x1 stride 1: no im2col", "3x3 same: shifted GEMMs",
                                    "3x3 same, no BLAS: wide columns, flipped dx",
                                    "3x3 pad 3: wide columns, col2im dx",
                                    "3x1: wide columns, col2im dx", "3x3 stride 2: im2col, col2im"])
def test_chunked_conv_gradcheck(using, monkeypatch, branch):
    # One image per chunk: the dW sum over chunks is checked too.
    kh, kw, s, p = take_branch(using, monkeypatch, branch, "one image per chunk")
    problem = conv_problem(kh, kw, True, N=2, C=2, C_out=2, H=5, W=4)
    inputs = [mr.Tensor(a, requires_grad=True) for a in problem]
    assert mr.gradcheck(lambda *ts: ChunkedConv2d(s, p)(*ts), *inputs)


def test_chunked_conv_winograd_gradcheck(using):
    using(chunk_bytes=1, winograd_min_channels=1)
    problem = conv_problem(3, 3, True, N=2, C=2, C_out=2, H=5, W=4)
    inputs = [mr.Tensor(a, requires_grad=True) for a in problem]
    assert mr.gradcheck(lambda *ts: ChunkedConv2d(1, 1)(*ts), *inputs)


@pytest.mark.parametrize("training", [True, False])
def test_blocked_batch_norm_gradcheck(using, training):
    using(block_bytes=1)
    arrays, rm, rv = bn_problem((3, 2, 2, 3), seed=5)
    inputs = [mr.Tensor(a, requires_grad=True) for a in arrays]
    stats = (None, None) if training else (rm, rv)
    assert mr.gradcheck(lambda *ts: BlockedBatchNorm(training, *stats, 0.1, 1e-5)(*ts), *inputs)


def test_blocked_relu_gradcheck(using):
    using(block_bytes=1)
    rng = np.random.default_rng(6)
    x = rng.uniform(0.1, 2.0, (2, 3, 4, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4, 4))  # off the kink
    assert mr.gradcheck(lambda t: BlockedReLU()(t), mr.Tensor(x, requires_grad=True))


# -- whole networks --------------------------------------------------------------------------------

def loss_and_grads(model, images, labels):
    for p in model.parameters():
        p.grad = None
    loss = F.softmax_cross_entropy(model(mr.Tensor(images)), labels)
    loss.backward()
    return [loss.data] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("build", [lambda: models.cifar_resnet(8, shortcut="A"),
                                   lambda: models.cifar_resnet(8, shortcut="B")])
def test_a_resnet_step_is_the_same_in_both_modes(build):
    rng = np.random.default_rng(7)
    images, labels = rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 10, 4)
    mr.manual_seed(0)
    model = build().to(dtype=np.float64)
    fast = loss_and_grads(model, images, labels)
    with mr.reference_ops():
        reference = loss_and_grads(model, images, labels)
    assert_same(fast, reference)


@pytest.mark.parametrize("trained_in, run_in", [("reference", "fast"), ("fast", "reference")])
def test_a_model_trained_in_one_mode_loads_and_runs_in_the_other(tmp_path, trained_in, run_in):
    rng = np.random.default_rng(8)
    images, labels = rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 8)
    mr.manual_seed(0)
    model = models.cifar_resnet(8, in_channels=1)
    with mr.reference_ops(trained_in == "reference"):
        opt = optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            F.softmax_cross_entropy(model(mr.Tensor(images)), labels).backward()
            opt.step()
        model.eval()
        with mr.no_grad():
            logits = model(mr.Tensor(images)).data
    io.save(model, tmp_path / "model.npz")
    loaded = io.load(tmp_path / "model.npz", models.cifar_resnet(8, in_channels=1)).eval()
    with mr.reference_ops(run_in == "reference"):
        with mr.no_grad():
            np.testing.assert_allclose(loaded(mr.Tensor(images)).data, logits, rtol=1e-4, atol=1e-5)
        loaded.train()
        loss = F.softmax_cross_entropy(loaded(mr.Tensor(images)), labels)  # and it trains on
        loss.backward()
    assert np.isfinite(loss.item()) and all(np.isfinite(p.grad).all() for p in loaded.parameters())


def test_blocked_batch_norm_in_float32_is_as_accurate_as_the_reference():
    # float32 over M = 65,536 values per channel (a CIFAR-sized batch): the statistics and
    # gradients of both paths are compared with the float64 reference. A running sum (einsum)
    # for the variance and dgamma lands about 20 times further away than a pairwise sum.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 2, 32, 32)) * 2 + 0.5
    gamma, beta, gy = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2), rng.standard_normal(x.shape)

    def run(cls, dtype):
        ts = [mr.Tensor(a.astype(dtype), requires_grad=True) for a in (x, gamma, beta)]
        rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
        cls(True, rm, rv, 0.1, 1e-5)(*ts).backward(gy.astype(dtype))
        return rv, ts[1].grad, ts[0].grad

    truth = run(BatchNorm, np.float64)
    for what, fast, ref, want in zip(("running_var", "dgamma", "dx"),
                                     run(BlockedBatchNorm, np.float32),
                                     run(BatchNorm, np.float32), truth):
        fast_err, ref_err = (np.median(np.abs(a - want) / np.abs(want)) for a in (fast, ref))
        assert fast_err <= 2 * ref_err, \
            f"{what}: fast path error {fast_err:.2e}, reference {ref_err:.2e}"
