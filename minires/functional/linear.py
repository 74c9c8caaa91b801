"""Fully connected layer: y = x W^T + b, with x: (N, in), W: (out, in), b: (out,).

Backward: dx = dy W,  dW = dy^T x,  db = sum over the batch of dy.
"""

from ..autograd import Function


class Linear(Function):
    def forward(self, x, w, b=None):
        self.x, self.w, self.has_bias = x, w, b is not None
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        gx = gy @ self.w if self.needs_input_grad[0] else None
        gw = gy.T @ self.x if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, gy.sum(axis=0)


def linear(x, w, b=None):
    """x: (N, in), w: (out, in), b: (out,) or None -> (N, out)."""
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(
            f"linear: x must be (N, in) and w (out, in), got shapes {x.shape} and {w.shape}"
        )
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"linear: x has {x.shape[1]} features but w expects {w.shape[1]} "
            f"(x shape {x.shape}, w shape {w.shape})"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: b must have shape ({w.shape[0]},), got {b.shape}")
    return Linear()(x, w) if b is None else Linear()(x, w, b)
