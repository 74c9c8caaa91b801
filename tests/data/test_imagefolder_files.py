"""Image files an ImageFolder must not take at their word: 16-bit PNGs (decoded to the right 8-bit
values), headers that claim more pixels than any photo (decompression bombs), strips so thin that
resizing them would fill memory, a training folder of one image. Each is decoded right or refused
in one line that names the file, before training starts. The images are written here with
Pillow."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from minires import data
from minires.cli import main
from minires.data import imagefolder


def png_claiming(path, width, height):
    """A PNG of a few bytes whose header claims ``width`` x ``height`` RGB pixels."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def jpeg_claiming(path, width, height):
    """A small JPEG whose frame header (SOF0) is rewritten to claim ``width`` x ``height``."""
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path, format="JPEG")
    raw = bytearray(path.read_bytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(raw))
    return path


def image_set(root, train, val=None):
    """root/train/<class>/... and root/val/<class>/...: {class: [array, ...]} each, saved as PNG."""
    val = val or {"a": [np.full((12, 12, 3), 50, np.uint8)], "b": [np.full((12, 12, 3), 200,
                                                                            np.uint8)]}
    for split, classes in (("train", train), ("val", val)):
        for cls, images in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i, pixels in enumerate(images):
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


def small_images(n, side=12, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8) for _ in range(n)]


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    ramp = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode.startswith("I")  # a 16-bit gray PNG
    rgb = imagefolder.read_image(tmp_path / "ramp.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 256, 256)
    # v * 255 / 65535 never falls on .5 exactly, so rounding needs no tie rule
    expected = np.rint(ramp.astype(np.int64) * 255 / 65535).astype(np.uint8)
    for channel in rgb:
        np.testing.assert_array_equal(channel, expected)
    assert rgb.mean() == pytest.approx(127.5, abs=0.01)


@pytest.mark.parametrize("make, name, size", [
    (png_claiming, "bomb.png", (100_000, 100_000)), (png_claiming, "big.png", (10_000, 9_000)),
    (jpeg_claiming, "bomb.jpg", (65_000, 65_000)), (jpeg_claiming, "big.jpg", (10_000, 9_000))])
def test_an_image_claiming_too_many_pixels_is_refused_naming_it(tmp_path, make, name, size):
    path = make(tmp_path / name, *size)
    for call in (lambda: imagefolder.check_header(path), lambda: imagefolder.read_image(path)):
        with pytest.raises(imagefolder.ImageReadError) as e:
            call()
        message = str(e.value)
        assert str(path) in message and "pixels" in message and "\n" not in message


def train_error(capsys, root, *argv):
    """The one line ``train --data imagefolder`` on ``root`` ends with (no training starts):
    a SystemExit's message, or argparse's error line (below its usage)."""
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "imagefolder", "--data-dir", str(root), "--epochs", "1",
              "--no-progress", "--out", str(root / "run"), *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (root / "run").exists()
    if e.value.code == 2:  # a usage error
        assert err.strip().splitlines()[-1].startswith("python -m minires train: error: "), err
        return err.strip().splitlines()[-1]
    assert isinstance(e.value.code, str) and "\n" not in e.value.code and not err, (e, err)
    return e.value.code


def test_a_bomb_in_a_training_folder_is_one_line_before_training(tmp_path, capsys):
    root = image_set(tmp_path / "set", {"a": small_images(3), "b": small_images(3, seed=1)})
    bomb = png_claiming(root / "train" / "a" / "bomb.png", 100_000, 100_000)
    message = train_error(capsys, root)
    assert message.startswith("--data imagefolder: ") and str(bomb) in message


def test_a_thin_strip_that_resizing_would_blow_up_is_refused_naming_it(tmp_path, capsys):
    """1 x 1,000,000 pixels is a valid PNG; with its shorter side resized to 37 (the test side of
    --image-size 32) it would be 37 x 37,000,000 pixels: 4 GB."""
    root = image_set(tmp_path / "set", {"a": small_images(3), "b": small_images(3, seed=1)})
    Image.fromarray(np.zeros((1, 1_000_000), np.uint8)).save(root / "train" / "b" / "strip.png")
    message = train_error(capsys, root, "--image-size", "32")
    assert message.startswith("--image-size 32: ") and "strip.png" in message
    assert "1000000 x 1 pixels" in message and "pixels, more than" in message


def test_image_size_has_a_clear_maximum(tmp_path, capsys):
    root = image_set(tmp_path / "set", {"a": small_images(3), "b": small_images(3, seed=1)})
    message = train_error(capsys, root, "--image-size", "100000")
    assert message.endswith("argument --image-size: must be at most 1,024, got 100000")


def test_a_training_folder_of_one_image_is_one_clear_line(tmp_path, capsys):
    root = image_set(tmp_path / "set", {"a": small_images(1)}, {"a": small_images(2)})
    message = train_error(capsys, root, "--image-size", "8")
    assert "1 training image" in message and "at least 2" in message


def test_image_folder_records_each_images_size_from_its_header(tmp_path):
    root = image_set(tmp_path / "set", {"a": small_images(2), "b": small_images(1, side=5)})
    folder = data.ImageFolder(root / "train")
    assert folder.sizes.tolist() == [[12, 15], [12, 15], [5, 8]]
    path, shape, pixels = imagefolder.largest_resized(folder, 10)
    assert path.endswith("0.png") and shape == (5, 8) and pixels == 10 * 16
