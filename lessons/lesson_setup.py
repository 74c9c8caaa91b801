"""What every lesson shares: quick mode, where figures go, ``show`` to save and display a figure,
and ``median_time`` for the lessons that time code.

    from lesson_setup import QUICK, plt, show

QUICK is true when the environment sets MINIRES_QUICK=1 (the test suite does): the lessons then
shrink their data and sizes but still run every cell. Figures are saved to $MINIRES_LESSON_OUT,
else to lessons/out/.

``show`` is the one way a lesson puts a figure on the page, whether the lesson drew it itself or
a minires plotting function wrote it:

    show(fig, "05_ratio_vs_depth.png")   # a matplotlib figure: saved under OUT, then shown
    show(flow.plot_flow(runs, path))     # a PNG already written: shown

In a notebook (Jupyter, VS Code's interactive window, the book) it displays the saved PNG itself,
so what you see is exactly the file on disk; run as a script, it prints where the file is.
"""
import os
import sys
import time

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")  # a plain `python` run: figures go to files, no window opens
import matplotlib.pyplot as plt  # noqa: E402

from minires.io import save_figure  # noqa: E402

QUICK = os.environ.get("MINIRES_QUICK", "0") not in ("", "0")
OUT = (os.environ.get("MINIRES_LESSON_OUT")
       or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
os.makedirs(OUT, exist_ok=True)


def in_notebook():
    """True inside a Jupyter kernel, where a displayed image lands in the cell's output."""
    return "ipykernel" in sys.modules


def show(figure, name=None):
    """Show a figure, inline in a notebook.

    ``figure`` is either a matplotlib figure, saved as OUT/``name`` and closed, or the path of a
    PNG that is already written (``name`` is then not needed). In a notebook the PNG is displayed
    inline; in a script the path is printed (and an interactive matplotlib backend, if you chose
    one with MPLBACKEND, also opens the figure in a window).
    """
    if isinstance(figure, (str, os.PathLike)):
        path = os.fspath(figure)
    else:
        if name is None:
            raise TypeError("show(fig, name): name the PNG file to save the figure as")
        path = os.path.join(OUT, name)
        save_figure(figure, path, dpi=90, bbox_inches="tight")
        if not in_notebook():
            plt.show()  # a no-op under Agg, a window under an interactive backend
        plt.close(figure)  # closed, so that the inline backend does not draw it a second time
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=path))
    else:
        print(f"figure saved to {path}")
    # returns None: as a cell's last line, a returned path would print under the figure


def median_time(fn, repeats):
    """The median wall-clock time of ``repeats`` calls of ``fn()``, in seconds: the median, since
    on a shared machine a few calls are slowed by other work."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
