"""An example a check runs on: a :class:`Case` of :class:`Values`.

A Case is the op's tensor inputs by name, each a :class:`Values` (a shape and the seed of the
generator its numbers come from, so a report can print it in one line) or an array, and its other
arguments (stride, padding, ...). ``repr`` of either is Python that builds it again: the rerun
line of a failure report.

    Case({"x": Values((2, 3, 5, 5), seed=1), "w": Values((4, 3, 3, 3))}, stride=2, padding=1)

Nothing here needs hypothesis; :mod:`minires.testing.strategies` draws Cases.
"""
import numpy as np

from .. import backend


class Values:
    """The recipe of an array: ``shape``, and the ``seed`` its numbers are drawn from.

    Numbers are uniform in ``bounds``; with ``margin`` > 0, of either sign and between ``margin``
    and the largest |bound| (for ops with a kink at 0, like ReLU); with ``distinct``, evenly spaced
    over ``bounds`` and shuffled, so no two are close (for max pooling: no ties; for batch norm:
    no channel of near-equal values).
    ``repr`` is Python that builds the same array, which is what a failure report prints.
    """

    def __init__(self, shape, seed=0, bounds=(-2.0, 2.0), margin=0.0, distinct=False):
        self.shape = tuple(int(s) for s in shape)
        self.seed, self.bounds = int(seed), (float(bounds[0]), float(bounds[1]))
        self.margin, self.distinct = float(margin), bool(distinct)

    def numpy(self, dtype=np.float64):
        rng = np.random.default_rng(self.seed)
        low, high = self.bounds
        size = int(np.prod(self.shape))
        if self.distinct:
            a = low + (rng.permutation(size) + 0.5) * ((high - low) / max(size, 1))
        elif self.margin > 0:
            a = rng.uniform(self.margin, max(abs(low), abs(high)), size) * rng.choice([-1, 1], size)
        else:
            a = rng.uniform(low, high, size)
        return a.reshape(self.shape).astype(dtype)

    def __array__(self, dtype=None, copy=None):
        return self.numpy(dtype or np.float64)

    def __repr__(self):
        extra = "" if self.bounds == (-2.0, 2.0) else f", bounds={self.bounds}"
        extra += f", margin={self.margin}" if self.margin else ""
        extra += ", distinct=True" if self.distinct else ""
        return f"Values({self.shape}, seed={self.seed}{extra})"


def is_data(v):
    """True for what becomes a tensor input: a :class:`Values` or a float NumPy array."""
    return isinstance(v, Values) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _literal(v):
    if isinstance(v, np.ndarray):
        body = np.array2string(v, separator=", ", threshold=1 << 30, floatmode="unique")
        return f"np.array({body}" + (")" if v.dtype.kind == "i" else f", dtype='{v.dtype}')")
    return repr(v)


class Case:
    """One example: ``inputs`` ({name: Values or float array}, the op's tensors, in order) and
    ``params`` (its other arguments: ints, tuples, flags, or arrays such as running statistics).

        Case({"x": Values((2, 3, 5, 5), seed=1), "w": Values((4, 3, 3, 3))}, stride=2, padding=1)
    """

    def __init__(self, inputs, **params):
        if not isinstance(inputs, dict) or not inputs:
            raise TypeError("Case(inputs, **params): inputs must be a non-empty dict of "
                            "{name: Values or array}")
        self.inputs, self.params = dict(inputs), params

    @property
    def names(self):
        return tuple(self.inputs)

    def arrays(self, dtype=np.float64):
        return [np.array(v.numpy() if isinstance(v, Values) else v, dtype=dtype)
                for v in self.inputs.values()]

    def kwargs(self, dtype=np.float64, device="cpu"):
        """``params``, every float array (or Values) a fresh ``dtype`` array on ``device``."""
        out = {}
        for k, v in self.params.items():
            if is_data(v):
                v = backend.to_device(np.array(np.asarray(v), dtype=dtype), device)
            elif isinstance(v, np.ndarray):
                v = v.copy()
            out[k] = v
        return out

    def shapes(self):
        return {k: tuple(np.shape(v) if isinstance(v, np.ndarray) else v.shape)
                for k, v in self.inputs.items()}

    def describe(self):
        """Short and readable: ``x (1, 1, 3, 2), w (1, 1, 2, 2), stride=2, padding=0``."""
        parts = [f"{k} {s}" for k, s in self.shapes().items()]
        for k, v in self.params.items():
            if v is None:
                continue
            if is_data(v):
                parts.append(f"{k} {np.shape(v) if isinstance(v, np.ndarray) else v.shape}")
            elif isinstance(v, np.ndarray):
                parts.append(f"{k}={_literal(v) if v.size <= 8 else f'array {v.shape}'}")
            else:
                parts.append(f"{k}={v!r}")
        return ", ".join(parts)

    def __repr__(self):
        inputs = ", ".join(f"{k!r}: {_literal(v)}" for k, v in self.inputs.items())
        params = "".join(f", {k}={_literal(v)}" for k, v in self.params.items())
        return f"Case({{{inputs}}}{params})"


def as_case(drawn, names):
    """``drawn`` as a Case: a Case as it is, a dict as its inputs, one Values/array or a tuple of
    them named by ``names`` (then ``input2``, ``input3``, ... for any beyond)."""
    if isinstance(drawn, Case):
        return drawn
    if isinstance(drawn, dict):
        return Case(drawn)
    if is_data(drawn):
        drawn = (drawn,)
    names = list(names) + [f"input{i}" for i in range(len(names), len(drawn))]
    return Case(dict(zip(names, drawn)))
