"""evaluate: the mean cross-entropy, the top-1 and top-5 errors and the image count, against
hand-worked values and NumPy oracles; the model's mode is restored."""
import math

import numpy as np
import pytest

import minires as mr
from minires import data, train
from digits_runs import subsets


class Constant(mr.nn.Module):
    """Always answers class 3 (logit 2, the other nine 0)."""

    def forward(self, x):
        logits = np.zeros((x.shape[0], 10), dtype=np.float32)
        logits[:, 3] = 2.0
        return mr.Tensor(logits)


class Linear(mr.nn.Module):
    """Logits = flattened pixels @ W: a fixed, untied score for every image and class."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        return mr.Tensor(x.data.reshape(len(x.data), -1) @ self.w)


def test_evaluate_counts_errors_and_averages_the_loss():
    """Error = share of labels other than 3; loss = mean CE of the constant logits; top-5: class 3
    scores highest and the label ties the other eight, so every label is in the top 5."""
    _, test_set = subsets(1, 100)
    result = train.evaluate(Constant(), data.DataLoader(test_set, 30))
    assert isinstance(result, train.Evaluation) and result.images == 100
    assert result.error == pytest.approx(np.mean(test_set.labels != 3))
    p3 = math.exp(2) / (math.exp(2) + 9)
    want = np.mean(np.where(test_set.labels == 3, -math.log(p3), -math.log((1 - p3) / 9)))
    assert result.loss == pytest.approx(want, rel=1e-5)
    assert result.top5_error == 0.0


def test_evaluate_matches_numpy_on_an_ordinary_loader():
    _, test_set = subsets(1, 200)
    # the loader's inputs, u / max_value in float32
    x = test_set.images.reshape(len(test_set), -1).astype(np.float32)
    x = (x * np.float32(1 / test_set.max_value)).astype(np.float64)
    w = np.random.default_rng(0).standard_normal((x.shape[1], 10))
    model = Linear(w.astype(np.float32))
    result = train.evaluate(model, data.DataLoader(test_set, 64, normalize=None))
    z = x @ w.astype(np.float32).astype(np.float64)
    labels = test_set.labels
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    top5 = np.argsort(-z, axis=1)[:, :5]
    assert result.loss == pytest.approx(-log_p[np.arange(len(z)), labels].mean(), rel=1e-4)
    assert result.error == np.mean(z.argmax(axis=1) != labels)
    assert result.top5_error == np.mean([labels[n] not in top5[n] for n in range(len(z))])
    assert result.images == 200


def test_evaluate_tests_in_eval_mode_and_restores_the_mode():
    modes = []

    class Recording(Constant):
        def forward(self, x):
            modes.append(self.training)
            return super().forward(x)

    _, test_set = subsets(1, 10)
    model = Recording()
    model.train()
    train.evaluate(model, data.DataLoader(test_set, 5))
    assert modes == [False, False] and model.training


def test_evaluate_refuses_an_empty_loader():
    with pytest.raises(ValueError, match="no batches"):
        train.evaluate(Constant(), [])
