"""Data: the bundled digits, CIFAR-10 from a tiny archive served on 127.0.0.1, the DataLoader and
the paper's augmentation. Every expected value is computed here, from the arrays the test wrote or
from the formula, never read back from the code under test."""

import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import socket
import struct
import tarfile
import threading

import numpy as np
import pytest

from minires import data
from minires.data import cifar10, digits, transforms
from minires.data.dataset import ImageDataset


# -- digits --------------------------------------------------------------------------------------


def raw_digits():
    """images and labels straight from the bundled file, without minires's reader."""
    with np.load(digits.PATH, allow_pickle=False) as z:
        return z["images"], z["labels"], str(z["sha256"])


def rows(images, labels):
    """Each (image, label) as one row of bytes, sorted: a multiset that can be compared."""
    table = np.concatenate(
        [images.reshape(len(images), -1), labels.reshape(-1, 1).astype(np.uint8)], axis=1
    )
    return table[np.lexsort(table.T[::-1])]


def test_digits_shapes_dtypes_and_value_ranges():
    train, test = data.load_digits()
    for split in (train, test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (1, 8, 8)
        assert split.images.max() <= 16 and split.max_value == 16
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split),)
        assert set(np.unique(split.labels)) == set(range(10)) and split.num_classes == 10
    assert (len(train), len(test)) == (1438, 359)


def test_digits_split_is_fixed_disjoint_and_covers_all_1797_images():
    first, second = data.load_digits(), data.load_digits()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    train, test = first
    images, labels, _ = raw_digits()
    # As multisets of (image, label): train + test is the whole file, each image exactly once.
    union = rows(
        np.concatenate([train.images, test.images]), np.concatenate([train.labels, test.labels])
    )
    np.testing.assert_array_equal(union, rows(images, labels))
    # Stratified: a fifth of every class is held out.
    for k in range(10):
        assert (test.labels == k).sum() == round(0.2 * (labels == k).sum())


def test_digits_split_depends_on_the_seed():
    _, a = data.load_digits(seed=0)
    _, b = data.load_digits(seed=1)
    assert len(a) == len(b) and not np.array_equal(
        rows(a.images, a.labels), rows(b.images, b.labels)
    )


def test_digits_statistics_come_from_the_training_split():
    train, test = data.load_digits()
    u = train.images / 16.0
    np.testing.assert_allclose(train.mean, u.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(train.std, u.std(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(train.pixel_mean, u.mean(axis=0), rtol=1e-6)
    # The test split borrows them: nothing about the test images leaks into normalisation.
    np.testing.assert_array_equal(test.mean, train.mean)
    np.testing.assert_array_equal(test.pixel_mean, train.pixel_mean)


def test_bundled_digits_match_their_sha256():
    images, labels, stored = raw_digits()
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == stored


def test_tampered_digits_file_is_refused(tmp_path):
    images, labels, stored = raw_digits()
    images = images.copy()
    images[0, 0, 4, 4] = (images[0, 0, 4, 4] + 1) % 17
    path = tmp_path / "digits.npz"
    np.savez_compressed(path, images=images, labels=labels, sha256=np.array(stored))
    with pytest.raises(ValueError, match=r"corrupt.*SHA-256"):
        digits.read_digits(path)


def test_digits_file_without_an_array_is_refused(tmp_path):
    images, _, stored = raw_digits()
    path = tmp_path / "digits.npz"
    np.savez_compressed(path, images=images, sha256=np.array(stored))
    with pytest.raises(ValueError, match="labels"):
        digits.read_digits(path)


# -- CIFAR-10 ------------------------------------------------------------------------------------

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def tiny_batches(seed=0, per_batch=3):
    """{member name: dict} in CIFAR-10's layout, with a few random images per batch."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in cifar10.TRAIN_BATCHES + [cifar10.TEST_BATCH]:
        batches[name] = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(k) for k in rng.integers(0, 10, per_batch)],
        }
    batches[cifar10.META] = {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    return batches


def py2_pickle(batch):
    """A batch pickled as Python 2 wrote the real files (protocol 2, strings as BINSTRING, NumPy 1
    names).

    Python 3 cannot write this itself: at protocol 2 it stores bytes through ``_codecs.encode``.
    """

    def string(b):
        return b"T" + struct.pack("<i", len(b)) + b

    def integer(n):
        return b"J" + struct.pack("<i", n)

    images = batch[b"data"]
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + integer(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R"
        + b"("
        + integer(1)
        + integer(images.shape[0])
        + integer(images.shape[1])
        + b"\x86"
        + b"cnumpy\ndtype\n"
        + string(b"u1")
        + integer(0)
        + integer(1)
        + b"\x87R"
        + b"("
        + integer(3)
        + string(b"|")
        + b"NNN"
        + integer(-1)
        + integer(-1)
        + integer(0)
        + b"tb"
        + b"\x89"
        + string(images.tobytes())
        + b"tb"
    )
    labels = b"](" + b"".join(integer(k) for k in batch[b"labels"]) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + labels + b"u."


def write_archive(path, batches, dumps=functools.partial(pickle.dumps, protocol=4)):
    """The official ``cifar-10-python.tar.gz`` layout; returns the archive's MD5."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in batches.items():
            payload = content if isinstance(content, bytes) else dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(open(path, "rb").read()).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served over HTTP, base URL): a local stand-in for the CIFAR-10 site."""
    folder = tmp_path / "site"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def expected_images(rows_3072):
    """(N, 3, 32, 32) by the documented layout: 1024 red, then green, then blue values, each
    row-major."""
    out = np.empty((len(rows_3072), 3, 32, 32), dtype=np.uint8)
    for n, row in enumerate(rows_3072):
        for c in range(3):
            for i in range(32):
                out[n, c, i, :] = row[c * 1024 + i * 32 : c * 1024 + i * 32 + 32]
    return out


def check_matches(train, test, batches):
    want_train = np.concatenate([batches[name][b"data"] for name in cifar10.TRAIN_BATCHES])
    want_labels = sum((batches[name][b"labels"] for name in cifar10.TRAIN_BATCHES), [])
    np.testing.assert_array_equal(train.images, expected_images(want_train))
    np.testing.assert_array_equal(train.labels, want_labels)
    np.testing.assert_array_equal(
        test.images, expected_images(batches[cifar10.TEST_BATCH][b"data"])
    )
    np.testing.assert_array_equal(test.labels, batches[cifar10.TEST_BATCH][b"labels"])
    assert train.labels.dtype == np.int64 and train.images.dtype == np.uint8
    assert train.classes == CLASSES and test.classes == CLASSES


def test_cifar10_download_fetches_checks_and_loads(server, tmp_path):
    site, url = server
    batches = tiny_batches()
    md5 = write_archive(site / cifar10.ARCHIVE, batches)
    root = tmp_path / "data"
    train, test = data.load_cifar10(
        root, download=True, url=f"{url}/{cifar10.ARCHIVE}", md5=md5, progress=False
    )
    check_matches(train, test, batches)
    assert sorted(os.listdir(root)) == [cifar10.ARCHIVE]
    assert (root / cifar10.ARCHIVE).read_bytes() == (site / cifar10.ARCHIVE).read_bytes()
    # A second call reads the kept archive and needs no server.
    train2, _ = data.load_cifar10(root, md5=md5, url="http://127.0.0.1:9/nothing-here")
    np.testing.assert_array_equal(train2.images, train.images)


def test_cifar10_reads_python2_pickles_as_the_real_files_are(tmp_path):
    batches = tiny_batches(seed=1)
    dumps = {
        name: (py2_pickle(b) if name != cifar10.META else pickle.dumps(b, protocol=4))
        for name, b in batches.items()
    }
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, dumps)
    train, test = data.load_cifar10(tmp_path, md5=md5)
    check_matches(train, test, batches)


def test_cifar10_reads_an_extracted_folder(tmp_path):
    batches = tiny_batches(seed=2)
    write_archive(tmp_path / "a.tar.gz", batches)
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        tar.extractall(tmp_path / "root", filter="data")
    train, test = data.load_cifar10(tmp_path / "root")
    check_matches(train, test, batches)


def test_cifar10_corrupt_download_names_both_md5s_and_leaves_nothing(server, tmp_path):
    site, url = server
    md5 = write_archive(site / cifar10.ARCHIVE, tiny_batches())
    wrong = hashlib.md5(b"the real archive").hexdigest()
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=rf"MD5 {md5}, expected {wrong}"):
        data.load_cifar10(
            root, download=True, url=f"{url}/{cifar10.ARCHIVE}", md5=wrong, progress=False
        )
    assert not root.exists() or os.listdir(root) == []


def test_cifar10_corrupt_archive_on_disk_is_refused(tmp_path):
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, tiny_batches())
    with open(tmp_path / cifar10.ARCHIVE, "ab") as f:
        f.write(b"junk")
    with pytest.raises(ValueError, match=rf"corrupt.*expected {md5}"):
        data.load_cifar10(tmp_path, md5=md5)


def test_cifar10_unreachable_server_is_a_connection_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        data.load_cifar10(
            tmp_path, download=True, url=f"http://127.0.0.1:{port}/x.tar.gz", progress=False
        )
    assert os.listdir(tmp_path) == []


def test_cifar10_missing_archive_says_where_it_looked_and_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        data.load_cifar10(tmp_path / "nowhere")
    message = str(e.value)
    assert (
        str(tmp_path / "nowhere") in message
        and cifar10.ARCHIVE in message
        and "--download" in message
    )


class Exploit:
    """Unpickling this runs a shell command: what a tampered batch could do with plain pickle."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar10_tampered_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    batches = tiny_batches()
    batches["data_batch_3"] = {b"data": Exploit(f"touch {marker}"), b"labels": [0]}
    payload = pickle.dumps(batches["data_batch_3"], protocol=4)
    assert b"system" in payload  # the payload really names os.system
    batches["data_batch_3"] = payload
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, batches)
    with pytest.raises(
        pickle.UnpicklingError, match=r"data_batch_3.*refusing to load global .*system"
    ):
        data.load_cifar10(tmp_path, md5=md5)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels in 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels'"),
        (b"\x80\x04garbage", "not a readable pickle"),
    ],
)
def test_cifar10_malformed_batch_is_refused_naming_it(tmp_path, content, match):
    batches = tiny_batches()
    batches["data_batch_2"] = content
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, batches)
    with pytest.raises(ValueError, match=match) as e:
        data.load_cifar10(tmp_path, md5=md5)
    assert "data_batch_2" in str(e.value)


def test_cifar10_archive_missing_a_batch_is_refused(tmp_path):
    batches = tiny_batches()
    del batches[cifar10.TEST_BATCH]
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, batches)
    with pytest.raises(ValueError, match="test_batch"):
        data.load_cifar10(tmp_path, md5=md5)


# -- DataLoader ----------------------------------------------------------------------------------


def numbered(n=10, channels=3, size=4, seed=0):
    """n random images whose label is their index, so a batch says which images it holds."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    return ImageDataset(images, np.arange(n), num_classes=n)


def epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


@pytest.mark.parametrize(
    "n, batch_size, drop_last, sizes",
    [
        (10, 4, False, [4, 4, 2]),
        (10, 4, True, [4, 4]),
        (8, 4, False, [4, 4]),
        (8, 4, True, [4, 4]),
        (3, 5, False, [3]),
        (10, 1, False, [1] * 10),
    ],
)
def test_loader_batch_sizes(n, batch_size, drop_last, sizes):
    loader = data.DataLoader(numbered(n), batch_size, shuffle=True, seed=0, drop_last=drop_last)
    assert [len(y) for _, y in loader] == sizes and len(loader) == len(sizes)
    assert all(len(x) == len(y) for x, y in loader)


def test_loader_yields_float32_images_and_int64_labels():
    ds = numbered()
    x, y = next(iter(data.DataLoader(ds, 4)))
    assert x.dtype == np.float32 and x.shape == (4, 3, 4, 4)
    assert y.dtype == np.int64 and y.shape == (4,)
    np.testing.assert_array_equal(y, [0, 1, 2, 3])  # no shuffle: in order


def test_loader_shows_every_image_once_per_epoch():
    ds = numbered(11)
    loader = data.DataLoader(ds, 3, shuffle=True, seed=0, normalize=None)
    orders = []
    for _ in range(3):
        batches = epoch(loader)
        ys = np.concatenate([y for _, y in batches])
        assert sorted(ys) == list(range(11))
        # Each image travels with its own label.
        np.testing.assert_allclose(
            np.concatenate([x for x, _ in batches]), ds.images[ys] / 255, rtol=1e-6
        )
        orders.append(ys)
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch


def test_loader_shuffle_is_reproducible_from_the_seed():
    ds = numbered(20)
    runs = [
        [y for _ in range(2) for _, y in data.DataLoader(ds, 6, shuffle=True, seed=seed)]
        for seed in (7, 7, 8)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_loader_channel_normalisation_matches_the_formula():
    ds = numbered(12, channels=3, size=5)
    u = ds.images.astype(np.float64) / 255
    mean, std = u.mean(axis=(0, 2, 3)), u.std(axis=(0, 2, 3))
    x = np.concatenate([x for x, _ in data.DataLoader(ds, 5)])
    np.testing.assert_allclose(
        x, (u - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5
    )
    # Over the whole set that gives zero mean and unit variance per channel.
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, rtol=1e-5)


def test_loader_pixel_and_no_normalisation():
    ds = numbered(12)
    u = ds.images.astype(np.float64) / 255
    x = np.concatenate([x for x, _ in data.DataLoader(ds, 5, normalize="pixel")])
    np.testing.assert_allclose(x, u - u.mean(axis=0), atol=1e-6)
    x = np.concatenate([x for x, _ in data.DataLoader(ds, 5, normalize=None)])
    np.testing.assert_allclose(x, u, atol=1e-7)


def test_test_split_is_normalised_with_training_statistics():
    train, test = data.load_digits()
    u_train, u_test = train.images / 16.0, test.images / 16.0
    mean, std = u_train.mean(axis=(0, 2, 3)), u_train.std(axis=(0, 2, 3))
    x = np.concatenate([x for x, _ in data.DataLoader(test, 128)])
    np.testing.assert_allclose(
        x, (u_test - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5
    )


def test_loader_state_dict_resumes_the_same_batches():
    ds = numbered(13)
    augment = transforms.Compose([transforms.RandomCrop(1), transforms.RandomHorizontalFlip()])
    a = data.DataLoader(ds, 4, shuffle=True, seed=0, augment=augment)
    epoch(a)
    state = json.loads(json.dumps(a.state_dict()))  # a checkpoint stores it as JSON
    want = epoch(a) + epoch(a)
    b = data.DataLoader(ds, 4, shuffle=True, seed=123, augment=augment)
    b.load_state_dict(state)
    got = epoch(b) + epoch(b)
    for (xa, ya), (xb, yb) in zip(want, got):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -2}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": "4"}, "batch_size"),
        ({"batch_size": 4, "normalize": "bogus"}, "normalize"),
        ({"batch_size": 4, "augment": 3}, "augment"),
        ({"batch_size": 20, "drop_last": True}, "drop_last"),
    ],
)
def test_loader_rejects_bad_arguments_by_name(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        data.DataLoader(numbered(10), **kwargs)


def test_loader_needs_an_image_dataset():
    with pytest.raises(TypeError, match="ImageDataset"):
        data.DataLoader([(np.zeros((1, 2, 2)), 0)], 1)


@pytest.mark.parametrize(
    "images, labels, kwargs, match",
    [
        (np.zeros((2, 1, 2, 2), np.float32), [0, 1], {}, "uint8"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0], {}, "labels"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0, 3], {}, r"\[0, 3\)"),
        (np.full((2, 1, 2, 2), 17, np.uint8), [0, 1], {"max_value": 16}, "max_value"),
    ],
)
def test_image_dataset_rejects_bad_input(images, labels, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ImageDataset(images, labels, 3, **kwargs)


# -- augmentation --------------------------------------------------------------------------------


def shift(image, dy, dx):
    """``image`` (C, H, W) moved down by dy and right by dx pixels, zeros where it left."""
    C, H, W = image.shape
    out = np.zeros_like(image)
    out[:, max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = image[
        :, max(-dy, 0) : H - max(dy, 0), max(-dx, 0) : W - max(dx, 0)
    ]
    return out


def shifts_of(out, image, reach):
    """Every (dy, dx) within ``reach`` for which ``out`` is ``image`` shifted by it."""
    return [
        (dy, dx)
        for dy in range(-reach, reach + 1)
        for dx in range(-reach, reach + 1)
        if np.array_equal(out, shift(image, dy, dx))
    ]


def random_images(n, channels, size, seed=0, low=1):
    # No zero pixels, so the zero fill of a shift shows and each shift is told apart.
    return np.random.default_rng(seed).integers(low, 256, (n, channels, size, size), dtype=np.uint8)


def test_shift_oracle():
    image = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3)
    np.testing.assert_array_equal(shift(image, 1, -1)[0], [[0, 0, 0], [2, 3, 0], [5, 6, 0]])


def test_random_crop_is_a_zero_filled_shift_of_up_to_padding_pixels():
    images = random_images(300, 3, 32)
    before = images.copy()
    out = transforms.RandomCrop(4)(images, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(images, before)  # the input is left alone
    found = [shifts_of(o, i, 4) for o, i in zip(out, images)]
    assert all(len(f) == 1 for f in found)
    dy, dx = np.array([f[0] for f in found]).T
    # Offsets are uniform over -4..4: with 300 draws every one of the 9 shows up on both axes.
    assert set(dy) == set(dx) == set(range(-4, 5))


def test_random_crop_draws_the_same_shifts_for_every_channel():
    images = random_images(50, 3, 8)
    out = transforms.RandomCrop(2)(images, np.random.default_rng(1))
    for o, i in zip(out, images):
        (s,) = shifts_of(o, i, 2)
        for c in range(3):
            np.testing.assert_array_equal(o[c], shift(i[c : c + 1], *s)[0])


def test_horizontal_flip_mirrors_some_images_and_keeps_the_rest():
    images = random_images(200, 3, 6)
    out = transforms.RandomHorizontalFlip()(images, np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, images)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped ^ kept)
    assert 60 < flipped.sum() < 140  # p = 0.5
    always = transforms.RandomHorizontalFlip(p=1)(images, np.random.default_rng(0))
    np.testing.assert_array_equal(always, images[..., ::-1])
    np.testing.assert_array_equal(
        transforms.RandomHorizontalFlip(p=0)(images, np.random.default_rng(0)), images
    )


def test_paper_augment_for_32x32_is_a_shift_of_the_image_or_its_mirror():
    ds = ImageDataset(random_images(200, 3, 32), np.zeros(200, dtype=np.int64), 10)
    out = data.paper_augment(ds)(ds.images, np.random.default_rng(0))
    mirrored = 0
    for o, i in zip(out, ds.images):
        plain, mirror = shifts_of(o, i, 4), shifts_of(o, i[..., ::-1], 4)
        assert len(plain) + len(mirror) == 1
        mirrored += bool(mirror)
    assert 60 < mirrored < 140


def test_paper_augment_for_digits_shifts_by_one_pixel_and_never_mirrors():
    train, _ = data.load_digits()
    augment = data.paper_augment(train)
    # Random 8x8 images in 1..16 tell every shift and a mirror apart; the digits' blank borders
    # would not.
    ds = ImageDataset(
        random_images(200, 1, 8, low=1) % 16 + 1, np.zeros(200, dtype=np.int64), 10, max_value=16
    )
    out = augment(ds.images, np.random.default_rng(0))
    found = [shifts_of(o, i, 1) for o, i in zip(out, ds.images)]
    assert all(len(f) == 1 for f in found)
    assert {s for f in found for s in f} == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    # On the real digits too, every output is one of those nine shifts.
    out = augment(train.images[:100], np.random.default_rng(0))
    assert all(shifts_of(o, i, 1) for o, i in zip(out, train.images[:100]))


def test_loader_applies_augmentation_before_normalising():
    ds = numbered(16, size=6)
    loader = data.DataLoader(ds, 16, seed=0, augment=transforms.RandomCrop(1), normalize=None)
    x, y = next(iter(loader))
    for xi, i in zip(x, ds.images[y]):
        assert shifts_of((xi * 255).round().astype(np.uint8), i, 1)
    assert any(not np.array_equal(xi, i / np.float32(255)) for xi, i in zip(x, ds.images[y]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: transforms.RandomCrop(-1), "padding"),
        (lambda: transforms.RandomCrop(1.5), "padding"),
        (lambda: transforms.RandomHorizontalFlip(2), "p must"),
    ],
)
def test_transforms_reject_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


class CutShortHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, sends 100 and closes the connection: a download cut short."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_download_cut_short_is_not_kept_even_without_an_md5(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutShortHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "file.tar.gz"
        with pytest.raises(ConnectionError, match="cut short") as e:
            cifar10.download_file(
                f"http://127.0.0.1:{httpd.server_address[1]}/x", path, md5=None, progress=False
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "100" in str(e.value) and str(path) in str(e.value)
    assert os.listdir(tmp_path) == []


def test_a_whole_download_without_an_md5_is_kept(server, tmp_path):
    site, url = server
    (site / "f.bin").write_bytes(b"y" * 3000)
    path = cifar10.download_file(
        f"{url}/f.bin", tmp_path / "f.bin", md5=None, progress=False, chunk_size=1000
    )
    assert open(path, "rb").read() == b"y" * 3000


def test_a_label_too_large_for_int64_is_a_clear_error(tmp_path):
    batches = tiny_batches()
    labels = batches["data_batch_3"][b"labels"]
    batches["data_batch_3"][b"labels"] = [2**70] + labels[1:]
    md5 = write_archive(tmp_path / cifar10.ARCHIVE, batches)
    with pytest.raises(
        ValueError,
        match=(
            r"data_batch_3: expected \d+ labels in 0..9, got \d+, "
            r"among them 1180591620717411303424"
        ),
    ):
        data.load_cifar10(tmp_path, md5=md5)
