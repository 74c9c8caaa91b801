"""What a check found: :class:`Failure` (one case), :class:`Report` (all of them), and
:class:`CheckFailed`, the exception whose message is the report.

A report names the check that failed, the input, the largest error and where it is (:func:`worst`
writes that sentence), a hint of what to look at, and the one line that reruns the smallest
failing case.
"""
import os
import traceback

import numpy as np

# minires/testing/: its frames are left out of the line an exception is reported at
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Failure(Exception):
    """What one check found wrong with one case (raised inside the search, kept in the report)."""

    def __init__(self, check, message, input=None, hint=""):
        super().__init__(message)
        self.check, self.message, self.input, self.hint = check, message, input, hint
        self.case = None

    def headline(self):
        what = {"gradient": "the gradient of {i} is wrong",
                "forward": "the forward differs from the oracle",
                "layout": "channel-major memory gives other numbers than NCHW",
                "float32": "float32 and float64 disagree", "dtype": "a dtype is wrong",
                "shapes": "the backward's gradients are malformed",
                "raised": "the op raised an exception"}.get(self.check, self.check)
        return what.format(i=repr(self.input))


class CheckFailed(AssertionError):
    """Raised by the checks on a failure; ``str`` is the report, ``.report`` the :class:`Report`."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


class Report:
    """The outcome of one check over its examples: true when it passed; ``str`` for a person.

    ``examples``: examples tried up to the first failure (all of them when none failed);
    ``shrinks``: examples tried after it while shrinking; ``slowest``: (seconds, Case);
    ``failing``: every failing case in the order they were tried, the first found to the smallest.
    """

    def __init__(self, call, name, checks, rerun):
        self.call, self.name, self.checks, self._rerun = call, name, checks, rerun
        self.examples = self.shrinks = 0
        self.failing = []
        self.seconds, self.slowest, self.failure = 0.0, (0.0, None), None

    passed = property(lambda self: self.failure is None)

    def __bool__(self):
        return self.passed

    @property
    def rerun(self):
        """The one line that reruns the smallest failing case (None when nothing failed)."""
        return None if self.failure is None else self._rerun(self.failure.case)

    def summary(self):
        """One line: passed or what failed, for a table."""
        if self.passed:
            return "ok"
        return f"FAILED: {self.failure.headline()}"

    def slowest_text(self):
        sec, case = self.slowest
        return "" if case is None else f"{case.describe()}: {sec:.2f} s"

    def __str__(self):
        if self.passed:
            return (f"{self.call} passed: {_plural(self.examples, 'example')} in "
                    f"{self.seconds:.1f} s "
                    f"({', '.join(self.checks)}); slowest {self.slowest_text()}")
        f = self.failure
        lines = [f"{self.call} failed: {f.headline()}.",
                 f"  smallest failing case (found after {_plural(self.examples, 'example')}, "
                 f"shrunk in {self.shrinks} more):",
                 f"      {f.case.describe()}"]
        lines += ["  " + line for line in f.message.splitlines()]
        if f.hint:
            lines.append(f"  what to look at: {f.hint}")
        lines += ["  rerun exactly this case (from minires.testing import Case, Values, "
                  f"{self.call.split('(')[0]}):", f"      {self.rerun}"]
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.passed:
            raise CheckFailed(self)
        return self


def raised(e):
    """A Failure for an exception from the op: its type, message and the line that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) != _PACKAGE_DIR]
    where = f"\n  at {frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line}" if frames else ""
    return Failure("raised", f"{type(e).__name__}: {e}{where}",
                   hint="if the op does not support this case, narrow inputs= to the cases it "
                        "supports; otherwise this is the bug")


# -- comparing arrays ------------------------------------------------------------------------------

def worst(got, want, tol):
    """None when |got - want| <= tol * max(1, max|want|) everywhere (NaN only where want has NaN);
    else a sentence naming the largest error, its index and both values."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape} where {want.shape} was expected"
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    err = np.abs(got - want)
    same_nan = np.isnan(got) & np.isnan(want)
    same_inf = np.isinf(want) & (got == want)
    bad = ~((err <= tol * scale) | same_nan | same_inf)
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))),
                           got.shape)
    where = tuple(int(i) for i in idx)
    return (f"largest error {err[idx]:.3g} at index {where}: got {got[idx]:.8g}, expected "
            f"{want[idx]:.8g} ({int(bad.sum())} of {got.size} elements off by more than "
            f"{tol:g} * {scale:.3g})")
