"""Testing (sec. 3.4 and 4.2): the loss and the top-1 and top-5 errors, with 10-crop and
multi-scale testing.

``evaluate`` is the one test of a net, over any loader; it returns an ``Evaluation``:

    loss        mean over images of -log p[label], p the softmax of the net's scores
    error       top-1: the share of images with argmax p != label (NumPy's argmax: the first of
                tied maxima)
    top5_error  the share whose label is not among the 5 highest scores; a class is among the top
                k when fewer than k classes score strictly higher (a tie is in its favour)
    images      how many images were tested

Several views of one image (the 10 crops of ``transforms.TenCrop``, or the scales of multi-scale
testing) are combined by averaging the network's softmax outputs, p = mean_v softmax(z_v).

Multi-scale, fully-convolutional testing ("we adopt the fully-convolutional form as in [41, 13],
and average the scores at multiple scales (images are resized such that the shorter side is in
{224, 256, 384, 480, 640})"): the whole image goes through the net. A ResNet ends with a global
average pool and one fc layer, both linear, so its scores on a large image are exactly the mean,
over the positions of the last feature map, of the fc applied at each position: the "fully-
convolutional form", with no change to the net.
"""
from typing import NamedTuple

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad


class Evaluation(NamedTuple):
    """What :func:`evaluate` measures: mean cross-entropy, top-1 and top-5 error fractions, and
    the number of images."""
    loss: float
    error: float
    top5_error: float
    images: int


def softmax(logits, axis=-1):
    """exp(z - max z) / sum exp(z - max z), on NumPy or CuPy arrays."""
    xp = backend.get_array_module(logits)
    z = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def topk_correct(scores, labels, k):
    """(N,) bool: is labels[n] among the k highest of scores[n]; scores (N, K), logits or any
    monotone function of them."""
    xp = backend.get_array_module(scores)
    labels = xp.asarray(labels)
    own = scores[xp.arange(len(labels)), labels]
    return (scores > own[:, None]).sum(axis=1) < k


def topk_errors(scores, labels, ks=(1, 5)):
    """{k: error fraction} for each k in ``ks`` (by ``topk_correct``, so a tie counts as correct);
    scores (N, K) logits or probabilities, labels (N,) ints."""
    scores, labels = np.asarray(backend.as_numpy(scores)), np.asarray(backend.as_numpy(labels))
    if scores.ndim != 2 or labels.shape != (len(scores),):
        raise ValueError(f"topk_errors: need scores (N, K) and labels (N,), got {scores.shape} "
                         f"and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"topk_errors: labels must be in [0, {scores.shape[1]})")
    return {k: 1.0 - float(topk_correct(scores, labels, k).mean()) for k in ks}


def predict(model, x, device="cpu"):
    """Softmax probabilities (B, K) on the device: x (B, C, H, W), or (B, V, C, H, W) for V views
    of each image (crops), whose probabilities are averaged."""
    views = x.shape[1] if x.ndim == 5 else 1
    flat = x.reshape((-1,) + x.shape[-3:])
    p = softmax(model(Tensor(backend.to_device(flat, device))).data)
    return p.reshape(len(x), views, -1).mean(axis=1)


def evaluate(model, loader, device="cpu"):
    """``Evaluation(loss, error, top5_error, images)`` of ``model`` in eval mode over ``loader``.

    A batch x of (B, C, H, W) is one view per image: the scores are the logits z, the loss is
    ``F.softmax_cross_entropy``. A batch of (B, V, C, H, W), as a loader with
    ``transforms.TenCrop`` in its transform yields, is V views of each image: the scores are
    p = mean_v softmax(z_v), the loss -log p[label].
    """
    device = backend.check_device(device)
    was_training = model.training
    model.eval()
    loss_sum, correct, correct5, seen = 0.0, 0, 0, 0
    try:
        with no_grad():
            for x, y in loader:
                y_dev = backend.to_device(np.asarray(y), device)
                if x.ndim == 5:  # views averaged in softmax
                    scores = predict(model, x, device)
                    xp = backend.get_array_module(scores)
                    p_label = xp.maximum(scores[xp.arange(len(y)), y_dev], 1e-30)
                    loss_sum = loss_sum - xp.log(p_label).sum()
                else:
                    logits = model(Tensor(backend.to_device(x, device)))
                    scores = logits.data
                    # y stays on the host: the loss's range check needs no GPU read
                    loss_sum = loss_sum + F.softmax_cross_entropy(logits, y).data * len(y)
                # The sums stay on the device; one read-back at the end.
                correct = correct + (scores.argmax(axis=1) == y_dev).sum()
                correct5 = correct5 + topk_correct(scores, y_dev, 5).sum()
                seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return Evaluation(float(loss_sum) / seen, 1.0 - int(correct) / seen,
                      1.0 - int(correct5) / seen, seen)


def evaluate_multiscale(model, dataset, sides, subtract_mean, device="cpu", flip=True, limit=None):
    """Multi-scale fully-convolutional testing: an ``Evaluation`` as :func:`evaluate` gives.

    Each image of ``dataset`` (uint8 (C, H, W), any size) is resized to each shorter side in
    ``sides`` (``transforms.ResizeShorter``), the whole image (and, with ``flip``, its mirror) goes
    through the net one at a time, and the softmax outputs of all views are averaged.
    ``subtract_mean``: the training mean (a ``transforms.SubtractMean``; a per-pixel mean is
    averaged to per channel, since the views have other sizes). limit: only the first images.
    """
    from ..data.transforms import ResizeShorter

    device = backend.check_device(device)
    if subtract_mean.mean.shape[1:] != (1, 1):
        subtract_mean = subtract_mean.per_channel()
    resizers = [ResizeShorter(s) for s in sides]
    scale = 1.0 / dataset.max_value
    was_training = model.training
    model.eval()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    probs, labels = [], []
    try:
        with no_grad():
            for i in range(n):
                image, label = dataset[i]
                views = []
                for resize in resizers:
                    # (1, C, h, w) float32, in [0, 1] units
                    x = subtract_mean(resize(image[None])) * scale
                    views.append(backend.as_numpy(predict(model, x, device)))
                    if flip:
                        mirror = np.ascontiguousarray(x[..., ::-1])
                        views.append(backend.as_numpy(predict(model, mirror, device)))
                probs.append(np.mean(views, axis=0)[0])
                labels.append(label)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate_multiscale: no images")
    probs, labels = np.array(probs), np.array(labels)
    loss = float(-np.log(np.maximum(probs[np.arange(n), labels], 1e-30)).mean())
    error = 1.0 - float((probs.argmax(axis=1) == labels).mean())
    return Evaluation(loss, error, topk_errors(probs, labels, (5,))[5], n)
