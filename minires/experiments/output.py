"""Where an experiment's results go: one run folder, its JSON, CSV and figures, the closing line.

Every experiment's ``run`` ends the same way:

    output = Output(out)                        # the run folder (made if missing)
    output.json("flow.json", report)            # atomic; NumPy scalars and int keys made plain
    output.figure("flow.png", plot_flow, runs)  # plot(..., path) -> path, recorded
    output.done(seconds)                        # "12 s; wrote out/flow.json, out/flow.png"

and shows progress through :func:`progress_bar`. Every file is written atomically
(``io.atomic_write``), so a run stopped midway leaves the previous file or the new one, never half.
"""
import csv
import json
import os

import numpy as np

from .. import io


def jsonable(obj):
    """``obj`` with dict keys as strings, tuples as lists, NumPy scalars/arrays as Python values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def claim_lines(claims):
    """The lines a ``table`` ends with: a blank one, then per claim "[holds] CLAIM" (or "[does not
    hold] CLAIM") and its detail, indented. No claims: no lines."""
    lines = [""] if claims else []
    for c in claims.values():
        lines += [f"[{'holds' if c['holds'] else 'does not hold'}] {c['claim']}",
                  f"    {c['detail']}"]
    return lines


def duration(seconds):
    """"12 s" below two minutes, else "3.4 min"."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def progress_bar(total=None, desc=None, *, enabled=True, unit="it", **kwargs):
    """A tqdm bar (``enabled=False``: a silent one with the same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True,
                **kwargs)


def save_figure(fig, path, title=None, *, dpi=90, fontsize=None):
    """Give ``fig`` its ``title`` and write it to ``path`` (PNG, atomically); returns ``path``.
    The last line of every experiment's ``plot_*``."""
    if title:
        fig.suptitle(title, **({"fontsize": fontsize} if fontsize else {}))
    io.save_figure(fig, path, dpi=dpi)
    return path


class Output:
    """The run folder ``out`` and the files written to it, in order (``written``)."""

    def __init__(self, out):
        if os.path.exists(out) and not os.path.isdir(out):
            raise NotADirectoryError(f"{out} exists and is not a folder")
        os.makedirs(out, exist_ok=True)
        self.out, self.written = out, []

    def path(self, name):
        return os.path.join(self.out, name)

    def _record(self, path):
        if path not in self.written:
            self.written.append(path)
        return path

    def json(self, name, obj):
        """``obj`` (made JSON-able by :func:`jsonable`) as indented JSON; returns the path."""
        path = self.path(name)
        with io.atomic_write(path, "w") as f:
            json.dump(jsonable(obj), f, indent=1)
        return self._record(path)

    def text(self, name, text):
        """A text file (a Markdown table, RESULTS.md); returns the path."""
        path = self.path(name)
        with io.atomic_write(path, "w") as f:
            f.write(text)
        return self._record(path)

    def csv(self, name, fields, rows):
        """One row per dict of ``rows``, the columns ``fields`` (other keys ignored)."""
        path = self.path(name)
        with io.atomic_write(path, "w") as f:
            writer = csv.DictWriter(f, fields, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return self._record(path)

    def figure(self, name, plot, *args, **kwargs):
        """``plot(*args, path, **kwargs)``, ``path`` being this folder's ``name``; returns it."""
        return self._record(plot(*args, self.path(name), **kwargs))

    def done(self, seconds=None, extra=None, log=print):
        """Print the closing line: the time taken and every file written (``extra``: more words)."""
        files = ", ".join(self.written)
        head = f"{duration(seconds)}; " if seconds is not None else ""
        log(f"{head}wrote {files}" + (f" {extra}" if extra else ""))
