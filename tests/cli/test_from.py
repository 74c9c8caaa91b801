"""``--from DIR`` (responses, lesion, paths, landscape) on files that are not the nets their names
say: a truncated file, another net's, weights without metadata, a folder, metadata of another
depth, kind or seed than the name's, weights that do not fit. Each is refused before any work, in
one line that names the file; good files are loaded as before, and checking them draws nothing
from minires's generator."""
import shutil

import numpy as np
import pytest

from minires import backend, io
from minires.cli import main
from minires.experiments import nets

NAMES = ["plain8", "plain14", "resnet8", "resnet14"]


@pytest.fixture(scope="module")
def good_nets(tmp_path_factory):
    """Untrained nets of depths 8 and 14, saved as a run saves its trained ones (seed 0)."""
    folder = tmp_path_factory.mktemp("nets")
    for name in NAMES:
        nets.save_trained(nets.build_net(name, 10, 1), folder, name, 0)
    return folder


def rewrite_meta(path, **changes):
    arrays, meta = io.load_arrays(path)
    io.save_arrays(path, arrays, {**meta, **changes})


def truncated(folder, path):
    path.write_bytes(path.read_bytes()[:2000])


def another_net(folder, path):
    shutil.copy(folder / "plain14-seed0.npz", path)


def no_metadata(folder, path):
    io.save_arrays(path, io.load_arrays(path)[0])


def a_folder(folder, path):
    path.unlink()
    path.mkdir()


def weights_of_another_depth(folder, path):
    arrays, _ = io.load_arrays(folder / "resnet8-seed0.npz")
    io.save_arrays(path, arrays, io.load_arrays(path)[1])


FAULTS = {
    "truncated": (truncated, "truncated or corrupt"),
    "another net": (another_net, "net 'plain14'"),
    "no metadata": (no_metadata, "without the metadata"),
    "a folder": (a_folder, "not a file"),
    "depth": (lambda f, p: rewrite_meta(p, depth=8), "depth 8"),
    "kind": (lambda f, p: rewrite_meta(p, shortcut=None), "shortcut None"),
    "seed": (lambda f, p: rewrite_meta(p, seed=3), "seed 3"),
    "weights": (weights_of_another_depth, "weights are not those of a resnet14"),
}
COMMANDS = {"responses": ["responses", "--quick"], "lesion": ["lesion", "--quick"],
            "paths": ["paths", "--quick"], "landscape": ["landscape", "--quick", "--depths", "14"]}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_net_file_that_is_not_its_names_net_is_refused_in_one_line(good_nets, tmp_path,
                                                                     command, fault):
    folder = tmp_path / "from"
    shutil.copytree(good_nets, folder)
    damage, wanted = FAULTS[fault]
    path = folder / "resnet14-seed0.npz"
    damage(folder, path)
    with pytest.raises(SystemExit) as e:
        main(COMMANDS[command] + ["--from", str(folder), "--out", str(tmp_path / "out")])
    message = e.value.code
    assert isinstance(message, str) and "\n" not in message, message
    assert message.startswith(f"--from {folder}: ") and str(path) in message, message
    assert wanted in message, message
    assert not (tmp_path / "out").exists()


def test_checking_the_nets_leaves_minires_generator_where_it_was(good_nets):
    from minires.cli.lesion import check_nets
    backend.manual_seed(7)
    before = backend.default_rng().bit_generator.state
    check_nets(str(good_nets), NAMES, 0)
    assert backend.default_rng().bit_generator.state == before
    model = nets.load_trained(good_nets, "resnet14", 0)
    saved = io.load_arrays(good_nets / "resnet14-seed0.npz")[0]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, saved[name])
