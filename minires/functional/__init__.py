"""Differentiable ops, forward and backward side by side, one file per family.

    basic       arithmetic, matmul, reductions, reshape/transpose, indexing
    conv        im2col, col2im, conv2d, max/avg/global-avg pooling
    norm        batch_norm
    activation  relu
    linear      linear
    loss        softmax_cross_entropy
    shortcut    pad_channels (the option-A shortcut)
"""
import numpy as np

from .activation import relu
from .basic import (add, broadcast_to, div, exp, getitem, log, matmul, max, maximum, mean, mul, neg, pow,
                    reshape, sub, sum, transpose, unbroadcast)
from .conv import avg_pool2d, col2im, conv2d, global_avg_pool2d, im2col, max_pool2d
from .linear import linear
from .loss import softmax_cross_entropy
from .norm import batch_norm
from .shortcut import pad_channels


def flatten(x, start_dim=1):
    """Merge all dimensions from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""
    # The size is spelled out rather than -1, which is ambiguous for an empty batch.
    return reshape(x, x.shape[:start_dim] + (int(np.prod(x.shape[start_dim:])),))
