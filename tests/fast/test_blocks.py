"""How the fast batch norm and ReLU are made fast (minires/fast/row_blocks.py, blocked_norm.py,
blocked_relu.py): blocks of rows, whose size must not change a single bit of the result."""
import numpy as np
import pytest

import minires as mr
from minires import functional as F
from minires import fast
from minires.fast import row_blocks


def bn_problem(seed=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 5, 4, 3)) * 2 + 0.5
    gamma, beta = rng.uniform(0.5, 2, 5), rng.standard_normal(5)
    return x, gamma, beta, rng.standard_normal(5), rng.uniform(0.5, 2, 5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_one_channel_per_block_gives_the_same_bits(training, dtype):
    x, gamma, beta, rm, rv = (a.astype(dtype) for a in bn_problem())
    gy = np.random.default_rng(8).standard_normal(x.shape).astype(dtype)

    def run():
        xt, gt, bt = (mr.Tensor(a, requires_grad=True) for a in (x, gamma, beta))
        mean, var = rm.copy(), rv.copy()
        F.batch_norm(xt, gt, bt, mean, var, training).backward(gy)
        return xt.grad, gt.grad, bt.grad, mean, var

    whole = run()
    with fast.using(block_bytes=1):
        one_channel_per_block = run()
    for a, b in zip(whole, one_channel_per_block):
        np.testing.assert_array_equal(a, b)


def test_relu_one_row_per_block_gives_the_same_bits():
    x = np.random.default_rng(9).standard_normal((4, 6, 5, 5)).astype(np.float32)

    def run():
        xt = mr.Tensor(x, requires_grad=True)
        y = F.relu(xt)
        y.backward(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
        return y.data, xt.grad

    whole = run()
    with fast.using(block_bytes=1):
        one_row_per_block = run()
    for a, b in zip(whole, one_row_per_block):
        np.testing.assert_array_equal(a, b)


def test_map_rows_cuts_both_layouts_into_blocks_of_whole_rows(using):
    using(block_bytes=2 * 30 * 8)  # two rows of 30 float64 per block
    seen = []
    nchw = np.zeros((5, 6, 5))
    row_blocks.map_rows(lambda a: seen.append(a.shape), nchw)
    assert seen == [(2, 30), (2, 30), (1, 30)]  # rows are images
    seen.clear()
    # NCHW shape (5, 6, 2, 3), memory (6, 5, 2, 3):
    channel_major = np.zeros((6, 5, 2, 3)).swapaxes(0, 1)
    row_blocks.map_rows(lambda a: seen.append(a.shape), channel_major)
    assert seen == [(2, 30)] * 3  # rows are the 6 channels, of 5*2*3 = 30 values each
