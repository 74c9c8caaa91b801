"""What every lesson shares: quick mode, where figures go, and ``show`` to save and display one.

    from lesson_setup import QUICK, plt, show

QUICK is true when the environment sets MINIRES_QUICK=1 (the test suite does): the lessons then
shrink their data and sizes but still run every cell. Figures are saved to $MINIRES_LESSON_OUT,
else to lessons/out/.
"""
import os
import sys

import matplotlib

if "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")  # a plain `python` run: figures go to files, no window opens
import matplotlib.pyplot as plt  # noqa: E402

from minires.io import save_figure  # noqa: E402

QUICK = os.environ.get("MINIRES_QUICK", "0") not in ("", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("MINIRES_LESSON_OUT") or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)


def show(fig, name):
    """Save the figure under OUT (for scripts and tests), then display it (in a notebook)."""
    path = os.path.join(OUT, name)
    save_figure(fig, path, dpi=90, bbox_inches="tight")
    print(f"figure saved to {path}")
    plt.show()
    plt.close(fig)
