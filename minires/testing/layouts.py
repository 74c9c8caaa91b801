"""The two memory layouts an op must give the same numbers on, and one forward and backward.

A 4-D array is either C-contiguous NCHW, or channel-major: an NCHW-shaped view of a contiguous
(C, N, H, W) array, the layout minires's convolutions hand on (``minires/functional/layout.py``).
An op that assumes C-contiguous memory (writing through ``reshape(-1)``, reading raw memory) gives
other numbers on the second; ``check_backward`` runs both.
"""
import numpy as np

from .. import backend

LAYOUTS = ("nchw", "channel_major")
"""``on_layout``'s layouts: C-contiguous NCHW, and channel-major (C, N, H, W) memory."""


def on_layout(a, layout="nchw", device="cpu"):
    """A fresh copy of array ``a`` on ``device``; 4-D and ``"channel_major"``: an NCHW-shaped
    view of a contiguous (C, N, H, W) array, the layout minires's convolutions hand on."""
    d = backend.to_device(np.array(backend.as_numpy(a), order="C"), device)
    if layout == "nchw" or d.ndim != 4:
        return d
    xp = backend.get_array_module(d)
    return xp.ascontiguousarray(d.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def forward_backward(fn, tensors, gy=None, seed=0, gy_layout="nchw"):
    """y = fn(*tensors); backward with ``gy`` (a NumPy array; standard normal when None).

    Returns NumPy arrays: y, the gradient that reached every tensor (None where none did), and gy.
    The gradients are caught by hooks as the op produced them, before the engine stores them in
    ``.grad`` (which casts to the leaf's dtype), so a float64 gradient from a float32 op shows.
    """
    caught = [None] * len(tensors)

    def catcher(i):
        def hook(g):
            caught[i] = g
        return hook

    handles = [t.register_hook(catcher(i)) for i, t in enumerate(tensors)]
    try:
        y = fn(*tensors)
        if gy is None:
            gy = np.random.default_rng(seed).standard_normal(y.shape)
        gy = np.asarray(gy).astype(y.dtype)
        y.backward(on_layout(gy, gy_layout, y.device))
    finally:
        for h in handles:
            h.remove()
    grads = [None if g is None else backend.as_numpy(g) for g in caught]
    return backend.as_numpy(y.data), grads, gy
