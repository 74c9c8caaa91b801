"""Time every lesson, in quick mode and in full mode, and write lessons/timings.json.

    python lessons/time_lessons.py                  # every lesson, quick then full (a long while)
    python lessons/time_lessons.py --quick-only     # quick mode only (a few minutes)
    python lessons/time_lessons.py --only 06 10     # these lessons; the others keep their entries
    python lessons/time_lessons.py --skip 06        # all but lesson 06 (its entry is kept)
    python lessons/time_lessons.py --table          # print the times in the lessons' own words
    python lessons/time_lessons.py --quote          # write them into the lessons and their README

Each lesson runs the way a learner runs it, `python lessons/NN_name.py` in a fresh interpreter
(with MINIRES_QUICK=1 for quick mode), one at a time. The time is the wall-clock time of that
run; the CPU time and the load average of the machine are recorded next to it, since on a busy
machine the wall-clock time grows with the load. A lesson that writes `<its name>.json` into its
figure folder (lessons 06, 10 and 14 write the numbers their text quotes) has that file kept under
"results" in full mode. Each run's output goes to lessons/out/timings/ (ignored by git), with the
figures of the full runs.

The lessons quote these times as "(full run: 8 s, quick: 2 s)", in the words `seconds_text`
gives, and `--quote` rewrites every such quote (in each lesson, and in the rows of
lessons/README.md that name a lesson's file) from timings.json. tests/lessons/test_lesson_numbers.py
checks every quote against timings.json, and the numbers lessons 06, 10 and 14 quote against the
JSON their runs wrote.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LESSONS_DIR = Path(__file__).resolve().parent
TIMINGS = LESSONS_DIR / "timings.json"
LOGS = LESSONS_DIR / "out" / "timings"
QUOTE = re.compile(r"\(full run: ([^,()]+), quick: ([^()]+)\)")
"""A quoted run time: "(full run: 8 s, quick: 2 s)"; "not timed" where a mode was not."""


def lessons():
    """The lesson files, in reading order (03b_ after 03_)."""
    return sorted(LESSONS_DIR.glob("[0-9][0-9]*_*.py"))


def seconds_text(seconds):
    """How a lesson quotes a run time: '8 s' under a minute, else '3.4 min'."""
    return f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.1f} min"


def timed(entry, mode):
    """True when the entry holds a run of this mode ("full", "quick") that finished cleanly."""
    return mode in entry and entry[mode]["returncode"] == 0


def quote(entry):
    """The quote for one lesson's entry of timings.json (a run that failed is not timed)."""
    said = [seconds_text(entry[mode]["seconds"]) if timed(entry, mode) else "not timed"
            for mode in ("full", "quick")]
    return f"(full run: {said[0]}, quick: {said[1]})"


def write_quotes(timings):
    """Rewrite the quoted times in every timed lesson and in lessons/README.md; returns the files
    changed."""
    changed = []
    entries = timings["lessons"]
    for name, entry in entries.items():
        path = LESSONS_DIR / f"{name}.py"
        if path.exists():
            text = path.read_text(encoding="utf-8")
            new = QUOTE.sub(quote(entry), text)
            if new != text:
                path.write_text(new, encoding="utf-8")
                changed.append(path.name)
    readme = LESSONS_DIR / "README.md"
    lines = readme.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        named = [n for n in entries if f"{n}.py" in line]
        if len(named) == 1 and QUOTE.search(line):
            lines[i] = QUOTE.sub(quote(entries[named[0]]), line)
    text = "\n".join(lines)
    if text != readme.read_text(encoding="utf-8"):
        readme.write_text(text, encoding="utf-8")
        changed.append(readme.name)
    return changed


def machine():
    """The machine the times were taken on (minires.machine.describe, where it imports)."""
    try:
        from minires import machine as m
        info = m.describe()
        return {"cpu": info.get("cpu"), "cores": info.get("cores"), "python": info.get("python"),
                "numpy": info.get("numpy"), "blas": info.get("blas")}
    except Exception as error:  # the timings are still worth having
        return {"cores": os.cpu_count(), "python": sys.version.split()[0], "note": repr(error)}


def run(path, quick, timeout):
    """Run one lesson; returns its record (seconds, cpu_seconds, load averages, returncode, ...)."""
    mode = "quick" if quick else "full"
    LOGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minires-timing-") as tmp:
        out = Path(tmp) / "figures"
        env = dict(os.environ, MINIRES_QUICK="1" if quick else "0", MINIRES_LESSON_OUT=str(out),
                   MPLBACKEND="Agg")
        load_before = os.getloadavg()[0]
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        with open(LOGS / f"{path.stem}-{mode}.log", "w") as log:
            try:
                code = subprocess.run([sys.executable, str(path)], cwd=tmp, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        record = {"seconds": round(seconds, 1),
                  "cpu_seconds": round(cpu_after.ru_utime + cpu_after.ru_stime
                                       - cpu_before.ru_utime - cpu_before.ru_stime, 1),
                  "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
                  "returncode": code, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        numbers = out / f"{path.stem}.json"
        if not quick and numbers.exists():
            record["results"] = json.loads(numbers.read_text())
        if not quick and out.is_dir():  # the figures, to look at
            shutil.copytree(out, LOGS / f"{path.stem}-full", dirs_exist_ok=True)
    return record


def load():
    if TIMINGS.exists():
        return json.loads(TIMINGS.read_text())
    return {"lessons": {}}


def save(timings):
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=False) + "\n")


def table(timings):
    """One line per lesson: its times as a lesson quotes them."""
    return "\n".join(f"{name:28s} {quote(entry)}" for name, entry in timings["lessons"].items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick-only", action="store_true", help="time quick mode only")
    parser.add_argument("--only", nargs="+", metavar="NN",
                        help="lessons to time, by number (02 03b)")
    parser.add_argument("--skip", nargs="+", metavar="NN", default=(), help="lessons not to time")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per run (default 2 h)")
    parser.add_argument("--table", action="store_true", help="print the recorded times and stop")
    parser.add_argument("--quote", action="store_true",
                        help="write the recorded times into the lessons' quotes and stop")
    args = parser.parse_args(argv)
    timings = load()
    if args.table:
        print(table(timings))
        return 0
    if args.quote:
        print("rewrote the quoted times in: " + (", ".join(write_quotes(timings)) or "nothing"))
        return 0
    chosen = [p for p in lessons()
              if (not args.only or p.name.split("_")[0] in args.only)
              and p.name.split("_")[0] not in args.skip]
    timings["machine"] = machine()
    modes = (True,) if args.quick_only else (True, False)
    failed = []
    for quick in modes:  # every quick run first: a lesson that breaks shows up early
        for path in chosen:
            record = run(path, quick, args.timeout)
            entry = timings["lessons"].setdefault(path.stem, {})
            entry["quick" if quick else "full"] = record
            timings["lessons"] = dict(sorted(timings["lessons"].items()))
            save(timings)
            print(f"{path.stem:28s} {'quick' if quick else 'full ':5s} "
                  f"{seconds_text(record['seconds']):>9s}  (cpu {record['cpu_seconds']:.0f} s, "
                  f"load {record['load_before']:.1f} -> {record['load_after']:.1f}, "
                  f"exit {record['returncode']})", flush=True)
            if record["returncode"] != 0:
                failed.append(f"{path.stem} ({'quick' if quick else 'full'})")
    print(f"wrote {TIMINGS}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
