"""What the op tests share beyond ``minires.testing``: the suite's settings and fixture helpers.

The property tests themselves (strategies, ``check_backward``, the metamorphic checks, the two
memory layouts) are ``minires.testing``, the same tools a learner checks an op with. What stays
here is specific to this suite: how many examples CI can afford, helpers that take the ``device``
fixture first, and ``forbid_forward`` for the tests of rejected input.
"""
from hypothesis import HealthCheck, settings

import minires as mr
from minires import testing

# Deterministic (CI runs the same examples every time) and small: gradcheck costs two forwards
# per input element. The `device` fixture is a plain string, so sharing it across examples is safe.
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

EXAMPLES = 12
"""Examples per ``check_backward`` in the suite (a learner's default is testing.MAX_EXAMPLES)."""

LAYOUTS = testing.LAYOUTS
forward_backward = testing.forward_backward


def on_layout(device, a, layout="nchw"):
    """A fresh copy of NumPy array ``a`` on ``device``; 4-D and "channel_major": laid out as
    (C, N, H, W)."""
    return testing.on_layout(a, layout, device)


def leaf(a, device="cpu", layout="nchw"):
    return mr.Tensor(on_layout(device, a, layout), requires_grad=True)


def forbid_forward(monkeypatch, function_class):
    """Make ``function_class.forward`` (and its fast twins') fail the test if it runs: bad input
    must be rejected before."""
    def forward(self, *arrays):
        raise AssertionError(f"{type(self).__name__}.forward ran: the bad input was not rejected "
                             "up front")
    classes = [function_class]
    while classes:
        cls = classes.pop()
        monkeypatch.setattr(cls, "forward", forward)
        classes.extend(cls.__subclasses__())
