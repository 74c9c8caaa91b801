"""``--quick`` sets defaults only: an option given explicitly wins over it, in every command that
has one. The experiments' ``run`` is replaced by a recorder here, so each case only parses and
checks."""
import pytest

from minires.cli import main
from minires.experiments import (degradation, identity, landscape, lesion, paths, responses,
                                 shatter)

MODULES = (degradation, identity, landscape, lesion, paths, responses, shatter)


@pytest.fixture
def runs(monkeypatch):
    """{experiment: the keyword arguments its run was called with}."""
    calls = {}
    for module in MODULES:
        name = module.__name__.rsplit(".", 1)[1]
        monkeypatch.setattr(module, "run", lambda out, _name=name, **kw: calls.update({_name: kw}))
    return calls


def ran(runs, tmp_path, *argv):
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "out")]) in (0, None)
    return runs[argv[0]]


# (argv, the run's keyword, what it must be): the explicit option, with --quick.
EXPLICIT = [
    (["lesion", "--quick", "--draws", "1"], "draws", 1),
    (["lesion", "--quick", "--depths", "8"], "depths", [8]),
    (["lesion", "--quick", "--epochs", "2"], "recipe", 2),
    (["paths", "--quick", "--depth", "8"], "depth", 8),
    (["paths", "--quick", "--draws", "3"], "draws", 3),
    (["paths", "--quick", "--batch-size", "16"], "batch_size", 16),
    (["landscape", "--quick", "--points", "3"], "points", 3),
    (["landscape", "--quick", "--points-1d", "3"], "points_1d", 3),
    (["landscape", "--quick", "--slices", "1"], "slices", 1),
    (["landscape", "--quick", "--images", "32"], "images", 32),
    (["landscape", "--quick", "--depths", "14"], "depths", [14]),
    (["identity", "--quick", "--epochs", "1"], "recipe", 1),
    (["identity", "--quick", "--depth", "8"], "depth", 8),
    (["identity", "--quick", "--widths", "2", "4", "8"], "widths", (2, 4, 8)),
    (["identity", "--quick", "--limit", "64"], "limit", 64),
    (["shatter", "--quick", "--max-depth", "2"], "depths", range(1, 3)),
    (["shatter", "--quick", "--width", "8"], "width", 8),
    (["shatter", "--quick", "--seeds", "1"], "seeds", [0]),
    (["responses", "--quick", "--depths", "20", "56"], "depths", [20, 56]),
    (["responses", "--quick", "--depths", *map(str, responses.DEPTHS)], "depths",
     list(responses.DEPTHS)),
    (["degradation", "--quick", "--epochs", "2"], "recipe", 2),
    (["degradation", "--quick", "--seeds", "1"], "seeds", range(0, 1)),
]


def value(kw, key):
    return kw[key].epochs if key == "recipe" else kw[key]


@pytest.mark.parametrize("argv, key, expected", EXPLICIT, ids=[" ".join(a) for a, _, _ in EXPLICIT])
def test_an_explicit_option_wins_over_quick(runs, tmp_path, argv, key, expected):
    assert value(ran(runs, tmp_path, *argv), key) == expected


@pytest.mark.parametrize("argv, key, quick, full", [
    (["lesion"], "draws", 2, 5), (["lesion"], "depths", [14], [20, 56]),
    (["paths"], "depth", 14, 56), (["paths"], "batch_size", 32, 64),
    (["landscape"], "points", 5, 21), (["landscape"], "images", 64, 128),
    (["identity"], "depth", 14, identity.DEPTH), (["identity"], "recipe", 3, 10),
    (["shatter"], "width", 64, shatter.WIDTH), (["shatter"], "seeds", [0, 1], [0, 1, 2]),
    (["responses"], "depths", [8, 14], [20, 56]),
])
def test_quick_and_full_defaults_where_nothing_is_given(runs, tmp_path, argv, key, quick, full):
    assert value(ran(runs, tmp_path, *argv, "--quick"), key) == quick
    assert value(ran(runs, tmp_path, *argv), key) == full
