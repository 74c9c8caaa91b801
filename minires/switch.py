"""One switch: the fast ops (``minires/fast/``, the default) or the reference ops
(``minires/functional/``).

    MINIRES_OPS=reference python ...     the whole process on the reference path
    with minires.reference_ops(): ...    one block of code on the reference path

MINIRES_OPS is read on import; its case and surrounding spaces do not matter (`` Reference ``).
Any other value than these two (or empty) is said in one line on stderr, and the fast ops run.

The reference ops are the formulas of their docstrings, written to be read; their fast twins
compute the same function (``tests/fast/test_fast_equals_reference.py``) the way that runs fast.
``F.conv2d``, ``F.batch_norm`` and ``F.relu`` ask :func:`implementation` which ``Function`` class to
use, so a model, its parameters and its checkpoints are the same in both modes.
"""

import contextlib
import os
import sys

FAST = {}
"""Reference Function class -> its fast twin. ``minires/fast/__init__.py`` fills it."""

MODES = ("fast", "reference")


def mode_from_environment(value):
    """The mode that MINIRES_OPS=``value`` selects: "fast" or "reference" (None: unset).

    Case and surrounding spaces do not matter; an unknown value is said, in one line on stderr,
    and gives the default, "fast": a library should not refuse to import over its environment.
    """
    mode = (value or "").strip().lower() or "fast"
    if mode not in MODES:
        print(f"minires: MINIRES_OPS must be one of {', '.join(MODES)} (any case), got "
              f"{value!r}: running the fast ops", file=sys.stderr)
        return "fast"
    return mode


_reference = mode_from_environment(os.environ.get("MINIRES_OPS")) == "reference"
_said = False


def using_reference():
    """True when the reference ops run (MINIRES_OPS=reference, or inside ``reference_ops()``)."""
    return _reference


@contextlib.contextmanager
def reference_ops(enabled=True):
    """Run the reference ops inside this block (``enabled=False``: the fast ones), then switch
    back."""
    global _reference
    previous, _reference = _reference, bool(enabled)
    try:
        yield
    finally:
        _reference = previous


def implementation(reference):
    """The Function class to run for the reference class ``reference``: itself, or its fast twin."""
    global _said
    if not _reference:
        return FAST.get(reference, reference)
    if not _said:
        _said = True
        print(
            "minires: running the reference ops (minires/functional/): readable, "
            "and slower than the default fast ones",
            file=sys.stderr,
        )
    return reference
