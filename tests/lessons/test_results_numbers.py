"""Every number the results pages and the README quote comes from a file its command wrote.

The convention (``results/tables.py`` says it at more length): a page's tables sit between
``<!-- table: NAME -->`` and ``<!-- end table -->`` and are made from the JSON by
``python results/tables.py``; a number in the prose is followed by an HTML comment naming its
source, ``54.1%<!-- degradation/degradation.json: final["plain56"]["0"]["train_error"] -->`` (a
Python expression over the file's top-level keys, the file relative to the page), or by
``<!-- paper -->`` when it quotes a paper. So a number edited by hand, or left without a source,
fails here, and a new run (its JSON copied in, ``python results/tables.py``) shows which sentences
no longer hold.
"""
import importlib.util
import json
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"

spec = importlib.util.spec_from_file_location("results_tables", RESULTS / "tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)

SOURCE = re.compile(r"<!--\s*(?P<file>[\w./-]+\.json):\s*(?P<expr>.*?)\s*-->", re.S)
PAPER = "<!-- paper -->"
# the number that ends the text before a marker, with its unit; ** and ` may close it
QUOTED = re.compile(r"(?:(?<!\w)(?P<sign>[+-]))?(?P<int>\d[\d,]*)(?P<frac>\.\d+)?"
                    r"(?:e(?P<exp>[+-]?\d+))?(?P<unit>%| points| min| s| h|x)?[*`]*$")
SCALE = {"%": 100, " points": 100, " min": 1 / 60, " h": 1 / 3600}
# what reads as a measured number: a decimal, an exponent or a unit (not "ResNet-56", "Fig. 4.2")
NUMBER = re.compile(r"(?<![\w.^/-])[+-]?\d[\d,]*(?P<frac>\.\d+)?(?P<exp>e[+-]?\d+)?"
                    r"(?P<unit>%| points\b| min\b| s\b| h\b|x\b)?(?![\w.]*\d)")
NOT_MEASURED = re.compile(r"(sec|section|Fig|Figs|Figure|Table|Tables|eq|ref)\.?\s*\(?$", re.I)


def blank(text, pattern, flags=0):
    """``text`` with every match of ``pattern`` replaced by spaces (newlines and offsets kept)."""
    return re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m[0]), text, flags=flags)


def formatted_like(value, quoted):
    """``value`` written the way ``quoted`` (a QUOTED match) writes its number."""
    v = value * SCALE.get(quoted["unit"], 1)
    digits = len(quoted["frac"] or ".") - 1
    if quoted["exp"] is not None:
        mantissa, _, exponent = f"{v:.{digits}e}".partition("e")
        return f"{mantissa}e{int(exponent)}"
    sign = "+" if quoted["sign"] == "+" else ""
    comma = "," if "," in quoted["int"] else ""
    return f"{v:{sign}{comma}.{digits}f}"


def evaluate(base, file, expr):
    doc = json.loads((base / file).read_text())
    names = {"doc": doc, "sum": sum, "min": min, "max": max, "len": len, "abs": abs,
             "median": statistics.median}
    if isinstance(doc, dict):
        names.update({k: v for k, v in doc.items() if k.isidentifier()})
    return eval(expr, {"__builtins__": {}, **names})


def problems(text, base, *, decimals=True):
    """What is wrong with the numbers of ``text`` (a page in folder ``base``): a marked number
    that is not its source's value, a table block that is not what results/tables.py makes, or
    (outside code and tables) a measured-looking number with no source. ``decimals=False``: only
    numbers with a unit (%, s, min, points, x) need a source."""
    found, quoted_texts = [], []  # quoted_texts: (start, end) of the strings a marker checked
    for m in tables.BLOCK.finditer(text):
        if m["name"] not in tables.TABLES:
            found.append(f"table {m['name']!r}: results/tables.py makes no such table")
        elif m["body"] != tables.TABLES[m["name"]]():
            found.append(f"table {m['name']!r} is not what `python results/tables.py` makes of "
                         "its JSON")
    for m in SOURCE.finditer(text):
        before = text[:m.start()].rstrip("*` ")
        where = f"line {text.count(chr(10), 0, m.start()) + 1}"
        try:
            value = evaluate(base, m["file"], m["expr"])
        except Exception as e:  # noqa: BLE001 - any failure is the page's problem, said in one line
            found.append(f"{where}: {m['file']}: {m['expr']} fails: {e!r}")
            continue
        if isinstance(value, str):
            if not before.endswith(value):
                found.append(f"{where}: the text before it should end with {value!r} "
                             f"({m['file']}: {m['expr']})")
            quoted_texts.append((len(before) - len(value), len(before)))
            continue
        quoted = QUOTED.search(text[:m.start()])
        if quoted is None:
            found.append(f"{where}: no number right before the source {m['expr']}")
            continue
        written = quoted[0].rstrip("*`")
        number = (quoted["sign"] or "") + quoted["int"] + (quoted["frac"] or "") + (
            f"e{quoted['exp']}" if quoted["exp"] is not None else "")
        expected = formatted_like(value, quoted)
        if number != expected:
            found.append(f"{where}: the page says {written}, its source gives {expected}"
                         f"{(quoted['unit'] or '')} ({m['file']}: {m['expr']} = {value!r})")
    # every measured-looking number outside code, tables, comments and links carries a source
    prose = blank(text, r"```.*?```", re.S)
    prose = blank(prose, tables.BLOCK.pattern, re.S)
    prose = blank(prose, r"<!--.*?-->", re.S)
    prose = blank(prose, r"`[^`\n]*`")
    prose = blank(prose, r"\]\([^)]*\)")
    for start, end in quoted_texts:
        prose = prose[:start] + re.sub(r"[^\n]", " ", prose[start:end]) + prose[end:]
    for m in NUMBER.finditer(prose):
        measured = m["unit"] or (decimals and (m["frac"] or m["exp"]))
        if not measured or NOT_MEASURED.search(prose[:m.start()]):
            continue
        after = text[m.end():].lstrip("*`")
        if not after.startswith("<!--"):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"line {line}: {m[0]!r} has no source (add <!-- FILE.json: EXPR --> "
                         f"or {PAPER} after it)")
    return found


PAGES = tables.pages()


@pytest.mark.parametrize("page", PAGES, ids=[Path(p).name for p in PAGES])
def test_every_number_on_a_results_page_is_its_runs(page):
    page = Path(page)
    assert not problems(page.read_text(encoding="utf-8"), page.parent)


def test_the_readmes_numbers_come_from_the_runs_and_it_links_every_results_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not problems(readme, ROOT, decimals=False)
    unlinked = [Path(p).name for p in PAGES if f"results/{Path(p).name}" not in readme]
    assert not unlinked, f"README.md's table of experiments does not link {unlinked}"


def test_a_number_edited_by_hand_or_without_a_source_is_caught():
    page = RESULTS / "degradation.md"
    text = page.read_text(encoding="utf-8")
    m = SOURCE.search(text)
    quoted = QUOTED.search(text[:m.start()])
    digit = quoted.start("int")
    edited = text[:digit] + ("1" if text[digit] != "1" else "2") + text[digit + 1:]
    assert any("the page says" in p for p in problems(edited, page.parent))
    unsourced = text + "\nIt reached 12.5% here.\n"
    assert any("has no source" in p for p in problems(unsourced, page.parent))
    table = tables.BLOCK.search(text)
    retabled = text.replace(table["body"], table["body"].replace("|", "| ", 1))
    assert any("is not what" in p for p in problems(retabled, page.parent))
