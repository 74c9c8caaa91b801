"""What a lesson says about its own runs is what its runs gave.

Run times: every "(full run: 8 s, quick: 2 s)" in a lesson or in lessons/README.md is the time
`python lessons/time_lessons.py` measured and wrote to lessons/timings.json, to the precision it is
quoted in; every lesson quotes its own. Results: the numbers lessons 06, 10, 14, 15 and 16 quote
about their full runs are the ones in the JSON those runs wrote: the reference runs of
`python -m minires responses`, `paths`, `normfree` and `signal` (results/), and the lessons' own
full runs, kept in timings.json by the timing script. Edit a quoted number by hand and a test
here names it.
"""

import json
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS_DIR = ROOT / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]*_*.py"))
TIMINGS = LESSONS_DIR / "timings.json"
QUOTE = re.compile(r"\(full run: ([^,()]+), quick: ([^()]+)\)")
OWN_TIME = LESSONS  # every lesson states its run times


def timings():
    assert TIMINGS.exists(), "lessons/timings.json is missing: run python lessons/time_lessons.py"
    return json.loads(TIMINGS.read_text())


def full_results(stem):
    entry = timings()["lessons"].get(stem, {}).get("full")
    assert entry and "results" in entry, (
        f"lessons/timings.json has no full run of {stem} with its results: "
        f"python lessons/time_lessons.py --only {stem.split('_')[0]}")
    return entry["results"]


def reference(command, name):
    return json.loads((ROOT / "results" / command / name).read_text())


def said_seconds(text):
    """'8 s' -> (8.0, 0.5), '3.4 min' -> (204.0, 3.0): the time and how far rounding may move it."""
    match = re.fullmatch(r"(\d+(?:\.(\d+))?) (s|min)", text.strip())
    assert match, f"a quoted run time must read like '8 s' or '3.4 min', not {text!r}"
    value, decimals, unit = float(match.group(1)), len(match.group(2) or ""), match.group(3)
    scale = 60.0 if unit == "min" else 1.0
    return value * scale, 0.5 * 10.0 ** -decimals * scale


def check_quote(where, stem, full_text, quick_text):
    entry = timings()["lessons"].get(stem)
    assert entry, f"{where} quotes run times for {stem}, which lessons/timings.json has not timed"
    for mode, text in (("full", full_text), ("quick", quick_text)):
        ran = mode in entry and entry[mode]["returncode"] == 0
        if text.strip() == "not timed":
            assert not ran, f"{where}: says {mode} mode was not timed; timings.json has a run"
            continue
        assert ran, f"{where}: quotes a {mode} run time, but timings.json has no clean run"
        measured = entry[mode]["seconds"]
        said, slack = said_seconds(text)
        assert abs(said - measured) <= slack + 1e-9, (
            f"{where}: says the {mode} run takes {text.strip()}, timings.json measured "
            f"{measured} s ({mode} of {stem}); python lessons/time_lessons.py --quote rewrites it")


def test_the_timings_were_measured_on_a_named_machine_and_every_run_passed():
    t = timings()
    assert t.get("machine", {}).get("cores"), "timings.json must say which machine it measured"
    failed = [f"{stem} ({mode})" for stem, entry in t["lessons"].items()
              for mode, record in entry.items() if record["returncode"] != 0]
    assert not failed, f"runs that failed in timings.json: {failed}"


@pytest.mark.parametrize("path", OWN_TIME, ids=[p.stem for p in OWN_TIME])
def test_a_lesson_quotes_its_own_measured_run_times(path):
    quotes = QUOTE.findall(path.read_text(encoding="utf-8"))
    assert quotes, f"{path.name} does not state its run time as (full run: ..., quick: ...)"
    for full_text, quick_text in quotes:
        check_quote(path.name, path.stem, full_text, quick_text)


def test_every_quote_in_any_lesson_is_measured():
    for path in LESSONS:
        for full_text, quick_text in QUOTE.findall(path.read_text(encoding="utf-8")):
            check_quote(path.name, path.stem, full_text, quick_text)


def test_the_first_hour_table_quotes_every_lesson_as_measured():
    text = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        quotes = QUOTE.findall(line)
        if not quotes:
            continue
        named = [p.stem for p in LESSONS if f"{p.name}" in line]
        assert len(named) == 1, f"lessons/README.md: a row with a run time names one lesson: {line}"
        for full_text, quick_text in quotes:
            check_quote(f"lessons/README.md ({named[0]})", named[0], full_text, quick_text)
        rows[named[0]] = line
    missing = [p.name for p in OWN_TIME if p.stem not in rows]
    assert not missing, f"lessons/README.md's first-hour table has no run time for {missing}"


# -- the results the lessons quote ----------------------------------------------------------------

def expect(path, pattern, values, formats):
    """Every match of ``pattern`` in the lesson's text has the groups ``values`` gives, each written
    as ``formats`` writes it ("pct1": 0.191 -> '19.1'; "pct2"; "f1"; "f3": 1.0131 -> '1.013';
    "int")."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"[ \t]*\n#[ \t]*", " ", text)  # a sentence may wrap over comment lines
    matches = list(re.finditer(pattern, text))
    assert matches, f"{path.name} no longer says {pattern!r}; update this test with the lesson"
    writers = {"pct0": lambda v: f"{100 * v:.0f}", "pct1": lambda v: f"{100 * v:.1f}",
               "pct2": lambda v: f"{100 * v:.2f}", "f0": lambda v: f"{v:.0f}",
               "f1": lambda v: f"{v:.1f}", "f2": lambda v: f"{v:.2f}", "f3": lambda v: f"{v:.3f}",
               "int": lambda v: f"{int(v)}", "e0": lambda v: f"{v:.0e}".replace("e+", "e")}
    want = [writers[f](v) for v, f in zip(values, formats)]
    for m in matches:
        assert list(m.groups()) == want, (
            f"{path.name} says {m.group(0)!r}; its run's JSON gives {want} for {pattern!r}")


def test_lesson_06_gives_the_responses_of_its_run():
    path = LESSONS_DIR / "06_degradation.py"
    summary = reference("responses", "responses.json")["summary"]
    mean = {net: summary[net]["mean"] for net in summary}
    expect(path, r"a mean std of (\d\.\d+) against (\d\.\d+) at depth 20",
           [mean["resnet20"], mean["plain20"]], ["f3", "f3"])
    expect(path, r"and (\d\.\d+) against (\d\.\d+) at depth 56",
           [mean["resnet56"], mean["plain56"]], ["f3", "f3"])
    expect(path, r"\(a mean std of (\d\.\d+) against (\d\.\d+)\)",
           [mean["resnet56"], mean["resnet20"]], ["f3", "f3"])
    # The answer the lesson gives follows from the numbers.
    assert mean["resnet56"] > mean["resnet20"] and "*not* below ResNet-20's" in path.read_text()
    # The lesson says its full run trains the reference run's nets: its own responses agree.
    own = full_results("06_degradation")["responses"]
    assert {net: round(own[net]["mean"], 3) for net in mean} == {
        net: round(m, 3) for net, m in mean.items()}, (own, mean)


def test_lesson_10_gives_the_paths_of_its_run_and_of_the_reference():
    path = LESSONS_DIR / "10_paths.py"
    own = full_results("10_paths")["summary"]
    for label in ("trained", "init"):
        lo, hi = own[label]["range"]
        expect(path, rf"{label}: lengths (\d+)-(\d+), (\d+\.\d+)% of the paths",
               [lo, hi, own[label]["fraction_of_paths"]], ["int", "int", "pct2"])
    expect(path, r"a mean length of (\d+\.\d) against the (\d+\.\d) of all paths",
           [own["trained"]["gradient_mean_length"], own["trained"]["path_mean_length"]],
           ["f1", "f1"])
    ref = reference("paths", "paths.json")["summary"]
    expect(path, r"ResNet-56 \(27 blocks\) after training: (\d+\.\d+)% of its paths",
           [ref["trained"]["fraction_of_paths"]], ["pct1"])
    expect(path, r"ResNet-56's (\d+\.\d+)% at initialisation",
           [ref["init"]["fraction_of_paths"]], ["pct1"])


def test_lesson_14_gives_the_errors_of_its_run():
    path = LESSONS_DIR / "14_imagenet_recipe.py"
    own = full_results("14_imagenet_recipe")
    testing = own["testing"]
    expect(path, r"top-1 error of (\d+\.\d)% with the centre crop, (\d+\.\d)% with 10 crops and "
                 r"(\d+\.\d)% multi-scale",
           [testing["centre crop"]["top1"], testing["10 crops"]["top1"],
            testing["multi-scale"]["top1"]], ["pct1"] * 3)
    expect(path, r"chance is (\d+\.\d)%", [own["chance_top1"]], ["pct1"])
    expect(path, r"After (\d+) epochs the net reaches", [own["epochs"]], ["int"])
    expect(path, r"The training error ends at (\d+\.\d)%", [own["last_train_error"]], ["pct1"])
    expect(path, r"\((\d+) images, so one image", [own["test_images"]], ["int"])
    # What the lesson concludes from them.
    top1 = {name: t["top1"] for name, t in testing.items()}
    assert top1["centre crop"] < own["chance_top1"] - 0.25, "'well above chance' needs a margin"
    assert top1["10 crops"] >= top1["centre crop"], "the lesson says 10 crops are no better"
    assert top1["multi-scale"] == max(top1.values()), "the lesson says multi-scale is the worst"
    assert "the plateau schedule never fired" in re.sub(r"\s*\n#\s*", " ", path.read_text())
    assert len(set(own["lr"])) == 1, "the lesson says the lr stayed at its first value"


def test_lesson_15_gives_the_errors_of_its_run_and_of_the_reference():
    path = LESSONS_DIR / "15_signal_propagation.py"
    own = full_results("15_signal_propagation")["outcomes"]["20"]
    final = {variant: own[variant]["0"]["final_train_error"] for variant in own}
    expect(path, r"batch norm ended at (\d+\.\d)% training error", [final["batch_norm"]], ["pct1"])
    expect(path, r"did not diverge and ended at (\d+\.\d)%", [final["no_norm"]], ["pct1"])
    assert own["no_norm"]["0"]["diverged"] is None, "the lesson says it did not diverge"
    expect(path, r"SkipInit and Fixup ended at (\d+\.\d)% and (\d+\.\d)%",
           [final["skipinit"], final["fixup"]], ["pct1", "pct1"])
    ref = reference("normfree", "normfree.json")
    runs, outcomes = ref["runs"]["56"], ref["outcomes"]["56"]
    steps = sorted({r["diverged"]["step"] for r in runs["no_norm"].values()})
    expect(path, r"diverged in every seed, at step (\d) or (\d) of the first epoch", steps,
           ["int", "int"])
    assert all(r["diverged"]["epoch"] == 1 for r in runs["no_norm"].values())
    losses = [o["init_loss"] for o in outcomes["no_norm"].values()]
    expect(path, r"from a loss at initialisation of (\d+) to (\d+)", [min(losses), max(losses)],
           ["f0", "f0"])
    bn = outcomes["batch_norm"].values()
    errors = [o["final_train_error"] for o in bn]
    expect(path, r"(\d+\.\d)% to (\d+\.\d)% training error, below 10% after epoch (\d) or (\d)",
           [min(errors), max(errors)] + sorted({o["epoch_trained"] for o in bn}),
           ["pct1", "pct1", "int", "int"])
    assert ref["thresholds"]["trained"] == 0.1
    slow = [o["final_train_error"] for v in ("skipinit", "fixup") for o in outcomes[v].values()]
    expect(path, r"they end at (\d+)% to (\d+)% training error", [min(slow), max(slow)],
           ["pct0", "pct0"])


def test_lesson_16_gives_the_numbers_of_its_run():
    path = LESSONS_DIR / "16_rank_and_sharpness.py"
    own = full_results("16_rank_and_sharpness")
    last = {variant: by["110"] for variant, by in own["rank_last"].items()}
    expect(path, r"plain-110 keeps an effective rank of (\d+\.\d) with batch norm and (\d+\.\d) "
                 r"without", [last["plain"], last["plain_nobn"]], ["f1", "f1"])
    expect(path, r"ResNet-110 without batch norm ends at (\d+\.\d), below the plain net's "
                 r"(\d+\.\d); with its branches scaled by 1/sqrt\(blocks\) it keeps (\d+\.\d)",
           [last["resnet_nobn"], last["plain_nobn"], last["resnet_nobn_small"]], ["f1"] * 3)
    expect(path, r"\((\d+\.\d) for the ordinary ResNet-110\)", [last["resnet"]], ["f1"])
    assert last["resnet_nobn"] < last["plain_nobn"] < last["resnet_nobn_small"] < last["resnet"]
    edge, lr = own["edge"], own["lr"]
    expect(path, r"at lr (\d\.\d) gradient descent started from lambda_max = (\d+\.\d), came "
                 r"within 10% of 2/lr = (\d+) at step (\d+), overshot to (\d+\.\d) and then "
                 r"hovered at a median of (\d\.\d+) x 2/lr, the loss rising at (\d+)% of the steps",
           [lr, edge["lambda_0"], 2 / lr, edge["reached_step"], edge["lambda_peak"],
            edge["median_ratio"], edge["loss_rises"]],
           ["f1", "f1", "f0", "int", "f1", "f2", "pct0"])
    trained = own["trained"]
    expect(path, r"\(lambda_max\s+(\d+\.\d) against (\d+\.\d)\)",
           [trained["resnet8"]["lambda_max"], trained["plain8"]["lambda_max"]], ["f1", "f1"])
    assert trained["resnet8"]["lambda_max"] < trained["plain8"]["lambda_max"]
    assert not any(t["converged"] for t in trained.values()), (
        "the lesson says neither power iteration converged")


def test_lesson_15_gives_the_signal_propagation_of_the_reference():
    path = LESSONS_DIR / "15_signal_propagation.py"
    sig = reference("signal", "signal.json")
    fit, at110 = sig["depth_fit"]["batch_norm"], sig["summary"]["110"]
    expect(path, r"batch norm's stream grows like depth\^(\d\.\d\d) and its branches' share like "
                 r"depth\^-(\d\.\d\d)", [fit["variance_power"], -fit["share_power"]], ["f2", "f2"])
    growth = [sig["summary"][d]["no_norm"]["growth_per_block"] for d in ("32", "56", "110")]
    expect(path, r"stream grows by (\d\.\d) per block, to (\de\d+) after the last block of "
                 r"ResNet-110", [statistics.mean(growth), at110["no_norm"]["final_variance"]],
           ["f1", "e0"])
    assert max(growth) - min(growth) < 0.1, growth
    per_block = at110["batch_norm"]["variance_per_block"]
    expect(path, r"about (\d\.\d) of variance per block", [statistics.mean(per_block)], ["f1"])
    assert round(min(per_block), 1) == round(max(per_block), 1), per_block
    moment = at110["batch_norm"]["moment_per_block"]
    expect(path, r"second moment grows by (\d\.\d) to (\d\.\d) per block",
           [min(moment), max(moment)], ["f1", "f1"])


def test_lesson_11_describes_the_reference_landscape():
    text = re.sub(r"[ \t]*\n#[ \t]*", " ", (LESSONS_DIR / "11_landscape.py").read_text())
    nets = reference("landscape", "landscape.json")["nets"]
    measures = {net: r["measures"] for net, r in nets.items()}
    assert "plain-56's contours are ragged around a basin of under 1% of the grid" in text
    assert measures["plain56"]["basin_share"] < 0.01
    assert "ResNet-56 stays a bowl" in text
    assert measures["resnet56"]["basin_share"] > 5 * measures["plain56"]["basin_share"]
