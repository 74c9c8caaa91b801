"""hypothesis strategies of :class:`~minires.testing.case.Case`: the examples a check draws.

The numbers of an array come from a seeded generator (:class:`~minires.testing.case.Values`),
so hypothesis draws and shrinks shapes, seeds and parameters, never thousands of floats. The
geometries start at the smallest valid size, where shrinking ends: 1x1 images, kernels as large as
the padded input, odd sizes with stride 2.

    values, arrays, shapes, dtypes, nchw, seeds     building blocks, for your own ``@given`` tests
    conv_geometries, pool_geometries                valid sizes, strides and paddings (dicts)
    cases                                           a Case from one strategy per argument
    elementwise_cases, conv_cases, pool_cases, batch_norm_cases, linear_cases,
    cross_entropy_cases, pad_channels_cases         Cases for the built-in ops' signatures
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .case import Case, Values, as_case, is_data

seeds = st.integers(0, 2**16)


def distinct_seeds(draw, n):
    """n different seeds (shrinking to 0, 1, 2, ...), inside an ``@st.composite``: two inputs of
    one shape never get the same numbers, which would hide a swapped pair or make a tie."""
    return draw(st.lists(seeds, min_size=n, max_size=n, unique=True))


def _strategy(v):
    return v if isinstance(v, st.SearchStrategy) else st.just(v)


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=4):
    """Array shapes: ``min_dims``..``max_dims`` axes of ``min_side``..``max_side`` each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def dtypes():
    """float32 or float64, the two dtypes minires computes in."""
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def values(shape=None, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
    """:class:`Values` of ``shape`` (a tuple, or a strategy of them; default: :func:`shapes`)."""
    shape = shapes() if shape is None else shape
    return st.builds(lambda s, seed: Values(s, seed, bounds, margin, distinct), _strategy(shape),
                     seeds)


def arrays(shape=None, dtype=np.float64, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
    """NumPy arrays for your own ``@given`` tests; ``dtype`` a dtype or a strategy (:func:`dtypes`).

    The numbers come from a seeded generator (see :class:`Values`), so hypothesis shrinks the
    shape and the seed, not thousands of floats.
    """
    return st.builds(lambda v, d: v.numpy(d), values(shape, bounds, margin, distinct),
                     _strategy(np.dtype(dtype) if not isinstance(dtype, st.SearchStrategy)
                               else dtype))


def nchw(max_batch=3, max_channels=3, min_size=1, max_size=6):
    """(N, C, H, W) image-batch shapes; H and W drawn separately (non-square images too)."""
    side = st.integers(min_size, max_size)
    return st.tuples(st.integers(1, max_batch), st.integers(1, max_channels), side, side)


@st.composite
def conv_geometries(draw, kernels=(1, 2, 3, 5, 7), strides=(1, 2, 3), max_padding=3,
                    max_batch=2, max_channels=3, max_extra=4, square_kernels=False):
    """A valid convolution: dict N, C_in, C_out, H, W, kh, kw, stride, padding.

    H runs from the smallest size that holds one window (kh - 2*padding, at least 1) to
    ``max_extra`` more, so the awkward cases come up and are where shrinking ends: 1x1 images,
    kernels exactly as large as the padded input, odd sizes with stride 2 (the last rows and
    columns that no window reaches), windows that lie wholly in the padding.
    """
    kh = draw(st.sampled_from(kernels))
    kw = kh if square_kernels else draw(st.sampled_from(kernels))
    stride, padding = draw(st.sampled_from(strides)), draw(st.integers(0, max_padding))
    low_h, low_w = max(1, kh - 2 * padding), max(1, kw - 2 * padding)
    return dict(N=draw(st.integers(1, max_batch)), C_in=draw(st.integers(1, max_channels)),
                C_out=draw(st.integers(1, max_channels)),
                H=draw(st.integers(low_h, low_h + max_extra)),
                W=draw(st.integers(low_w, low_w + max_extra)),
                kh=kh, kw=kw, stride=stride, padding=padding)


@st.composite
def pool_geometries(draw, kernels=(1, 2, 3), strides=(None, 1, 2, 3), max_batch=2,
                    max_channels=3, max_extra=4):
    """A valid pooling: dict N, C, H, W, kernel_size, stride (None: the kernel size), padding
    (at most half the kernel), H and W from one window's size up."""
    k = draw(st.sampled_from(kernels))
    stride, padding = draw(st.sampled_from(strides)), draw(st.integers(0, k // 2))
    low = max(1, k - 2 * padding)
    return dict(N=draw(st.integers(1, max_batch)), C=draw(st.integers(1, max_channels)),
                H=draw(st.integers(low, low + max_extra)),
                W=draw(st.integers(low, low + max_extra)),
                kernel_size=k, stride=stride, padding=padding)


def cases(**kwargs):
    """A strategy of :class:`Case` from one strategy (or fixed value) per argument.

    Arguments that draw :class:`Values` or float arrays are the op's tensor inputs, in the order
    given; the others are its parameters:  ``cases(x=values(nchw()), slope=st.floats(0, 1))``.
    """
    def build(drawn):
        inputs = {k: v for k, v in drawn.items() if is_data(v)}
        return Case(inputs, **{k: v for k, v in drawn.items() if k not in inputs})
    return st.fixed_dictionaries({k: _strategy(v) for k, v in kwargs.items()}).map(build)


def elementwise_cases(names=("x",), shape=None, **value_options):
    """Cases of one or more inputs of the same shape (default :func:`shapes`), no parameters."""
    @st.composite
    def draw_case(draw):
        s = draw(_strategy(shapes() if shape is None else shape))
        ks = distinct_seeds(draw, len(names))
        return Case({n: Values(s, k, **value_options) for n, k in zip(names, ks)})
    return draw_case()


@st.composite
def conv_cases(draw, bias=None, **geometry):
    """Cases for ``conv2d(x, w[, b], stride, padding)`` over :func:`conv_geometries`.

    ``bias``: True, False, or None (drawn).
    """
    g = draw(conv_geometries(**geometry))
    sx, sw, sb = distinct_seeds(draw, 3)
    inputs = {"x": Values((g["N"], g["C_in"], g["H"], g["W"]), sx),
              "w": Values((g["C_out"], g["C_in"], g["kh"], g["kw"]), sw)}
    if draw(st.booleans()) if bias is None else bias:
        inputs["b"] = Values((g["C_out"],), sb)
    return Case(inputs, stride=g["stride"], padding=g["padding"])


@st.composite
def pool_cases(draw, **geometry):
    """Cases for ``max_pool2d``/``avg_pool2d(x, kernel_size, stride, padding)``; distinct values,
    so no window has a tie and no finite-difference step moves its maximum."""
    g = draw(pool_geometries(**geometry))
    x = Values((g["N"], g["C"], g["H"], g["W"]), draw(seeds), distinct=True)
    return Case({"x": x}, kernel_size=g["kernel_size"], stride=g["stride"], padding=g["padding"])


@st.composite
def batch_norm_cases(draw, training=None, ndim=None, eps=1e-5, momentum=0.1):
    """Cases for ``batch_norm(x, weight, bias, running_mean, running_var, training, momentum,
    eps)``: x (N, C) or (N, C, H, W) with at least two values per channel, all distinct; |weight|
    in [0.5, 2]; in eval mode running statistics (running_var in [0.5, 2]), in training none.
    ``training`` and ``ndim`` (2 or 4): fixed, or None to draw."""
    training = draw(st.booleans()) if training is None else training
    ndim = draw(st.sampled_from([4, 2])) if ndim is None else ndim
    C = draw(st.integers(1, 3))
    if ndim == 2:
        shape = (draw(st.integers(2, 6)), C)
    else:
        N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        shape = (max(N, 2) if H * W == 1 else N, C, H, W)
    sx, sg, sb, sm, sv = distinct_seeds(draw, 5)
    inputs = {"x": Values(shape, sx, distinct=True), "weight": Values((C,), sg, margin=0.5),
              "bias": Values((C,), sb)}
    stats = dict(running_mean=None, running_var=None)
    if not training:
        stats = dict(running_mean=Values((C,), sm),
                     running_var=Values((C,), sv, bounds=(0.5, 2.0)))
    return Case(inputs, **stats, training=training, momentum=momentum, eps=eps)


@st.composite
def linear_cases(draw, bias=None, max_size=5):
    """Cases for ``linear(x, w[, b])``: x (N, in), w (out, in), b (out,)."""
    N, n_in, n_out = (draw(st.integers(1, max_size)) for _ in range(3))
    sx, sw, sb = distinct_seeds(draw, 3)
    inputs = {"x": Values((N, n_in), sx), "w": Values((n_out, n_in), sw)}
    if draw(st.booleans()) if bias is None else bias:
        inputs["b"] = Values((n_out,), sb)
    return Case(inputs)


@st.composite
def cross_entropy_cases(draw, max_batch=6, max_classes=6):
    """Cases for ``softmax_cross_entropy(logits, labels)``: logits (N, C) in [-6, 6], integer
    labels in [0, C) (a parameter: no gradient)."""
    N, C = draw(st.integers(1, max_batch)), draw(st.integers(1, max_classes))
    labels = np.random.default_rng(draw(seeds)).integers(0, C, N)
    return Case({"logits": Values((N, C), draw(seeds), bounds=(-6.0, 6.0))}, labels=labels)


@st.composite
def pad_channels_cases(draw):
    """Cases for ``pad_channels(x, out_channels, stride)``: out_channels >= C, stride 1..3."""
    N, C, H, W = draw(nchw(max_batch=2, max_channels=3))
    return Case({"x": Values((N, C, H, W), draw(seeds))},
                out_channels=C + draw(st.integers(0, 3)), stride=draw(st.integers(1, 3)))


def case_strategy(inputs, names):
    """``inputs`` as a strategy of Case: a strategy (of Case, dict, tuple or one Values/array),
    a dict of strategies (see :func:`cases`), or a tuple of strategies, one per input."""
    if isinstance(inputs, dict):
        inputs = cases(**inputs)
    elif isinstance(inputs, (tuple, list)):
        inputs = st.tuples(*map(_strategy, inputs))
    if not isinstance(inputs, st.SearchStrategy):
        raise TypeError(f"inputs must be a Case or a hypothesis strategy, got "
                        f"{type(inputs).__name__}")
    return inputs.map(lambda drawn: as_case(drawn, names))
