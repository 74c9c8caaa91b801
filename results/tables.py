"""The tables of the results pages, made from the files the commands wrote.

Each page ``results/<command>.md`` reads the run folder beside it, ``results/<command>/``, which
holds what ``python -m minires <command>`` wrote there. A table sits in its page between

    <!-- table: NAME -->
    ...
    <!-- end table -->

and ``python results/tables.py`` rewrites every such block from the JSON; a number in the prose
carries its source in an HTML comment right after it, a Python expression over the JSON's
top-level keys (``doc`` is the whole file), the file relative to the page:

    plain-56 ends at 54.1%<!-- degradation/degradation.json: final["plain56"]["0"]["train_error"]
    -->

A number quoted from a paper is marked ``<!-- paper -->``. ``tests/lessons/test_results_numbers.py``
checks both: the blocks are what this script makes, and each marked number is its expression,
rounded as the page writes it (a "%" or "points" is 100 times the value, "min" a sixtieth of the
seconds).
"""
import json
import os
import re
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n<!-- end table -->)", re.S)


def load(relpath):
    """The JSON at ``relpath``, relative to results/."""
    with open(os.path.join(HERE, relpath)) as f:
        return json.load(f)


def pct(v, digits=1):
    return f"{100 * v:.{digits}f}%"


def sig(v, digits=3):
    """``v`` to ``digits`` significant figures, exponents written 4.1e3."""
    text = f"{v:.{digits}g}"
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


def pretty(name):
    """"plain-20" for "plain20", "ResNet-56" for "resnet56"."""
    return re.sub(r"^(plain|resnet)", lambda m: "plain-" if m[1] == "plain" else "ResNet-", name)


def rows(header, align, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(out + ["| " + " | ".join(map(str, cells)) + " |" for cells in lines])


# -- one function per table: NAME -> markdown ------------------------------------------------------

def train():
    h = load("train/history.json")
    return rows(["epoch", "lr", "training loss", "training error", "test error", "seconds"],
                ["---:"] * 6,
                [[r["epoch"], f"{r['lr']:.3g}", f"{r['train_loss']:.3f}", pct(r["train_error"]),
                  pct(r["test_error"]), f"{r['seconds']:.1f}"] for r in h])


def flow():
    runs = {r["name"]: r for r in load("flow/flow.json")["runs"]}
    depths = load("flow/flow.json")["settings"]["depths"]
    return rows(["depth", "dL/dW first/last conv: plain", "ResNet", "dL/dx input/output: plain",
                 "ResNet"], ["---:"] * 5,
                [[d] + [sig(runs[f"{kind}{d}"][key]) for key in ("weight_ratio", "activation_ratio")
                        for kind in ("plain", "resnet")] for d in depths])


def degradation():
    doc = load("degradation/degradation.json")
    seeds = [str(s) for s in doc["seeds"]]
    lines = []
    for name in doc["nets"]:
        final = doc["final"][name]
        cells = [pretty(name)]
        for key in ("train_error", "test_error"):
            v = [100 * final[s][key] for s in seeds]
            cells.append(f"{statistics.median(v):.1f}% [{min(v):.1f}, {max(v):.1f}]")
        cells.append("; ".join(f"{s}: {100 * final[s]['train_error']:.1f} / "
                               f"{100 * final[s]['test_error']:.1f}" for s in seeds))
        lines.append(cells)
    return rows(["net", "training error, median [min, max]", "test error, median [min, max]",
                 "per seed (train / test)"], ["---", "---:", "---:", "---"], lines)


def responses():
    doc = load("responses/responses.json")
    return rows(["net", "3x3 layers", "mean std", "median", "max"], ["---"] + ["---:"] * 4,
                [[pretty(n), len(doc["std"][n]), f"{s['mean']:.3f}", f"{s['median']:.3f}",
                  f"{s['max']:.3f}"] for n, s in doc["summary"].items()])


def lesion():
    doc = load("lesion/lesion.json")
    lines = []
    for name, r in doc["nets"].items():
        s = r["summary"]
        down = s["downsampling_mean_error"]
        lines.append([pretty(name), pct(s["intact_error"]), pct(s["single_median_error"]),
                      pct(s["single_max_error"]), f"{s['single_small']} of {s['single_count']}",
                      "–" if down is None else pct(down)])
    return rows(["net", "intact", "one block deleted: median", "worst",
                 "blocks costing at most 5 points", "shape-changing blocks (mean)"],
                ["---"] + ["---:"] * 5, lines)


def lesion_blocks():
    """Test error with each block deleted on its own, the first blocks of each net."""
    doc = load("lesion/lesion.json")
    lines = []
    for name, r in doc["nets"].items():
        first = list(r["single"].items())[:4]
        lines.append([pretty(name)] + [f"{b}: {pct(e)}" for b, e in first])
    return rows(["net", "first block", "second", "third", "fourth"], ["---"] * 5, lines)


def paths():
    doc = load("paths/paths.json")
    labels = {"init": "at initialisation", "trained": "after training"}
    return rows(["ResNet-56", "peak length", "90% of the gradient from lengths",
                 "share of the paths", "mean length (by gradient)"], ["---"] + ["---:"] * 4,
                [[labels[k], s["peak_k"], "%d–%d" % tuple(s["range"]), pct(s["fraction_of_paths"]),
                  f"{s['gradient_mean_length']:.1f}"] for k, s in doc["summary"].items()])


def landscape():
    doc = load("landscape/landscape.json")
    lines = []
    for name, r in doc["nets"].items():
        m = r["measures"]
        lines.append([pretty(name), f"{m['loss_at_origin']:.3f}", pct(m["basin_share"]),
                      m["region_points"], pct(m["saddle_share"]),
                      f"{m['median_curvature_ratio']:.2f}", pct(m["concave_share_1d"])])
    return rows(["net", "loss at θ*", "grid points within 0.1 of the minimum",
                 "points near the minimum", "of them clearly negative curvature",
                 "median λmin/\\|λmax\\|", "1-D points bending down"],
                ["---"] + ["---:"] * 6, lines)


def identity():
    doc = load("identity/identity.json")
    lines = []
    for r in doc["table"]:
        paper = r["paper_test_error"] + ("%" if r["paper_test_error"] != "fail" else "")
        each = [" / ".join(pct(e) for e in r[k]) for k in ("train_errors", "test_errors")]
        lines.append([r["label"], r["figure"], f"{pct(r['train_error'], 2)} ({each[0]})",
                      f"{pct(r['test_error'], 2)} ({each[1]})", f"{r['final_train_loss']:.4f}",
                      paper])
    return rows(["variant", "figure", "training error (seeds 0 / 1 / 2)", "test error",
                 "final training loss", "paper: test error (ResNet-110, CIFAR-10)"],
                ["---", "---"] + ["---:"] * 4, lines)


SHATTER_DEPTHS = (1, 5, 10, 20, 50)


def shatter():
    doc = load("shatter/shatter.json")
    depths = doc["settings"]["depths"]
    labels = {"feedforward": "feedforward", "feedforward_bn": "feedforward + BN",
              "resnet": "ResNet", "resnet_bn": "ResNet + BN",
              "resnet_scaled": "ResNet, shortcut x sqrt(1/2)"}
    lines = []
    for v, r in doc["variants"].items():
        at = [depths.index(d) for d in SHATTER_DEPTHS]
        cells = [f"{r['r1_mean'][i]:.3f} ({r['half_lag_median'][i]:.0f})" for i in at]
        e, p = r["fit_r1"]["exponential"], r["fit_r1"]["power"]
        cells.append(f"exp(-L/{e['tau']:.3g}) (rms {e['rms_log']:.3f}), "
                     f"L^-{p['beta']:.3f} (rms {p['rms_log']:.3f})")
        lines.append([labels[v]] + cells)
    for name, n in doc["noise"].items():
        lines.append([name, f"{n['r1']:.3f} ({n['half_lag']})"] + [""] * len(SHATTER_DEPTHS))
    header = ["variant"] + [f"L = {d}" for d in SHATTER_DEPTHS] + ["fit of r(1) against depth L"]
    return rows(header, ["---"] + ["---:"] * len(SHATTER_DEPTHS) + ["---"], lines)


def sharpness_edge():
    """Per lr: lambda_max at step 0 and its peak, the first step at REACH x 2/lr, the median of
    lambda_max / (2/lr) from there on, and the share of those steps at which the loss rose; one
    cell per seed, "a / b / c"."""
    edge = load("sharpness/edge/sharpness.json")["edge"]

    def cells(runs, key, fmt):
        return " / ".join("-" if r[key] is None else fmt(r[key]) for r in runs)

    lines = [[lr, f"{2 / float(lr):.0f}", cells(runs, "lambda_0", "{:.1f}".format),
              cells(runs, "lambda_peak", "{:.1f}".format), cells(runs, "reached_step", str),
              cells(runs, "median_ratio", "{:.2f}".format),
              cells(runs, "share_in_band", lambda v: pct(v, 0)),
              cells(runs, "loss_rises_before", lambda v: pct(v, 0)),
              cells(runs, "loss_rises", lambda v: pct(v, 0)),
              cells(runs, "final_loss", "{:.4f}".format)]
             for lr, runs in edge.items()]
    header = ["lr", "2/lr", "lambda_max at step 0", "peak", "first step at 0.9 x 2/lr",
              "median lambda_max / (2/lr) after", "share within 2/lr +- 20%",
              "steps the loss rose: before", "after", "final loss"]
    return rows(header, ["---:"] * len(header), lines)


def sharpness_trained():
    """Per trained net: lambda_max, the loss's second difference along its vector, the products
    power iteration took and whether it converged; one cell per seed."""
    trained = load("sharpness/trained/sharpness.json")["trained"]

    def cells(by_seed, fmt):
        return " / ".join(fmt(r) for r in by_seed.values())

    lines = [[pretty(name), cells(s, lambda r: f"{r['lambda_max']:.2f}"),
              cells(s, lambda r: f"{r['second_difference']:.2f}"),
              cells(s, lambda r: str(r["iterations"])),
              cells(s, lambda r: "yes" if r["converged"] else "no")]
             for name, s in trained.items()]
    header = ["net", "lambda_max", "second difference of the loss along v",
              "Hessian-vector products", "converged"]
    return rows(header, ["---", "---:", "---:", "---:", "---:"], lines)


TABLES = {"train": train, "flow": flow, "degradation": degradation, "responses": responses,
          "lesion": lesion, "lesion-blocks": lesion_blocks, "paths": paths,
          "landscape": landscape, "identity": identity, "shatter": shatter,
          "sharpness-edge": sharpness_edge, "sharpness-trained": sharpness_trained}


def pages():
    """Every results page: results/*.md."""
    return sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith(".md"))


def rewrite(text):
    """``text`` with every table block made again from its JSON."""
    return BLOCK.sub(lambda m: m[1] + TABLES[m["name"]]() + m[4], text)


if __name__ == "__main__":
    for page in pages():
        with open(page) as f:
            text = f.read()
        new = rewrite(text)
        if new != text:
            with open(page, "w") as f:
                f.write(new)
            print(f"rewrote the tables of {os.path.relpath(page)}")
