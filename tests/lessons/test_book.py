"""The lessons as a book (``python -m book``), opened in a real browser.

Every page of the quick build is opened in headless Chromium, as a learner opens the site (a
``file://`` URL, with no network at all), and must show: no console error, every image loaded,
every formula rendered by MathJax (no raw ``$$`` or ``\\(`` left in the text), every internal link
and download pointing at a file of the site, and nothing fetched from outside the site. One
screenshot per page goes to ``book/_build/quick/screenshots/``.

The checker is trusted only because it fails: a tiny book built from deliberately broken lessons
(a missing image, a raw formula, a broken link, a JavaScript error) must fail it, each page for its
own reason, while a tiny good lesson passes. The same tiny book shows the execution cache at work.

Needs the ``book`` extra (Sphinx, MyST-NB, jupytext, selenium) and Debian's ``chromium`` and
``chromium-driver``; without them the tests skip and say so, except in CI (``CI`` set), which
installs them (``.ci/run``) and where a skip would hide that the book is not tested.
``MINIRES_TEST_BOOK=full`` checks the full build instead of the quick one.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]*_*.py"))
CHROMIUM = os.environ.get("MINIRES_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MINIRES_CHROMEDRIVER", "/usr/bin/chromedriver")
MODE = "full" if os.environ.get("MINIRES_TEST_BOOK") == "full" else "quick"
MAX_SCREENSHOT_HEIGHT = 60000  # CSS pixels; the longest lesson is about half that


def _missing():
    missing = [name for name in ("sphinx", "myst_nb", "jupytext", "nbclient", "selenium")
               if importlib.util.find_spec(name) is None]
    missing += [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    return missing


def _require_the_book_tools():
    missing = _missing()
    if missing:
        message = (f"the book's tests need pip install -e '.[book]' and apt-get install chromium "
                   f"chromium-driver; missing: {', '.join(missing)}")
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests, not skip them)")
        pytest.skip(message)


def build_book(*args, quick=True, env=None):
    """``python -m book ARGS`` from the repository root; returns the finished process."""
    env = dict(os.environ if env is None else env)
    env.pop("MINIRES_QUICK", None)
    if quick:
        env["MINIRES_QUICK"] = "1"
    return subprocess.run([sys.executable, "-m", "book", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)


def _assert_built(proc):
    assert proc.returncode == 0, (
        f"python -m book exited with {proc.returncode}\n--- stdout (end) ---\n"
        f"{proc.stdout[-4000:]}\n--- stderr (end) ---\n{proc.stderr[-6000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("index.html") and Path(last).is_file(), (
        f"the build's last line should be the path of index.html, not {last!r}")
    return Path(last).parent


# --- the browser and the page checks -----------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    _require_the_book_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--hide-scrollbars",
                 # no network at all: a page that needs a CDN fails here as it would offline
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


# Visible text outside code, program output and rendered formulas.
_VISIBLE_TEXT_JS = """
const skip = el => el.closest('pre, code, script, style, textarea, mjx-container, .highlight');
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const parts = [];
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (!el || skip(el) || !el.getClientRects().length) continue;
  parts.push(n.textContent);
}
return parts.join(' ');
"""
_WAIT_FOR_MATHJAX_JS = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done('rendered'), e => done('failed: ' + e));
} else { done(window.MathJax ? 'not loaded' : 'none'); }
"""
_RAW_TEX = [("$$", re.compile(r"\$\$")), ("\\(", re.compile(r"\\\(")), ("\\[", re.compile(r"\\\[")),
            ("\\begin{", re.compile(r"\\begin\{")),
            ("$...$", re.compile(r"\$[^$\s][^$\n]*?[\\^_{}][^$\n]*?\$"))]


def check_page(driver, site, page, screenshot=None):
    """Open ``site/page`` and return what is wrong with it, as a list of sentences (empty: good).

    Checks: console errors; every <img> loaded (naturalWidth > 0); every formula rendered by
    MathJax and no raw TeX in the visible text; every link into the site and every download points
    at an existing file (and anchor); no resource fetched from outside the site."""
    site = Path(site).resolve()
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get((site / page).as_uri())
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.1)
    mathjax = driver.execute_async_script(_WAIT_FOR_MATHJAX_JS)
    time.sleep(0.2)  # late console messages
    problems = []

    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"console error: {entry['message']}")

    for src in driver.execute_script(
            "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))"):
        problems.append(f"image not loaded: {src}")

    formulas = driver.execute_script(
        "const m = [...document.querySelectorAll('.math')];"
        "return [m.length, m.filter(e => !e.querySelector('mjx-container'))"
        ".map(e => e.textContent.slice(0, 80))];")
    for tex in formulas[1]:
        problems.append(f"formula not rendered (MathJax: {mathjax}): {tex!r}")
    text = driver.execute_script(_VISIBLE_TEXT_JS)
    for name, pattern in _RAW_TEX:
        for match in pattern.finditer(text):
            around = text[max(0, match.start() - 30):match.end() + 30].replace("\n", " ")
            problems.append(f"raw formula ({name}) in the visible text: ...{around}...")
            break

    links = driver.execute_script(
        "return [...document.querySelectorAll('a[href]')].map(a => "
        "[a.getAttribute('href'), a.href, a.hasAttribute('download')])")
    for raw, url, download in links:
        problem = _link_problem(site, page, raw, url, download)
        if problem:
            problems.append(problem)

    for name in driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"):
        if not name.startswith(("file:", "data:", "blob:", "about:")):
            problems.append(f"fetched from outside the site: {name}")

    if screenshot is not None:
        _screenshot(driver, screenshot)
    return problems


def _link_problem(site, page, raw, url, download):
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "mailto", "ftp"):
        return None  # an external link: not fetched by the page, and not checked offline
    if parts.scheme == "javascript":
        return None  # Sphinx's "hide search matches", after a search
    if parts.scheme != "file":
        return f"link {raw!r}: unexpected scheme {parts.scheme!r}"
    target = Path(unquote(parts.path))
    try:
        target.relative_to(site)
    except ValueError:
        return f"link {raw!r} points outside the site, to {target}"
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{'download' if download else 'link'} {raw!r}: no such file {target}"
    if download or target.suffix == ".ipynb":
        return _notebook_problem(raw, target) if target.suffix == ".ipynb" else None
    if parts.fragment and target.suffix == ".html":
        ids = re.findall(r'\bid="([^"]+)"', target.read_text(encoding="utf-8", errors="replace"))
        if unquote(parts.fragment) not in ids:
            return f"link {raw!r}: no anchor #{parts.fragment} in {target.name}"
    return None


_NOTEBOOKS_SEEN = {}


def _notebook_problem(raw, path):
    path = (path, path.stat().st_mtime_ns)  # a rebuilt site may replace the file
    if path not in _NOTEBOOKS_SEEN:
        try:
            notebook = json.loads(path[0].read_text(encoding="utf-8"))
            code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
            ok = not code or any(c.get("outputs") for c in code)
            _NOTEBOOKS_SEEN[path] = None if ok else f"download {raw!r}: a notebook without outputs"
        except (ValueError, KeyError) as error:
            _NOTEBOOKS_SEEN[path] = f"download {raw!r}: not a notebook ({error})"
    return _NOTEBOOKS_SEEN[path]


def _screenshot(driver, path):
    """The whole page, not only the window, as one PNG."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"],
            "height": min(size["height"], MAX_SCREENSHOT_HEIGHT), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


# --- the real book ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book():
    """The lessons' book in MODE (quick unless MINIRES_TEST_BOOK=full): built here, from the
    execution cache where the lessons have not changed since the last build."""
    _require_the_book_tools()
    proc = build_book(quick=MODE == "quick")
    return _assert_built(proc), proc


def _pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if not p.relative_to(site).as_posix().startswith(("_", "reports")))


def test_the_book_has_a_page_and_an_executed_notebook_per_lesson(book):
    site, _ = book
    for lesson in LESSONS:
        page = site / "lessons" / (lesson.stem + ".html")
        notebook = site / "lessons" / (lesson.stem + ".ipynb")
        assert page.is_file(), f"no page for {lesson.name} in {site}"
        assert notebook.is_file(), f"no executed notebook for {lesson.name} next to {page}"
        cells = json.loads(notebook.read_text())["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), (
            f"{notebook} has no outputs: it was not executed")
        assert f"book-{MODE}" in page.read_text(), f"{page} does not say it is the {MODE} build"


def test_the_front_page_shows_every_lesson_with_its_measured_run_time(book):
    site, _ = book
    report = json.loads((site / "run_times.json").read_text())
    assert report["mode"] == MODE
    assert [e["lesson"] for e in report["lessons"]] == [p.stem for p in LESSONS]
    front = (site / "index.html").read_text()
    sys.path.insert(0, str(ROOT))
    from book.conf import duration

    for entry in report["lessons"]:
        assert entry["succeeded"], f"{entry['lesson']} failed in the build (see its page)"
        assert entry["seconds"] and entry["seconds"] > 0, f"no run time for {entry['lesson']}"
        assert f'href="lessons/{entry["lesson"]}.html"' in front
        assert duration(entry["seconds"]) in front, (
            f"the front page lacks {entry['lesson']}'s run time {duration(entry['seconds'])}")


def test_every_page_of_the_book_passes_in_a_browser(book, browser):
    """No console error, every image and formula rendered, every link and download resolves;
    one screenshot per page."""
    site, _ = book
    shots = site.parent / "screenshots"
    failures = {}
    pages = _pages(site)
    assert "index.html" in pages and "search.html" in pages
    for page in pages:
        problems = check_page(browser, site, page, shots / (page.replace("/", "__") + ".png"))
        if problems:
            failures[page] = problems
    report = "\n".join(f"{page}:\n  " + "\n  ".join(p[:300] for p in problems[:8])
                       for page, problems in failures.items())
    assert not failures, f"pages that fail in the browser (screenshots in {shots}):\n{report}"
    images = sum(1 for p in pages for _ in re.finditer(r"<img ", (site / p).read_text()))
    assert images >= len(LESSONS), f"only {images} images in the whole book"


def test_the_front_page_formula_is_rendered_offline(book, browser):
    site, _ = book
    assert check_page(browser, site, "index.html") == []
    rendered = browser.execute_script(
        "return document.querySelectorAll('mjx-container svg').length")
    assert rendered >= 1, "the front page's formula was not rendered as SVG by the local MathJax"
    assert (site / "_static" / "mathjax" / "tex-svg.js").is_file()


def test_search_finds_the_autograd_lesson(book, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site, _ = book
    browser.get((site / "search.html").as_uri() + "?q=topological")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li"))
    hits = [a.get_attribute("href") for a in
            browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    assert any("01_autograd.html" in h for h in hits), f"search for 'topological' found {hits}"


def test_a_second_build_with_no_lesson_changed_executes_nothing_and_says_so(book):
    _, first = book
    again = build_book(quick=MODE == "quick")
    _assert_built(again)
    assert "execution: nothing executed, no lesson changed since the last build" in again.stdout, (
        f"the second build should say it executed nothing:\n{again.stdout[-2000:]}")
    assert "Executing notebook" not in again.stdout + again.stderr


# --- a tiny book: the cache, and deliberately broken pages ---------------------------------------

GOOD = '''# %% [markdown]
# # Lesson 1: a good page
#
# A formula in the text, $y = \\mathcal{F}(x, \\{W_i\\}) + x$, and one on its own:
#
# $$
# \\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial y}\\left(1 + \\frac{\\partial
# \\mathcal{F}}{\\partial x}\\right)
# $$
#
# The [next page](02_missing_image.py) and [a section](#a-section) of this one.
#
# ## A section

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [0, 1, 4])
ax.set(xlabel="x", ylabel="y")
plt.show()
print("the answer is", 6 * 7)

# %%
import sys
import time

for step in range(1, 6):  # a progress bar redrawn with \\r, as tqdm draws one
    sys.stderr.write(f"\\rprogress {step}/5")
    sys.stderr.flush()
    time.sleep(0.1)
sys.stderr.write("\\n")
'''
BROKEN = {
    "02_missing_image": ("a missing image", "![a figure that is not there](not_there.png)",
                         "image not loaded"),
    "03_raw_formula": ("a raw formula", "An unclosed formula: $$ 1 + 1 = 2", "raw formula"),
    "04_broken_link": ("a broken link", 'See <a href="no_such_lesson.html">the next lesson</a>.',
                       "no such file"),
    "05_javascript_error": ("a JavaScript error", "<script>notAFunction();</script>",
                            "console error"),
}


def _tiny_lesson(title, body):
    return f"# %% [markdown]\n# # {title}\n#\n# {body}\n\n# %%\nprint({title!r})\n"


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    _require_the_book_tools()
    root = tmp_path_factory.mktemp("tiny_book")
    lessons = root / "lessons"
    lessons.mkdir()
    (lessons / "01_good.py").write_text(GOOD)
    for stem, (title, body, _) in BROKEN.items():
        (lessons / f"{stem}.py").write_text(_tiny_lesson(f"Lesson {stem[:2]}: {title}", body))
    args = ("--lessons", str(lessons), "--out", str(root / "build"))
    first = build_book(*args)
    return root, args, _assert_built(first), first


def test_the_tiny_book_executes_every_lesson_once_then_only_the_changed_one(tiny_book):
    root, args, _, first = tiny_book
    n = 1 + len(BROKEN)
    assert f"execution: {n} of {n} lessons executed" in first.stdout, first.stdout[-2000:]
    second = build_book(*args)
    _assert_built(second)
    assert "execution: nothing executed, no lesson changed since the last build" in second.stdout
    good = root / "lessons" / "01_good.py"
    good.write_text(GOOD.replace("6 * 7", "6 * 8"))
    try:
        third = build_book(*args)
        site = _assert_built(third)
        assert f"execution: 1 of {n} lessons executed (01_good " in third.stdout, (
            third.stdout[-2000:])
        assert "the answer is 48" in (site / "lessons" / "01_good.html").read_text()
        report = json.loads((site / "run_times.json").read_text())
        states = {e["lesson"]: e["this_build"] for e in report["lessons"]}
        # the others were not run again (02 is re-read, from the cache: its image is missing,
        # and Sphinx re-reads a page whose dependencies are missing)
        others = {k: s for k, s in states.items() if k != "01_good"}
        assert states["01_good"] == "executed", states
        assert all(s in ("unchanged", "from the cache") for s in others.values()), states
        assert "from the cache" in others.values(), states  # 02, re-read: the case below
        for stem in states:  # a lesson taken from the cache still downloads with its outputs
            notebook = site / "lessons" / f"{stem}.ipynb"
            assert _notebook_problem(stem, notebook) is None, _notebook_problem(stem, notebook)
    finally:
        good.write_text(GOOD)


def test_the_tiny_book_works_with_no_network(tiny_book):
    """Nothing in the site's HTML is loaded from outside it (no CDN script, style or font)."""
    _, _, site, _ = tiny_book
    remote = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    for page in site.rglob("*.html"):
        found = remote.search(page.read_text(encoding="utf-8"))
        assert found is None, f"{page} loads {found.group(0)!r} from the network"
    page = (site / "lessons" / "01_good.html").read_text()
    assert "_static/mathjax/tex-svg.js" in page and (site / "_static/mathjax/tex-svg.js").is_file()


def test_the_browser_check_passes_a_good_page(tiny_book, browser):
    _, _, site, _ = tiny_book
    assert check_page(browser, site, "lessons/01_good.html") == []
    page = (site / "lessons" / "01_good.html").read_text()
    assert 'href="02_missing_image.html"' in page, "a link from one lesson to the next is lost"
    assert "progress 5/5" in page and "progress 4/5" not in page, (
        "a progress bar should show as its last state, not one line per redraw")
    assert browser.execute_script("return document.querySelectorAll('mjx-container').length") >= 2
    assert browser.execute_script(
        "return [...document.images].filter(i => i.naturalWidth > 0).length") >= 1


@pytest.mark.parametrize("stem", sorted(BROKEN))
def test_the_browser_check_fails_a_broken_page(tiny_book, browser, stem):
    _, _, site, _ = tiny_book
    what, _, expected = BROKEN[stem]
    problems = check_page(browser, site, f"lessons/{stem}.html")
    assert any(expected in p for p in problems), (
        f"a page with {what} should fail with {expected!r}; the check found {problems}")


def test_the_browser_check_fails_when_mathjax_is_missing(tiny_book, browser, tmp_path):
    """The site without its local MathJax: the formulas stay raw TeX, and the check says so."""
    import shutil

    _, _, site, _ = tiny_book
    copy = tmp_path / "site"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns("mathjax"))
    problems = check_page(browser, copy, "lessons/01_good.html")
    assert any(p.startswith("formula not rendered") for p in problems), problems
    assert any(p.startswith("raw formula") for p in problems), problems
    assert any("tex-svg.js" in p for p in problems if p.startswith("console error")), problems
