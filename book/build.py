"""Build the lessons as a book: ``python -m book`` (from the repository root).

    python -m book                    # the full build: each lesson in its full mode
    MINIRES_QUICK=1 python -m book    # the quick build: each lesson in quick mode (what CI builds)
    python -m book --clean            # forget the cached execution and build from scratch

The site lands in ``book/_build/full/html/`` (``book/_build/quick/html/`` for the quick build);
the last line printed is the path of its ``index.html``. Open it in a browser as a file, or serve
the folder with ``python -m http.server -d book/_build/full/html``.

Sphinx reads ``book/_build/<mode>/src/``: ``index.md`` there is a link to ``book/index.md``, and
``lessons/`` holds a copy of each lesson beside links to everything else in the lessons' folder
(``lesson_setup.py``, ``figures/``, ...), so that a lesson runs there as it does in Jupyter from
``lessons/``. (The lessons themselves are copied, not linked: Sphinx follows a link to the real
file, and a link from one lesson to another must land inside its source folder.) MyST-NB executes
a lesson only when its code changed since the cached run (``book/_build/<mode>/.jupyter_cache``);
figures the lessons save go to ``book/_build/<mode>/figures/``. The two modes keep separate
folders, since the same code gives other outputs in each.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent


def quick_mode():
    """The lessons' own rule (lessons/lesson_setup.py): MINIRES_QUICK set to anything but 0."""
    return os.environ.get("MINIRES_QUICK", "0") not in ("", "0")


def _link(link, target):
    """Make ``link`` a symbolic link to ``target`` (replacing one that points elsewhere)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=target.is_dir())


def _is_lesson(path):
    return path.is_file() and path.suffix == ".py" and path.name[:1].isdigit()


def _stage(src, lessons):
    """Lay out Sphinx's source folder ``src`` (see the module docstring)."""
    _link(src / "index.md", BOOK / "index.md")
    staged = src / "lessons"
    if staged.is_symlink():
        staged.unlink()
    staged.mkdir(parents=True, exist_ok=True)
    for entry in sorted(lessons.iterdir()):
        target = staged / entry.name
        if not _is_lesson(entry):
            _link(target, entry)
            continue
        if target.is_symlink():
            target.unlink()
        old, new = (target.stat() if target.exists() else None), entry.stat()
        if old is None or (old.st_mtime, old.st_size) != (new.st_mtime, new.st_size) \
                or target.read_bytes() != entry.read_bytes():
            shutil.copy2(entry, target)  # keeps the lesson's time: Sphinx re-reads a newer file
    names = {entry.name for entry in lessons.iterdir()}
    for stale in list(staged.iterdir()):
        if stale.name not in names:  # a lesson removed (or renamed) since the last build
            stale.unlink() if stale.is_symlink() or stale.is_file() else shutil.rmtree(stale)


def _say_what_ran(report, out):
    """One line on what this build executed and what it took from the cache."""
    lessons = report["lessons"]
    ran = [entry for entry in lessons if entry["this_build"] == "executed"]
    failed = [entry["lesson"] for entry in lessons if not entry["succeeded"]]
    if not ran:
        print(f"execution: nothing executed, no lesson changed since the last build "
              f"({len(lessons)} lessons, outputs from the cache in {out / '.jupyter_cache'})")
    else:
        times = ", ".join(f"{entry['lesson']} {entry['seconds']:.1f} s" for entry in ran)
        cached = [e["lesson"] for e in lessons if e["this_build"] == "from the cache"]
        print(f"execution: {len(ran)} of {len(lessons)} lessons executed ({times}); the others "
              f"unchanged" + (f", {', '.join(cached)} re-read with their code's outputs from "
                              f"the cache" if cached else ""))
    if failed:
        print(f"execution FAILED in: {', '.join(failed)} "
              f"(tracebacks in {out / 'html' / 'reports'})")
    return not failed


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m book",
        description="Execute the lessons and build them as a static HTML book "
                    "(MINIRES_QUICK=1 in front: the quick build).")
    parser.add_argument("--clean", action="store_true",
                        help="delete this mode's build folder (site, doctrees, execution cache) "
                             "first")
    parser.add_argument("--lessons", type=Path, default=ROOT / "lessons",
                        help="the folder of percent-format lessons (default: lessons/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the build folder (default: book/_build/full or book/_build/quick)")
    args = parser.parse_args(argv)

    mode = "quick" if quick_mode() else "full"
    out = (args.out or BOOK / "_build" / mode).resolve()
    lessons = args.lessons.resolve()
    if not any(lessons.glob("[0-9]*.py")):
        parser.error(f"no lessons (files [0-9]*.py) in {lessons}")
    if args.clean and out.exists():
        shutil.rmtree(out)
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    _stage(src, lessons)

    # What the lessons' kernels inherit: their figures go into the build folder, and matplotlib
    # keeps the kernel's inline backend (MPLBACKEND=Agg would hide any figure not shown by `show`).
    os.environ["MINIRES_LESSON_OUT"] = str(out / "figures")
    os.environ.pop("MPLBACKEND", None)
    # tqdm's notice that ipywidgets is missing is true of the build's kernel, and noise on a page
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))

    from sphinx.application import Sphinx
    from sphinx.util.console import nocolor

    if not sys.stdout.isatty():
        nocolor()

    print(f"building the {mode} book from {lessons} into {out}", flush=True)
    app = Sphinx(srcdir=str(src), confdir=str(BOOK), outdir=str(out / "html"),
                 doctreedir=str(out / "doctrees"), buildername="html",
                 status=sys.stdout, warning=sys.stderr)
    app.build()
    index = out / "html" / "index.html"
    report_path = out / "html" / "run_times.json"
    ok = app.statuscode == 0 and index.is_file() and report_path.is_file()
    if report_path.is_file():
        ok = _say_what_ran(json.loads(report_path.read_text()), out) and ok
    print(index)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
