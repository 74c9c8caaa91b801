"""Differentiable ops, forward and backward side by side, one file per family: the REFERENCE ops.

Each op is the formulas of its docstring and nothing else. ``conv2d``, ``batch_norm`` and ``relu``
run a fast twin from ``minires/fast/`` by default (the same function, computed the way that runs
fast); ``MINIRES_OPS=reference`` or ``with minires.reference_ops():`` runs the classes here.

    basic       arithmetic, matmul, reductions, reshape/transpose, indexing
    conv        im2col, col2im, conv2d
    pooling     max/avg/global-avg pooling
    norm        batch_norm
    activation  relu
    linear      linear
    loss        softmax_cross_entropy
    shortcut    pad_channels (the option-A shortcut)
"""

import numpy as np

from .activation import relu
from .basic import (
    add,
    broadcast_to,
    div,
    exp,
    getitem,
    log,
    matmul,
    max,
    maximum,
    mean,
    mul,
    neg,
    pow,
    reshape,
    sub,
    sum,
    transpose,
    unbroadcast,
)
from .conv import col2im, conv2d, im2col
from .linear import linear
from .loss import softmax_cross_entropy
from .norm import batch_norm
from .pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from .shortcut import pad_channels


def flatten(x, start_dim=1):
    """Merge all dimensions from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""
    # The size is spelled out rather than -1, which is ambiguous for an empty batch.
    return reshape(x, x.shape[:start_dim] + (int(np.prod(x.shape[start_dim:])),))
