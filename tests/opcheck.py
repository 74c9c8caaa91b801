"""Helpers shared by the op tests: run an op forward and backward on plain arrays, in either layout.

minires keeps activations channel-major (an NCHW-shaped view of a contiguous (C, N, H, W) array,
see ``minires/functional/layout.py``); every op must give the same numbers for that layout and for
a plain C-contiguous NCHW array. ``on_layout`` builds either on either device.
"""
import numpy as np
from hypothesis import HealthCheck, settings

import minires as mr
from minires import backend

# Deterministic (CI runs the same examples every time) and small: gradcheck costs two forwards
# per input element. The `device` fixture is a plain string, so sharing it across examples is safe.
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LAYOUTS = ("nchw", "channel_major")


def on_layout(device, a, layout="nchw"):
    """A fresh copy of NumPy array ``a`` on ``device``; 4-D and "channel_major": laid out as (C, N, H, W)."""
    d = backend.to_device(np.array(a, order="C"), device)
    if layout == "nchw" or d.ndim != 4:
        return d
    xp = backend.get_array_module(d)
    return xp.ascontiguousarray(d.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def leaf(a, device="cpu", layout="nchw"):
    return mr.Tensor(on_layout(device, a, layout), requires_grad=True)


def forward_backward(fn, tensors, gy=None, seed=0, gy_layout="nchw"):
    """y = fn(*tensors); backward with ``gy`` (a NumPy array; random normal when None).

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
    y = fn(*tensors)
    if gy is None:
        gy = np.random.default_rng(seed).standard_normal(y.shape)
    gy = np.asarray(gy).astype(y.dtype)
    y.backward(on_layout(y.device, gy, gy_layout))
    for h in handles:
        h.remove()
    grads = [None if g is None else backend.as_numpy(g) for g in caught]
    return backend.as_numpy(y.data), grads, gy


def forbid_forward(monkeypatch, function_class):
    """Make ``function_class.forward`` (and its fast twins') fail the test if it runs: bad input must
    be rejected before."""
    def forward(self, *arrays):
        raise AssertionError(f"{type(self).__name__}.forward ran: the bad input was not rejected up front")
    classes = [function_class]
    while classes:
        cls = classes.pop()
        monkeypatch.setattr(cls, "forward", forward)
        classes.extend(cls.__subclasses__())
