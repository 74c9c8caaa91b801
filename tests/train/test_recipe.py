"""The recipe's defaults: the paper's lr schedule scaled to any number of epochs."""
import pytest

from minires import train


@pytest.mark.parametrize("epochs, expected", [
    (164, [82, 123]),  # the paper's CIFAR-10 schedule: 32k and 48k of 64k iterations at batch 128
    (15, [8, 11]), (3, [2]), (1, [])])
def test_default_milestones_are_half_and_three_quarters_of_the_run(epochs, expected):
    assert train.default_milestones(epochs) == expected
