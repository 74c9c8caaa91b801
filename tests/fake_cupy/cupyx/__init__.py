"""The part of ``cupyx`` minires uses, for the NumPy-backed fake CuPy (see ``cupy/__init__.py``)."""

import numpy as np


def scatter_add(a, index, values):
    np.add.at(
        a.view(np.ndarray),
        index,
        values.view(np.ndarray) if isinstance(values, np.ndarray) else values,
    )
