"""Softmax cross-entropy, fused: the mean over the batch of -log softmax(z_n)[t_n].

With z the logits (N, C) and t the integer labels (N,):

    log softmax(z)_k = z_k - logsumexp(z),   logsumexp(z) = m + log sum_k exp(z_k - m),  m = max z

(subtracting m keeps exp from overflowing), and the gradient is the famously simple

    dL/dz = (softmax(z) - onehot(t)) / N.
"""

import numpy as np

from .. import backend
from ..autograd import Function


class SoftmaxCrossEntropy(Function):
    def __init__(self, labels):
        self.labels = labels

    def forward(self, z):
        xp = backend.get_array_module(z)
        shifted = z - z.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        n = xp.arange(z.shape[0])
        log_prob_target = shifted[n, self.labels] - xp.log(total[:, 0])
        exp /= total
        self.prob = exp
        return -log_prob_target.mean()

    def backward(self, gy):
        g = self.prob.copy()
        g[backend.get_array_module(g).arange(g.shape[0]), self.labels] -= 1
        g *= gy / g.shape[0]
        return g


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of logits (N, C) against integer labels (N,) in [0, C)."""
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, C), got shape {logits.shape}")
    N, C = logits.shape
    if getattr(labels, "requires_grad", None) is not None:  # a Tensor
        raise TypeError("softmax_cross_entropy: labels must be an integer array, not a Tensor")
    if not (isinstance(labels, np.ndarray) or backend.is_gpu_array(labels)):
        labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(
            "softmax_cross_entropy: labels must be integers (class indices), "
            f"got dtype {labels.dtype}"
        )
    if labels.shape != (N,):
        raise ValueError(
            f"softmax_cross_entropy: labels must have shape ({N},) to match logits {logits.shape}, "
            f"got {labels.shape}"
        )
    if N == 0:
        raise ValueError("softmax_cross_entropy: empty batch")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= C:
        raise ValueError(
            f"softmax_cross_entropy: labels must be in [0, {C}), got values in [{lo}, {hi}]"
        )
    labels = backend.to_device(labels, logits.device)
    return SoftmaxCrossEntropy(labels)(logits)
