"""Sphinx configuration of the lessons' book (``python -m book`` runs it; see book/build.py).

MyST-NB reads each percent-format lesson through jupytext, executes it in a Jupyter kernel and
caches the result (jupyter-cache: a lesson whose code is unchanged is not run again), and renders
every cell's output, figures included. The rest of this file is the book's own part:

* the front page's lesson table, with each lesson's run time as this build measured it: after the
  lessons are read (the front page is always read last), their execution data is written to
  ``run_times.json`` in the site, and the ``lesson-table`` directive of ``index.md`` builds the
  table from that file;
* a banner on every page saying which mode (full or quick) produced it, with a download of the
  lesson as an executed notebook (the ``.ipynb`` is copied next to the page's ``.html``);
* MathJax served from the site itself (the files of the ``sphinx-mathjax-offline`` package), so
  that formulas render with no network.
"""

import copy
import datetime
import html
import json
import os
import platform
import re
import shutil
import time
from importlib.util import find_spec
from pathlib import Path

BOOK = Path(__file__).resolve().parent
QUICK = os.environ.get("MINIRES_QUICK", "0") not in ("", "0")  # lessons/lesson_setup.py's rule
MODE = "quick" if QUICK else "full"
STARTED = time.time()

project = "minires lessons"
author = "the minires authors"
copyright = f"{datetime.date.today().year}, {author}"
html_title = "minires: ResNet from scratch, the lessons"

extensions = ["myst_nb", "sphinx.ext.mathjax"]
root_doc = "index"
# Sphinx reads book/_build/<mode>/src: the front page and the numbered lessons, nothing else.
include_patterns = ["index.md", "lessons/[0-9]*.py"]
templates_path = [str(BOOK / "_templates")]
html_static_path = [str(BOOK / "_static")]
html_css_files = ["book.css"]
html_theme = "alabaster"
html_theme_options = {
    "description": "ResNet from scratch in NumPy, lesson by lesson next to the paper",
    # the lessons' code is 100 columns wide: a text column of 870 px holds it (book.css); a
    # window narrower than page_width gets alabaster's one-column layout
    "page_width": "1160px",
    "sidebar_width": "230px",
    "body_max_width": "none",
    "fixed_sidebar": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_last_updated_fmt = "%Y-%m-%d %H:%M"

# The lessons, read through jupytext; $...$ and $$...$$ are formulas.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Execution: cached per lesson, no cell timeout short enough to cut a full-mode training run, and
# a failing lesson shows its traceback on its page and fails the build (book/build.py's exit code).
nb_execution_mode = "cache"
nb_execution_timeout = 900 if QUICK else 4 * 3600
nb_execution_raise_on_error = False
nb_execution_show_tb = True
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget scripts from a CDN: the book must work offline


def _coalesce_streams(outputs):
    """A cell's stdout and stderr, each as one block of text, as a terminal (or Jupyter) shows it.

    Progress bars (tqdm, in the lessons' full mode) redraw a line with ``\\r`` in many small
    writes. MyST-NB's own merge (``nb_merge_streams``) ends every write with a newline before it
    handles ``\\r``, so each redraw of a bar would become a line of the page; here the writes are
    joined first, and a line keeps what its last ``\\r`` left."""
    merged, streams = [], {}
    for output in outputs:
        if output["output_type"] != "stream":
            merged.append(output)
        elif output["name"] in streams:
            streams[output["name"]]["text"] += output["text"]
        else:
            streams[output["name"]] = copy.copy(output)  # the notebook itself keeps its outputs
            merged.append(streams[output["name"]])
    for output in streams.values():
        lines = output["text"].replace("\r\n", "\n").split("\n")
        lines = [re.sub(r"[^\n]\x08", "", line.rstrip("\r").rsplit("\r", 1)[-1])
                 for line in lines]
        output["text"] = "\n".join(lines).rstrip() + "\n"
    return merged


def _use_terminal_streams():
    import myst_nb.core.render

    myst_nb.core.render.coalesce_streams = _coalesce_streams


# MathJax 3 from the site itself, SVG output (no web fonts to fetch).
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {"svg": {"fontCache": "global"}}
MATHJAX_FILES = ("tex-svg.js", "input", "ui", "a11y", "sre")  # what tex-svg.js loads on demand


def _mathjax_dir():
    spec = find_spec("sphinx-mathjax-offline")  # its folder name has hyphens, import_module's way
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the book needs sphinx-mathjax-offline (pip install -e '.[book]')")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


# --- which lessons this build reads and executes ---------------------------------------------

READ_NOW = set()


def _front_page_and_failed_lessons(app, env, added, changed, removed):
    """Read the front page in every build (its table), and a lesson whose last run failed."""
    from myst_nb.sphinx_ import NbMetadataCollector

    data = NbMetadataCollector.get_doc_data(env)
    failed = [d for d in _lessons(env)
              if d not in added | changed | removed
              and (data.get(d, {}).get("exec_data") or {}).get("succeeded") is False]
    return (["index"] if "index" in env.found_docs else []) + failed


def _front_page_last(app, env, docnames):
    """The lessons first, then the front page, so that its table sees every lesson's run."""
    READ_NOW.clear()
    READ_NOW.update(docnames)
    if "index" in docnames:
        docnames.remove("index")
        docnames.append("index")


def _lessons(env):
    return sorted(d for d in env.found_docs if d.startswith("lessons/"))


def _descriptions(srcdir):
    """{lesson stem: its "What it teaches" cell} from the table in lessons/README.md, if any."""
    readme = Path(srcdir) / "lessons" / "README.md"
    if not readme.is_file():
        return {}
    row = re.compile(r"^\|\s*\w+\s*\|\s*\[`?([\w.-]+?)\.py`?\]\([^)]*\)\s*\|(.*)\|\s*$")
    return {m.group(1): _products_not_emphasis(m.group(2).strip())
            for m in map(row.match, readme.read_text(encoding="utf-8").splitlines()) if m}


def _products_not_emphasis(markdown):
    """Escape the * of k*k or C*kh*kw outside code spans, which Markdown reads as emphasis."""
    times = re.compile(r"(?<=[\w)])\*(?=[\w(])")
    parts = markdown.split("`")
    return "`".join(times.sub(r"\\*", part) if i % 2 == 0 else part
                    for i, part in enumerate(parts))


def _run_times(app):
    """Each lesson's execution as MyST-NB recorded it, as the JSON written into the site."""
    from myst_nb.sphinx_ import NbMetadataCollector

    env = app.env
    about = _descriptions(app.srcdir)
    lessons = []
    for docname in _lessons(env):
        data = NbMetadataCollector.get_doc_data(env).get(docname, {}).get("exec_data") or {}
        mtime = data.get("mtime")
        if docname not in READ_NOW:
            this_build = "unchanged"  # not even re-read: its page is the one built before
        elif mtime is not None and mtime >= STARTED:
            this_build = "executed"
        else:
            this_build = "from the cache"
        stem = docname.split("/", 1)[1]
        lessons.append({
            "lesson": stem,
            "page": docname + ".html",
            "title": env.titles[docname].astext() if docname in env.titles else stem,
            "about": about.get(stem, ""),
            "seconds": data.get("runtime"),
            "executed_at": _when(mtime) if mtime else None,
            "succeeded": bool(data.get("succeeded", False)),
            "this_build": this_build,
        })
    return {
        "mode": MODE,
        "built_at": _when(STARTED),
        "machine": _machine(),
        "lessons": lessons,
    }


def _when(timestamp):
    return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="minutes")


def _machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _write_run_times(app, docname, source):
    if docname == "index":
        path = Path(app.outdir) / "run_times.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_run_times(app), indent=1), encoding="utf-8")


def _read_run_times(app):
    path = Path(app.outdir) / "run_times.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def duration(seconds):
    if seconds is None:
        return "not run"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# --- the front page's table --------------------------------------------------------------------

def _lesson_table_directive():
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class LessonTable(SphinxDirective):
        """The table of lessons, built from run_times.json (see the module docstring)."""

        def run(self):
            report = _read_run_times(self.env.app)
            if report is None or not report["lessons"]:
                return [nodes.paragraph(text="(no lessons found)")]
            rows = ["| # | Lesson | What it teaches | Run time | Notebook |",
                    "|---|---|---|--:|---|"]
            total = 0.0
            for entry in report["lessons"]:
                number = entry["lesson"].split("_", 1)[0]
                title = re.sub(r"^Lesson\s+\w+:\s*", "", entry["title"]).replace("`", "")
                link = f"{{doc}}`{_escape_role(title)} <lessons/{entry['lesson']}>`"
                notebook = (f'<a class="reference download" href="lessons/{entry["lesson"]}.ipynb" '
                            f'download>{entry["lesson"]}.ipynb</a>')
                run = duration(entry["seconds"]) + ("" if entry["succeeded"] else " (FAILED)")
                total += entry["seconds"] or 0.0
                about = entry["about"].replace("\n", " ")
                rows.append(f"| {number} | {link} | {about} | {run} | {notebook} |")
            count = len(report["lessons"])
            rows.append(f"| | **all {count} lessons** | | **{duration(total)}** | |")
            rows += ["", f"Run times: each lesson's execution in {report['mode']} mode, as "
                     f"measured by the build that ran it (`run_times.json`; machine of this "
                     f"build: {report['machine']}). A lesson whose code has not changed since is "
                     f"not run again: its outputs come from the execution cache."]
            container = nodes.container(classes=["lesson-table"])
            self.state.nested_parse(rows, self.content_offset, container)
            return [container]

    return LessonTable


def _escape_role(text):
    return text.replace("<", r"\<").replace(">", r"\>")


# --- the banner on every page, the notebooks, MathJax ----------------------------------------

QUICK_CANNOT_SHOW = (
    "Every cell ran, but on tiny data, with small nets and one or two epochs: quick mode only "
    "checks that the code runs. The numbers, the claims checked and the figures here are not the "
    "results the text describes (the nets have barely trained, and some figures, such as training "
    "curves, lesions and loss landscapes, show almost nothing). The full build shows them."
)


def _banner(app, pagename):
    report = _read_run_times(app) or {"lessons": [], "built_at": "?"}
    if QUICK:
        mode = ("<strong>Quick build</strong> (<code>MINIRES_QUICK=1</code>, "
                f"{html.escape(report['built_at'])}). {html.escape(QUICK_CANNOT_SHOW)}")
    else:
        mode = ("<strong>Full build</strong>: every lesson ran in its full mode "
                f"({html.escape(report['built_at'])}).")
    entry = next((e for e in report["lessons"] if e["page"] == pagename + ".html"), None)
    run = ""
    if entry is not None:
        stem = html.escape(entry["lesson"])
        when = f" on {html.escape(entry['executed_at'])}" if entry["executed_at"] else ""
        run = (f' This lesson ran in {duration(entry["seconds"])}{when}. '
               f'<a class="reference download" href="{stem}.ipynb" download>Download it as an '
               f'executed notebook ({stem}.ipynb)</a>.')
        if not entry["succeeded"]:
            run += " <strong>Its execution FAILED: see the traceback below.</strong>"
    return f'<div class="book-banner book-{MODE}">{mode}{run}</div>'


def _page_context(app, pagename, templatename, context, doctree):
    context["book_banner"] = _banner(app, pagename)
    context["book_mode"] = MODE
    built = (_read_run_times(app) or {}).get("built_at", "")
    context["book_mode_line"] = (
        f"Built by <code>python -m book</code> in {MODE} mode"
        + (" (<code>MINIRES_QUICK=1</code>: the code runs, the results are not the lessons')"
           if QUICK else "") + (f", {html.escape(built)}." if built else "."))


def _finish(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    executed = outdir.parent / "jupyter_execute"
    for docname in _lessons(app.env):
        notebook = executed / (docname + ".ipynb")
        if notebook.is_file():
            target = outdir / (docname + ".ipynb")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_with_outputs(app, notebook), encoding="utf-8")
    _copy_mathjax(outdir)


def _with_outputs(app, path):
    """The lesson as an executed notebook. MyST-NB writes the one it executed, but for a lesson
    taken from the cache it writes the notebook without the cached outputs (it renders the page
    from the cached ones), so those are merged back in here from the execution cache."""
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(path, as_version=4)
    if not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"):
        try:
            cache = get_cache(app.env.mystnb_config.execution_cache_path)
            _, notebook = cache.merge_match_into_notebook(notebook)
        except KeyError:
            pass  # not in the cache: a lesson whose execution failed
    return nbformat.writes(notebook)


def _copy_mathjax(outdir):
    source, target = _mathjax_dir(), Path(outdir) / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target / name)


def setup(app):
    _mathjax_dir()  # fail at the start, not after an hour of execution, if MathJax is missing
    _use_terminal_streams()
    app.add_directive("lesson-table", _lesson_table_directive())
    app.connect("env-get-outdated", _front_page_and_failed_lessons)
    app.connect("env-before-read-docs", _front_page_last)
    app.connect("source-read", _write_run_times)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _finish)
    return {"parallel_read_safe": False}
