"""``minires.io`` on damaged files: one ValueError that names the file and says what is wrong,
whatever the damage (empty, truncated, corrupt, the wrong format, bad metadata); swapped
arguments get a TypeError that shows the right call."""

import os
import zipfile

import numpy as np
import pytest

from minires import io, models, optim, train


@pytest.fixture
def good(tmp_path):
    """A valid .npz with metadata, and its bytes."""
    path = tmp_path / "good.npz"
    io.save_arrays(path, {"w": np.arange(1000, dtype=np.float32)}, meta={"epoch": 1})
    return path, path.read_bytes()


def damaged(tmp_path, content, name="bad.npz"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda raw: b"", "empty"),
        # cut mid-file: the zip directory is gone
        (lambda raw: raw[: len(raw) // 2], "truncated or corrupt"),
        (lambda raw: raw[:40], "truncated or corrupt"),
        (lambda raw: raw[:-30], "truncated or corrupt"),
        (lambda raw: b"garbage" * 100, "not a minires .npz file"),
        # flipped middle
        (lambda raw: raw[:200] + bytes(255 - b for b in raw[200:-200]) + raw[-200:], "corrupt"),
    ],
)
def test_a_damaged_npz_is_one_value_error_naming_the_file(tmp_path, good, make, what):
    path = damaged(tmp_path, make(good[1]))
    with pytest.raises(ValueError, match=what) as e:
        io.load_arrays(path)
    assert str(path) in str(e.value)


def test_a_npy_named_npz_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "weights.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(3))
    with pytest.raises(ValueError, match="single .npy array") as e:
        io.load_arrays(path)
    assert str(path) in str(e.value)


def test_metadata_that_is_not_json_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "meta.npz"
    np.savez(path, w=np.arange(3), __meta__=np.array("{not json"))
    with pytest.raises(ValueError, match="metadata is not JSON") as e:
        io.load_arrays(path)
    assert str(path) in str(e.value)


def test_a_member_with_a_corrupt_payload_is_refused(tmp_path, good):
    """A zip whose directory is intact but whose array bytes are damaged (CRC mismatch)."""
    path = tmp_path / "crc.npz"
    with zipfile.ZipFile(good[0]) as z:
        members = {name: z.read(name) for name in z.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"w.npy") + 40  # inside the compressed data of the first member
    raw[start : start + 50] = bytes(50)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        io.load_arrays(path)


def test_a_missing_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_arrays(tmp_path / "none.npz")


def checkpoint(tmp_path, **meta_changes):
    """A real training checkpoint of a tiny model, then with its metadata changed."""
    model = models.ResNet(
        models.BasicBlock, [1, 1, 1], num_classes=10, in_channels=1, widths=(4, 8, 8)
    )
    opt = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.npz"
    train.save_checkpoint(path, model, opt, None, [], None, [], config={"seed": 0})
    arrays, meta = io.load_arrays(path)
    for k, v in meta_changes.items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    io.save_arrays(path, arrays, meta)
    return path, model, opt


@pytest.mark.parametrize("key", ["history", "loaders", "global_rng", "epoch"])
def test_checkpoint_metadata_lacking_a_key_is_one_value_error(tmp_path, key):
    path, model, opt = checkpoint(tmp_path, **{key: None})
    with pytest.raises(ValueError, match=f"lacks {key}") as e:
        train.load_checkpoint(path, model, opt)
    assert str(path) in str(e.value)


def test_checkpoint_metadata_of_the_wrong_shape_is_one_value_error(tmp_path):
    path, model, opt = checkpoint(tmp_path, global_rng={"bit_generator": "PCG64"})  # no "state"
    with pytest.raises(ValueError, match="cannot restore") as e:
        train.load_checkpoint(path, model, opt)
    assert str(path) in str(e.value)


def test_a_checkpoint_of_another_model_is_one_value_error(tmp_path):
    path, _, _ = checkpoint(tmp_path)
    other = models.resnet20(in_channels=1)
    with pytest.raises(ValueError, match="missing keys") as e:
        train.load_checkpoint(path, other, optim.SGD(other.parameters(), lr=0.1))
    assert str(path) in str(e.value)


def test_a_file_without_checkpoint_metadata_is_not_a_checkpoint(tmp_path, good):
    model = models.ResNet(
        models.BasicBlock, [1, 1, 1], num_classes=10, in_channels=1, widths=(4, 8, 8)
    )
    with pytest.raises(ValueError, match="not a minires training checkpoint"):
        train.load_checkpoint(good[0], model, optim.SGD(model.parameters(), lr=0.1))


def test_swapped_save_and_load_arguments_show_the_right_call(tmp_path):
    model = models.resnet20()
    path = tmp_path / "w.npz"
    with pytest.raises(TypeError, match=r"io\.save\(model, path\)"):
        io.save(str(path), model)
    assert not path.exists()
    io.save(model, path)
    with pytest.raises(TypeError, match=r"io\.load\(path, model\)"):
        io.load(model, path)
    assert io.load(path, model) is model


def test_a_failed_write_names_the_target_file_not_the_temporary(tmp_path, monkeypatch):
    import errno

    def full(f, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full)
    path = tmp_path / "c.npz"
    with pytest.raises(OSError) as e:
        io.save_arrays(path, {"a": np.zeros(2)})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert os.listdir(tmp_path) == []


def test_remove_leftovers_deletes_only_the_files_a_killed_write_left(tmp_path):
    path = tmp_path / "checkpoint.npz"
    for name in (
        ".tmp-checkpoint.npz-abc123",
        ".tmp-checkpoint.npz-x",
        ".tmp-history.json-y",
        "checkpoint.npz",
    ):
        (tmp_path / name).write_bytes(b"x")
    removed = io.remove_leftovers(path)
    assert sorted(os.path.basename(p) for p in removed) == [
        ".tmp-checkpoint.npz-abc123",
        ".tmp-checkpoint.npz-x",
    ]
    assert sorted(os.listdir(tmp_path)) == [".tmp-history.json-y", "checkpoint.npz"]


def test_metadata_nested_too_deep_for_json_is_one_value_error(tmp_path):
    """200,000 nested lists make json's decoder overflow the stack (RecursionError)."""
    path = tmp_path / "deep.npz"
    np.savez(path, w=np.arange(3), __meta__=np.array('{"x": ' + "[" * 200_000 + "]" * 200_000
                                                     + "}"))
    with pytest.raises(ValueError, match="nested too deep") as e:
        io.load_arrays(path)
    assert str(path) in str(e.value)


# -- one run per folder: io.lock_folder ------------------------------------------------------------

HOLDER = """
import sys, time
from minires import io
lock = io.lock_folder(sys.argv[1]).__enter__()
print("held", flush=True)
time.sleep(120)
"""


def hold(folder):
    """A process that holds ``folder``'s lock until it is killed (it says "held" once it does)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_folder_held_by_a_live_process_is_refused_naming_its_process(tmp_path):
    proc = hold(tmp_path / "run")
    try:
        with pytest.raises(io.FolderInUse) as e:
            with io.lock_folder(tmp_path / "run"):
                pass
        assert e.value.pid == proc.pid and f"process {proc.pid}" in str(e.value)
        assert str(tmp_path / "run") in str(e.value)
    finally:
        proc.kill()
        proc.wait()
    # Its process is gone (killed, as kill -9 does: no clean-up ran), so the lock is taken over.
    assert (tmp_path / "run" / io.LOCK_NAME).exists()
    with io.lock_folder(tmp_path / "run"):
        assert (tmp_path / "run" / io.LOCK_NAME).read_text().strip() == str(os.getpid())
    assert os.listdir(tmp_path / "run") == []


def test_a_lock_makes_the_folder_and_leaves_it_as_it_found_it(tmp_path):
    with io.lock_folder(tmp_path / "new") as lock:
        assert os.listdir(tmp_path / "new") == [io.LOCK_NAME]
        with pytest.raises(io.FolderInUse):  # also within one process: one holder at a time
            io.lock_folder(tmp_path / "new").__enter__()
        lock.release()
        lock.release()  # twice is harmless
    assert not (tmp_path / "new").exists()  # made only for the lock, and left empty
    (tmp_path / "old").mkdir()
    with io.lock_folder(tmp_path / "old"):
        (tmp_path / "old" / "result.json").write_text("{}")
    assert os.listdir(tmp_path / "old") == ["result.json"]


def test_without_flock_a_live_holder_is_refused_and_a_dead_ones_lock_taken_over(tmp_path,
                                                                               monkeypatch):
    """Where flock is missing, the lock file alone: a process id that is alive refuses."""
    import subprocess
    import sys

    monkeypatch.setattr(io, "fcntl", None)
    folder = tmp_path / "run"
    folder.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (folder / io.LOCK_NAME).write_text(f"{alive.pid}\n")
        with pytest.raises(io.FolderInUse, match=f"process {alive.pid}"):
            io.lock_folder(folder).__enter__()
    finally:
        alive.kill()
        alive.wait()
    with io.lock_folder(folder):  # its process is gone: a stale lock
        assert (folder / io.LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(io.FolderInUse, match=f"process {os.getpid()}"):
            io.lock_folder(folder).__enter__()
    assert os.listdir(folder) == []
