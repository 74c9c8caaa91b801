"""Testing as in the paper (sec. 3.4): top-1 and top-5 error, 10-crop and multi-scale testing.

top-k error: the fraction of images whose true class is not among the k highest scores. A class
counts as among the top k when fewer than k classes score strictly higher (a tie is in its favour).

Several views of one image (the 10 crops of ``transforms.TenCrop``, or the scales of multi-scale
testing) are combined by averaging the network's softmax outputs, p = mean_v softmax(z_v); the
loss reported with them is -log p[label].

Multi-scale, fully-convolutional testing ("we adopt the fully-convolutional form as in [41, 13],
and average the scores at multiple scales (images are resized such that the shorter side is in
{224, 256, 384, 480, 640})"): the whole image goes through the net. A ResNet ends with a global
average pool and one fc layer, both linear, so its scores on a large image are exactly the mean,
over the positions of the last feature map, of the fc applied at each position: the "fully-
convolutional form", with no change to the net.
"""
import numpy as np

from . import backend
from .autograd import Tensor, no_grad


def softmax(logits, axis=-1):
    """exp(z - max z) / sum exp(z - max z), on NumPy or CuPy arrays."""
    xp = backend.get_array_module(logits)
    z = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def topk_correct(scores, labels, k):
    """(N,) bool: is labels[n] among the k highest of scores[n] (scores (N, K), any monotone score)."""
    xp = backend.get_array_module(scores)
    labels = xp.asarray(labels)
    own = scores[xp.arange(len(labels)), labels]
    return (scores > own[:, None]).sum(axis=1) < k


def topk_errors(scores, labels, ks=(1, 5)):
    """{k: error fraction} for each k in ``ks``; scores (N, K) logits or probabilities, labels (N,) ints."""
    scores, labels = np.asarray(backend.as_numpy(scores)), np.asarray(backend.as_numpy(labels))
    if scores.ndim != 2 or labels.shape != (len(scores),):
        raise ValueError(f"topk_errors: need scores (N, K) and labels (N,), got {scores.shape} and {labels.shape}")
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


def evaluate(model, loader, device="cpu", ks=(1, 5)):
    """{"loss", "top1_error", "top5_error", "images"} of ``model`` in eval mode over ``loader``.

    Batches of (B, C, H, W) are one view per image; (B, V, C, H, W), as a loader with
    ``transforms.TenCrop`` in its transform yields, are V views averaged in softmax.
    """
    device = backend.check_device(device)
    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, {k: 0 for k in ks}, 0
    try:
        with no_grad():
            for x, y in loader:
                p = predict(model, x, device)
                y_dev = backend.to_device(np.asarray(y), device)
                xp = backend.get_array_module(p)
                loss_sum = loss_sum - xp.log(xp.maximum(p[xp.arange(len(y)), y_dev], 1e-30)).sum()
                for k in ks:
                    correct[k] = correct[k] + topk_correct(p, y_dev, k).sum()
                seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    result = {"loss": float(loss_sum) / seen, "images": seen}
    result.update({f"top{k}_error": 1.0 - int(correct[k]) / seen for k in ks})
    return result


def evaluate_multiscale(model, dataset, sides, subtract_mean, device="cpu", flip=True, ks=(1, 5), limit=None):
    """Multi-scale fully-convolutional testing: {"loss", "top1_error", "top5_error", "images"}.

    Each image of ``dataset`` (uint8 (C, H, W), any size) is resized to each shorter side in
    ``sides`` (``transforms.ResizeShorter``), the whole image (and, with ``flip``, its mirror) goes
    through the net one at a time, and the softmax outputs of all views are averaged.
    ``subtract_mean``: the training mean (a ``transforms.SubtractMean``; a per-pixel mean is
    averaged to per channel, since the views have other sizes). limit: only the first images.
    """
    from .data.transforms import ResizeShorter

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
                    x = subtract_mean(resize(image[None])) * scale  # (1, C, h, w) float32, [0, 1] units
                    views.append(backend.as_numpy(predict(model, x, device)))
                    if flip:
                        views.append(backend.as_numpy(predict(model, np.ascontiguousarray(x[..., ::-1]), device)))
                probs.append(np.mean(views, axis=0)[0])
                labels.append(label)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate_multiscale: no images")
    probs, labels = np.array(probs), np.array(labels)
    result = {"loss": float(-np.log(np.maximum(probs[np.arange(n), labels], 1e-30)).mean()), "images": n}
    result.update({f"top{k}_error": e for k, e in topk_errors(probs, labels, ks).items()})
    return result
