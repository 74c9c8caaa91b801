"""Sizes whose arrays cannot fit in memory are refused before any work: one line that names the
option, what the command would need and what this machine has (``options.check_memory``)."""
import pytest

from minires.cli import main, options


@pytest.mark.parametrize("argv, option", [
    (["flow", "--batch-size", "100000000"], "--batch-size"),
    (["identity", "--widths", "100000", "100000", "100000"], "--depth/--widths"),
    (["identity", "--quick", "--depth", "1202", "--widths", "4096", "4096", "4096"],
     "--depth/--widths"),
    (["shatter", "--width", "1000000"], "--width"),
    (["shatter", "--points", "100000000"], "--points"),
    (["shatter", "--max-depth", "100000000"], "--max-depth"),
    (["landscape", "--points", "100001"], "--points"),
    (["landscape", "--quick", "--slices", "1000000000"], "--slices"),
    (["lesion", "--draws", "1000000000"], "--draws"),
    (["paths", "--draws", "1000000000"], "--draws"),
])
def test_a_size_that_cannot_fit_in_memory_is_refused_in_one_line(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(tmp_path / "out")])
    message = e.value.code
    assert isinstance(message, str) and "\n" not in message, message
    have = options.size_text(options.machine_memory())
    assert message.startswith(f"{option}: needs about ") and message.endswith(
        f"; this machine has {have}"), message
    assert capsys.readouterr().out == ""  # refused before the command's first line
    assert not (tmp_path / "out").exists()


def test_the_estimates_grow_with_what_they_estimate():
    small = options.conv_net_bytes(20, (16, 32, 64), 32, 16)
    assert options.conv_net_bytes(20, (16, 32, 64), 32, 32) > small
    assert options.conv_net_bytes(56, (16, 32, 64), 32, 16) > small
    assert options.conv_net_bytes(20, (32, 64, 128), 32, 16) > small
    assert 1e6 < small < 1e9  # ResNet-20 on a batch of 16 CIFAR images: tens of MB
    assert options.size_text(12_345_678_901) == "12.3 GB"
    assert options.size_text(999) == "0.999 kB"
