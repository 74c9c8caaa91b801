"""Sharpness: the largest eigenvalue lambda_max of the training loss's Hessian, for trained plain
nets and ResNets, and along full-batch gradient descent, where it rises to the "edge of
stability" 2/lr (Cohen, Kaur, Li, Kolter and Talwalkar 2021, "Gradient descent on neural
networks typically occurs at the edge of stability").

Why 2/lr. Near a point w, L(w + d) ~ L(w) + g.d + d.H d / 2. On a quadratic, one step of gradient
descent with learning rate lr multiplies the component of the error along each eigenvector of H
(eigenvalue lambda) by (1 - lr lambda): it shrinks only if |1 - lr lambda| < 1, i.e. lambda <
2/lr. Gradient descent is stable on the quadratic only while lambda_max = ||H||_2 < 2/lr. Cohen et
al. found that on neural nets full-batch gradient descent first *sharpens* (lambda_max grows as the
loss falls) until lambda_max reaches 2/lr, and then, instead of diverging, hovers just around
2/lr while the loss keeps falling, no longer monotonically.

The measurement, in two parts:

    Hessian-vector product, a central difference of two gradients (no second backward):

        H v  ~  (g(w + eps v) - g(w - eps v)) / (2 eps),      g = dL/dw, ||v|| = 1

    By Taylor, g(w +- eps v) = g +- eps H v + eps^2/2 T[v, v] +- eps^3/6 Q[v, v, v] + ..., so
    the even terms cancel and the error is O(eps^2) (eps^2/6 Q[v, v, v], Q the fourth derivative);
    a forward difference (g(w + eps v) - g(w)) / eps would be O(eps). Rounding adds about
    delta / eps (delta: the rounding error of one gradient), so the measurements run in float64,
    where eps = 1e-6 leaves both far below 1e-6 of H v. That is for a smooth loss, such as the
    tanh net's of the edge of stability.

    A ReLU net's loss is only piecewise smooth, and the difference is then the Hessian *averaged*
    over the segment w +- eps v, kinks included: a kink inside it adds its jump in the gradient
    divided by 2 eps. Power iteration seeks out whatever makes ||H v|| large, and at a tiny eps
    that is a kink: on a trained plain-56 it found v.H v = 1216 at eps = 1e-6 along a direction
    where the loss bends by about 2.4 over +-0.01. So the trained (ReLU) nets are measured at
    eps = 1e-2 (``EPS_TRAINED``), the curvature at about the scale of one SGD step, and each
    estimate is checked against the second difference of the loss values alone along the vector
    found, (L(w + eps v) - 2 L(w) + L(w - eps v)) / eps^2.

    Power iteration: v <- H v / ||H v|| converges to the eigenvector of the eigenvalue of largest
    magnitude, at the rate (|lambda_2| / |lambda_1|)^k; the Rayleigh quotient theta = v.H v
    (||v|| = 1) estimates it and, for any v, is at most lambda_max, so an unconverged estimate
    errs low. It stops when v is nearly an eigenvector, ||H v - theta v|| <= 1e-2 |theta| (a
    small change of theta from one step to the next is no test: near a pair of close
    eigenvalues theta creeps). If the largest-magnitude eigenvalue mu is negative, a second run
    on H - mu I (eigenvalues lambda_i - mu >= 0) finds lambda_max - mu. Along training, each
    measurement starts from the previous one's vector (a warm start), so a few products suffice.

The loss of a trained net is the mean cross-entropy over the first ``images`` training digits,
unaugmented, cut into batches of the recipe's size (32), with batch norm in *train* mode: each
batch normalised by its own statistics, the function stochastic gradient descent descended (its
stability is what the learning rate meets). In eval mode the running statistics would make it a
different function of the weights, one that is no longer invariant to the scale of each filter.
Weight decay adds wd/2 ||w||^2 to the loss and wd = 1e-4 to every eigenvalue; it is left out. With
momentum beta (v <- beta v + g, w <- w - lr v), gradient descent on a quadratic is stable while
lambda < (2 + 2 beta) / lr: 152 at the recipe's lr 0.025 and beta 0.9.

Edge of stability: Cohen et al.'s "fc-tanh" net (64 -> 100 -> 100 -> 10 here, two tanh layers;
tanh keeps the loss smooth) on all 1,438 training digits, their square loss 0.5 mean_n
||f(x_n) - onehot(t_n)||^2, plain full-batch gradient descent (no momentum, no weight decay) for
a few learning rates, and lambda_max every ``every`` steps. ``run`` writes sharpness.json,
sharpness_edge.png and sharpness_trained.png, and checks the claims in every seed.
"""
import math
import os
import time

import numpy as np

from .. import backend, data, fast, machine, nn
from .. import functional as F
from ..autograd import Function, Tensor, no_grad
from . import nets, surgery
from .output import Output, claim_lines, duration, progress_bar, save_figure

EPS = 1e-6       # the central difference's step, float64, for a smooth loss
EPS_TRAINED = 1e-2  # ... for the trained ReLU nets: the curvature at the scale of an SGD step
MAX_ITERS = 20   # power iterations per measurement of a trained net (each costs two gradients)
EDGE_MAX_ITERS = 200  # ... along gradient descent: warm starts need a few, but at the edge the
                      # top eigenvalues crowd together and power iteration slows down
TOL = 1e-2       # stop when ||H v - theta v|| <= TOL |theta|: v is nearly an eigenvector
WIDTH = 100
LRS = (0.0667, 0.1, 0.2)  # 2/lr = 30, 20, 10
STEPS = 1500
EVERY = 20
DEPTHS = (20, 56)
IMAGES = 256
# The edge-of-stability claims (chosen on tuning seeds 100 and 101, see ``edge_summary``).
REACH = 0.9   # "reaches 2/lr": lambda_max >= REACH * 2/lr at some measurement
BAND = 0.2    # "hovers": after reaching, lambda_max / (2/lr) within 1 +- BAND ...
SHARE = 0.8   # ... at this share of the measurements, or more
DIVERGED = 1e3  # a loss this many times the first one: the run has diverged
PROTOCOL = (
    "Edge of stability: the net (tanh, width 100), the square loss, the learning rates, the steps "
    "and the claims' thresholds (REACH, BAND, SHARE) were chosen on tuning seed 100 (and 101 at "
    "lr 0.3), then fixed; the reported seeds were run once. A ReLU net was tried first: there the "
    "central difference's lambda_max changed with eps (the kinks), so the smooth tanh net, "
    "Cohen et al.'s fc-tanh, was taken instead. At lr 0.05 (2/lr = 40) lambda_max was still "
    "rising after 1000 steps, so the smallest lr kept is 0.0667 (2/lr = 30), with 1500 steps. "
    "A first reference run stopped power iteration when the Rayleigh quotient changed by less "
    "than 0.1%; a check of the measurement itself (not of the claims) showed that rule stopping "
    "after a catapult with estimates up to a quarter low, so it was replaced by the residual "
    "rule. With it, a budget of 20 products left most measurements at lr 0.2 unconverged "
    "(up to 9% low against a budget of 200, on seed 0), so the edge's budget is 200; both "
    "reference runs were made again, the claims and thresholds unchanged.",
    "Trained nets: the 256 images, batch norm in train mode with batches of 32, the power "
    "iteration's budget and eps were fixed before any reported net was measured, eps on a "
    "ResNet-20 and a plain-56 trained on tuning seed 100. At eps = 1e-6 power iteration found on "
    "the plain-56 a direction with v.H v = 1216 along which the loss bends by about 2.4 over "
    "+-0.01: a kink. At eps = 1e-2 the estimates (2.5 and 25) agreed within 5% with the loss's "
    "second differences along the vectors found. The claim (a ResNet is flatter than its plain "
    "twin) is the hypothesis Li et al.'s pictures suggest.")


# -- the math: a Hessian-vector product and power iteration ----------------------------------------

class TrainingLoss:
    """The training loss L(w) of ``model`` on fixed ``batches`` [(x, labels)], as a function of
    the flat parameter vector w (float64, NumPy; the parameters in ``model.parameters()`` order):

        L(w) = sum_b n_b L_b(w) / sum_b n_b          (L_b: ``loss_fn`` on batch b, a mean)

    ``training``: batch norm's mode for the evaluation (True: batch statistics; None: as the model
    is). ``loss(w)`` and ``gradient(w)`` leave the model's weights, gradients, modes and running
    statistics as they were (``surgery.unchanged``); ``load(w)`` moves the model to w. x must have
    the model's dtype and device.
    """

    def __init__(self, model, batches, loss_fn=F.softmax_cross_entropy, training=True):
        self.model, self.loss_fn, self.training = model, loss_fn, training
        self.params = list(model.parameters())
        self.batches = [(Tensor(x), labels) for x, labels in batches]
        self.n = sum(len(labels) for _, labels in batches)
        self.size = sum(p.data.size for p in self.params)

    def weights(self):
        """The model's parameters now, as one float64 vector."""
        return np.concatenate([backend.as_numpy(p.data).astype(np.float64).ravel()
                               for p in self.params])

    def load(self, w):
        """Set the model's parameters to the flat vector w (each in its own dtype and device)."""
        i = 0
        for p in self.params:
            xp = backend.get_array_module(p.data)
            piece = w[i:i + p.data.size].reshape(p.shape)
            p.data = xp.asarray(piece, dtype=p.data.dtype)
            i += p.data.size

    def __call__(self, w):
        """L(w)."""
        with surgery.unchanged(self.model, self.training), no_grad():
            self.load(w)
            return sum(float(self.loss_fn(self.model(x), labels).data) * len(labels)
                       for x, labels in self.batches) / self.n

    def gradient(self, w):
        """(dL/dw as a float64 vector, L(w)): one backward per batch, weighted by its size."""
        with surgery.unchanged(self.model, self.training):
            self.load(w)
            for p in self.params:
                p.grad = None
            total = 0.0
            for x, labels in self.batches:
                loss = self.loss_fn(self.model(x), labels) * (len(labels) / self.n)
                loss.backward()
                total += float(loss.data)
            grad = np.concatenate([
                np.zeros(p.data.size) if p.grad is None
                else backend.as_numpy(p.grad).astype(np.float64).ravel() for p in self.params])
        return grad, total


def hvp(loss, w, v, eps=EPS):
    """H v at w by the central difference (g(w + eps v) - g(w - eps v)) / (2 eps): error
    O(eps^2) for a smooth loss (module docstring). ``loss``: a :class:`TrainingLoss`; w, v: flat
    vectors (v of norm 1, so that eps is the length of the step)."""
    return (loss.gradient(w + eps * v)[0] - loss.gradient(w - eps * v)[0]) / (2 * eps)


def power_iteration(matvec, v0, *, max_iters=MAX_ITERS, tol=TOL, shift=0.0):
    """The eigenvalue of largest magnitude of B = A - shift I, A the symmetric operator
    ``matvec`` (v -> A v), returned as an eigenvalue of A (plus ``shift``).

    v <- B v / ||B v||, from v0; the estimate is theta = v.A v for the unit v (the Rayleigh
    quotient). It stops when v is nearly an eigenvector, the residual ||A v - theta v|| at most
    ``tol`` |theta| (then theta is off by about the residual squared over the gap to the next
    eigenvalue), or after ``max_iters`` products. Not on a small change of theta: when two
    eigenvalues are close, or the shift is large, theta can change little from one step to the
    next while still far from converged. No rule can certify the *top* eigenvalue: a start with
    almost nothing along its eigenvector stalls near a lower one; a random start, or along
    training the last measurement's vector, makes that unlikely. Returns {"value", "vector"
    (unit), "iterations", "converged", "residual" (relative, the last), "history" (every
    estimate)}.
    """
    v = np.asarray(v0, dtype=np.float64)
    v = v / np.linalg.norm(v)
    history, converged, residual = [], False, math.inf
    for _ in range(max_iters):
        bv = matvec(v) - shift * v
        theta_b = float(v @ bv)
        history.append(theta_b + shift)
        # B v - theta_B v = A v - theta v: the residual is the same for A and B
        residual = float(np.linalg.norm(bv - theta_b * v)) / max(abs(history[-1]), 1e-300)
        norm = np.linalg.norm(bv)
        if norm == 0:  # B v = 0: v is an eigenvector of A with eigenvalue ``shift``
            converged = True
            break
        v = bv / norm
        if residual <= tol:
            converged = True
            break
    return {"value": history[-1], "vector": v, "iterations": len(history),
            "converged": converged, "residual": residual, "history": history}


def top_eigenvalue(matvec, v0, *, max_iters=MAX_ITERS, tol=TOL, shifts=3):
    """The largest (most positive) eigenvalue lambda_max of the symmetric ``matvec``.

    Power iteration finds the eigenvalue of largest magnitude. If that is a negative mu, run
    again on A - mu I: its eigenvalues lambda_i - mu are >= 0 when mu is A's most negative
    eigenvalue, and the largest is lambda_max - mu. An unconverged mu may not be the most
    negative; if A - mu I is still dominated by a negative eigenvalue, shift by that one
    instead (at most ``shifts`` times; then "converged" is False). Same dict as
    :func:`power_iteration`, with "shifted" (True when a shift was needed) and "iterations" and
    "history" counting every run."""
    r = power_iteration(matvec, v0, max_iters=max_iters, tol=tol)
    runs, mu, found = [r], r["value"], r["value"] >= 0
    while not found and len(runs) <= shifts:
        r = power_iteration(matvec, v0, max_iters=max_iters, tol=tol, shift=mu)
        runs.append(r)
        found = r["value"] >= mu  # B's dominant eigenvalue, value - mu, is >= 0: lambda_max
        mu = mu if found else r["value"]  # else a more negative eigenvalue: shift by it
    return {**r, "shifted": len(runs) > 1, "converged": r["converged"] and found,
            "iterations": sum(x["iterations"] for x in runs),
            "history": [h for x in runs for h in x["history"]]}


# -- measuring -------------------------------------------------------------------------------------

def measure(loss, *, v0=None, eps=EPS, max_iters=MAX_ITERS, tol=TOL, seed=0):
    """lambda_max of the Hessian of ``loss`` (a :class:`TrainingLoss`) at the model's weights.

    v0: the start vector (None: N(0, I) from ``default_rng(seed)``). Returns {"lambda_max",
    "iterations" (Hessian-vector products; two gradients each), "converged", "residual",
    "shifted", "history", "loss", "vector" (the last unit vector, for a warm start; not for the
    JSON)}.
    """
    w = loss.weights()
    if v0 is None:
        v0 = np.random.default_rng(seed).standard_normal(w.size)
    r = top_eigenvalue(lambda v: hvp(loss, w, v, eps), v0, max_iters=max_iters, tol=tol)
    return {"lambda_max": r["value"], "iterations": r["iterations"], "converged": r["converged"],
            "residual": r["residual"], "shifted": r["shifted"], "history": r["history"],
            "loss": loss(w), "vector": r["vector"]}


# -- the edge of stability: full-batch gradient descent --------------------------------------------

class TanhFunction(Function):
    """y = tanh(x); backward: dL/dx = dL/dy (1 - y^2), from the y the forward kept."""

    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Tanh(nn.Module):
    """The tanh activation. Smooth, unlike ReLU: the loss of a tanh net has a Hessian everywhere,
    and the central difference converges to it as eps^2."""

    def forward(self, x):
        return TanhFunction()(x)


def mlp(width=WIDTH, in_features=64, num_classes=10, dtype=np.float64):
    """Cohen et al.'s "fc-tanh" net: flatten, two hidden tanh layers of ``width``, a linear
    output; ``nn.Linear``'s default initialisation (seed it with ``backend.manual_seed``)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, width, dtype=dtype), Tanh(),
                         nn.Linear(width, width, dtype=dtype), Tanh(),
                         nn.Linear(width, num_classes, dtype=dtype))


def square_loss(logits, labels):
    """0.5 mean_n ||logits_n - onehot(labels_n)||^2: the square loss of Cohen et al."""
    xp = backend.get_array_module(logits.data)
    target = xp.eye(logits.shape[1], dtype=logits.dtype)[labels]
    d = logits - Tensor(target)
    return (d * d).sum() * (0.5 / logits.shape[0])


LOSSES = {"mse": square_loss, "ce": F.softmax_cross_entropy}


def full_batch(train_set, dtype=np.float64, device="cpu"):
    """Every image of ``train_set`` in one batch, normalised, unaugmented: (x, labels)."""
    x, labels = next(iter(data.DataLoader(train_set, len(train_set))))
    return backend.to_device(x.astype(dtype), device), labels


def gradient_descent(train_set, lr, *, steps=STEPS, every=EVERY, width=WIDTH, loss="mse", seed=0,
                     eps=EPS, max_iters=EDGE_MAX_ITERS, tol=TOL, device="cpu", progress=None):
    """Full-batch gradient descent w <- w - lr dL/dw on :func:`mlp` (seeded by ``seed``) over the
    whole ``train_set``, with lambda_max measured at step 0 and every ``every`` steps (each
    measurement warm-started from the last one's vector). Stops early if the loss diverges.

    Returns {"lr", "threshold" (2/lr), "seed", "steps" (of the measurements), "lambda_max",
    "iterations" and "accuracy" (at those steps), "loss" (at every step, before it is taken),
    "diverged"}.
    ``progress``: a callable run after each step.
    """
    backend.manual_seed(seed)
    model = mlp(width, int(np.prod(train_set.images.shape[1:])), train_set.num_classes)
    model.to(device)
    x, labels = full_batch(train_set, device=device)
    objective = TrainingLoss(model, [(x, labels)], LOSSES[loss], training=None)
    record = {"lr": lr, "threshold": 2 / lr, "seed": seed, "steps": [], "lambda_max": [],
              "iterations": [], "loss": [], "accuracy": [], "diverged": False}
    w = objective.weights()
    v = np.random.default_rng(seed).standard_normal(w.size)
    first = None
    for step in range(steps + 1):
        if step % every == 0:
            objective.load(w)
            m = measure(objective, v0=v, eps=eps, max_iters=max_iters, tol=tol)
            v = m["vector"]
            record["steps"].append(step)
            record["lambda_max"].append(m["lambda_max"])
            record["iterations"].append(m["iterations"])
            with no_grad():
                hits = backend.as_numpy(model(Tensor(x)).data).argmax(1) == backend.as_numpy(labels)
            record["accuracy"].append(float(hits.mean()))
        g, value = objective.gradient(w)
        record["loss"].append(value)
        first = value if first is None else first
        if not math.isfinite(value) or value > DIVERGED * first:
            record["diverged"] = True
            break
        if step < steps:
            w = w - lr * g
        if progress:
            progress()
    objective.load(w)
    return record


def edge_summary(record):
    """What one run did at the edge: {"lambda_0", "lambda_peak", "reached_step" (the first
    measured step with lambda_max >= REACH x 2/lr, or None), "median_ratio" and "share_in_band"
    (of lambda_max / (2/lr) from that step on: the median, and the share within 1 +- BAND),
    "max_ratio", "loss_rises" (the share of steps after it at which the loss went up, and the
    same "loss_rises_before"), "final_loss", "final_accuracy" (at the last measurement),
    "reaches", "hovers"}."""
    lam, steps, t = np.array(record["lambda_max"]), record["steps"], record["threshold"]
    ratio = lam / t
    loss = np.array(record["loss"])
    rises = np.diff(loss) > 0
    hit = np.nonzero(ratio >= REACH)[0]
    out = {"lambda_0": float(lam[0]), "lambda_peak": float(lam.max()),
           "max_ratio": float(ratio.max()), "final_loss": float(loss[-1]),
           "final_accuracy": record["accuracy"][-1], "diverged": record["diverged"],
           "reached_step": None, "median_ratio": None, "share_in_band": None,
           "loss_rises": None, "loss_rises_before": float(rises.mean()) if rises.size else 0.0}
    if hit.size:
        k, s = int(hit[0]), steps[int(hit[0])]
        after = ratio[k:]
        out.update(reached_step=s, median_ratio=float(np.median(after)),
                   share_in_band=float((np.abs(after - 1) <= BAND).mean()),
                   loss_rises=float(rises[s:].mean()) if rises[s:].size else 0.0,
                   loss_rises_before=float(rises[:s].mean()) if s else 0.0)
    out["reaches"] = bool(hit.size) and not record["diverged"]
    out["hovers"] = bool(out["reaches"] and out["share_in_band"] >= SHARE
                         and abs(out["median_ratio"] - 1) <= BAND)
    return out


# -- trained nets ----------------------------------------------------------------------------------

def training_batches(train_set, images, batch_size, dtype=np.float64, device="cpu"):
    """The first ``images`` training images, unaugmented, in batches of ``batch_size``."""
    loader = data.DataLoader(train_set.subset(np.arange(min(images, len(train_set)))), batch_size)
    return [(backend.to_device(x.astype(dtype), device), y) for x, y in loader]


def trained_sharpness(model, batches, *, seed=0, eps=EPS_TRAINED, max_iters=MAX_ITERS, tol=TOL):
    """lambda_max of a trained net's training loss on ``batches`` (float64 arrays): the model is
    cast to float64 in place (give it a copy you can spare), batch norm in train mode.

    Besides ``measure``'s numbers: "second_difference", (L(w + eps v) - 2 L(w) + L(w - eps v)) /
    eps^2 along the top vector v found, from loss values alone (no gradients): for a quadratic
    it equals v.H v exactly, and it says what the loss itself does along v; and
    "rayleigh_by_eps", v.H v with H v taken at 10 eps, eps and eps / 10, which differ where the
    ReLU net's kinks matter (module docstring)."""
    model.to(dtype=np.float64)
    loss = TrainingLoss(model, batches, training=True)
    m = measure(loss, eps=eps, max_iters=max_iters, tol=tol, seed=seed)
    w, v = loss.weights(), m["vector"]
    m["second_difference"] = (loss(w + eps * v) - 2 * m["loss"] + loss(w - eps * v)) / eps ** 2
    m["rayleigh_by_eps"] = {f"{e:g}": float(v @ hvp(loss, w, v, e))
                            for e in (10 * eps, eps, eps / 10)}
    return {k: v for k, v in m.items() if k != "vector"}


def check_claims(edge, trained):
    """The claims, each in every seed: {claim: {"claim", "holds", "detail"}}.

    edge:     {str(lr): [edge_summary of each seed]}: for every lr, lambda_max reaches REACH x
              2/lr, and hovers there (``edge_summary``'s "hovers");
    trained:  {net: {str(seed): {"lambda_max", "converged", ...}}}: at each depth, the ResNet is
              flatter (smaller lambda_max) than the plain net, in every seed. An unconverged
              estimate is only a lower bound (the Rayleigh quotient never exceeds lambda_max),
              so the claim is shown only when every estimate converged and is positive.
    """
    claims = {}
    if edge:
        def cells(key, fmt):
            return "; ".join(f"lr {lr}: " + ", ".join(
                "-" if s[key] is None else fmt(s[key]) for s in runs) for lr, runs in edge.items())

        claims["reaches"] = {
            "claim": f"full-batch gradient descent sharpens until lambda_max >= {REACH:g} x 2/lr, "
                     "for every lr, in every seed",
            "holds": all(s["reaches"] for runs in edge.values() for s in runs),
            "detail": "peak lambda_max / (2/lr) per seed: " + cells("max_ratio", "{:.2f}".format)
                      + "; first step there: " + cells("reached_step", str)}
        claims["hovers"] = {
            "claim": f"after that, lambda_max stays within 2/lr x (1 +- {BAND:g}) at >= "
                     f"{SHARE:.0%} of the measurements (median too), for every lr, in every seed",
            "holds": all(s["hovers"] for runs in edge.values() for s in runs),
            "detail": "share in the band per seed: " + cells("share_in_band", "{:.0%}".format)
                      + "; median lambda_max / (2/lr): " + cells("median_ratio", "{:.2f}".format)}
    depths = sorted({nets.depth_of(n) for n in trained})
    pairs = [(f"plain{d}", f"resnet{d}") for d in depths
             if f"plain{d}" in trained and f"resnet{d}" in trained]
    if pairs:
        holds, parts, unsure = True, [], []
        for plain, res in pairs:
            seeds = sorted(set(trained[plain]) & set(trained[res]), key=int)
            for name in (plain, res):
                unsure += [f"{nets.pretty(name)} seed {s}" for s in seeds
                           if not trained[name][s]["converged"]
                           or trained[name][s]["lambda_max"] <= 0]
            holds = holds and all(trained[res][s]["lambda_max"] < trained[plain][s]["lambda_max"]
                                  for s in seeds)
            parts.append(f"{nets.pretty(res)} vs {nets.pretty(plain)}: " + ", ".join(
                f"{trained[res][s]['lambda_max']:.2f} vs {trained[plain][s]['lambda_max']:.2f}"
                for s in seeds))
        detail = "lambda_max per seed: " + "; ".join(parts)
        if unsure:
            detail = (f"not shown: {len(unsure)} estimate(s) did not converge or are not "
                      f"positive, so they are no more than lower bounds ({', '.join(unsure)}); "
                      + detail)
        claims["resnet_flatter"] = {
            "claim": "each trained ResNet has a smaller lambda_max than the plain net of its "
                     "depth, in every seed",
            "holds": holds and not unsure, "detail": detail}
    return claims


# -- plots -----------------------------------------------------------------------------------------

def plot_edge(records, path, title=None):
    """Cohen et al.'s Fig. 1 in miniature: lambda_max against the step (top; 2/lr dashed, the
    band of ``edge_summary``'s "hovers" shaded) and the training loss (bottom, log), one column
    per lr, one line per seed."""
    from matplotlib.figure import Figure

    lrs = sorted({r["lr"] for r in records})
    fig = Figure(figsize=(4.2 * len(lrs) + 0.5, 6), layout="constrained")
    axes = fig.subplots(2, len(lrs), squeeze=False, sharex="col")
    for col, lr in enumerate(lrs):
        runs = [r for r in records if r["lr"] == lr]
        top, bottom = axes[0, col], axes[1, col]
        for i, r in enumerate(runs):
            top.plot(r["steps"], r["lambda_max"], ".-", color=f"C{i}", lw=1, ms=3,
                     label=f"seed {r['seed']}")
            bottom.semilogy(np.arange(len(r["loss"])), r["loss"], color=f"C{i}", lw=1)
        top.axhline(2 / lr, color="k", ls="--", lw=1, label="2 / lr")
        top.axhspan((1 - BAND) * 2 / lr, (1 + BAND) * 2 / lr, color="k", alpha=0.07, lw=0,
                    label=f"2 / lr x (1 +- {BAND:g})")
        top.set_ylim(0, 1.6 * 2 / lr)
        top.set_title(f"lr = {lr:g}")
        top.legend(fontsize=7)
        bottom.set_xlabel("step of full-batch gradient descent")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(r"$\lambda_{max}$ of the Hessian")
    axes[1, 0].set_ylabel("training loss")
    return save_figure(fig, path, title, dpi=90)


def plot_trained(trained, threshold, path, title=None):
    """lambda_max of every trained net, one dot per seed (log y): filled where power iteration
    converged, hollow where it stopped at its budget (a lower bound); an estimate <= 0 is drawn
    as a triangle at the bottom. The dashed line: the stability threshold (2 + 2 beta) / lr of
    momentum SGD at the recipe's lr."""
    from matplotlib.figure import Figure

    names = list(trained)
    fig = Figure(figsize=(1.4 * len(names) + 2.5, 3.8), layout="constrained")
    ax = fig.subplots()
    positive = [r["lambda_max"] for by_seed in trained.values() for r in by_seed.values()
                if r["lambda_max"] > 0]
    floor = min(positive, default=1.0) / 2
    shown = set()
    for i, name in enumerate(names):
        color = "C0" if "plain" in name else "C1"
        for r in trained[name].values():
            kind = ("estimate <= 0, drawn at the bottom" if r["lambda_max"] <= 0
                    else "converged" if r["converged"] else "not converged (a lower bound)")
            label = None if kind in shown else kind
            shown.add(kind)
            ax.plot(i, max(r["lambda_max"], floor), "o" if r["lambda_max"] > 0 else "v", ms=7,
                    color=color, mfc=color if kind == "converged" else "white", label=label)
    ax.axhline(threshold, color="k", ls="--", lw=1,
               label=f"(2 + 2 beta) / lr = {threshold:.0f} at the recipe's lr")
    ax.set_xticks(range(len(names)), [nets.pretty(n) for n in names])
    ax.set_yscale("log")
    ax.set_ylabel(r"$\lambda_{max}$ of the training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path, title, dpi=90)


# -- the table and the run -------------------------------------------------------------------------

def table(edge, trained, claims):
    """Per lr and seed: lambda_max at step 0 and at its peak, where it reached 2/lr and how it
    stayed; per trained net and seed: lambda_max, the loss's second difference along its vector,
    the power iterations and v.H v at three eps; then the claims."""
    lines = []
    if edge:
        lines.append(f"{'lr':>6} {'2/lr':>6} {'seed':>4} {'lambda_0':>8} {'peak':>7} "
                     f"{'reached at':>10} {'median/(2/lr)':>13} {'in band':>7} "
                     f"{'loss rises':>10} {'final loss':>10} {'accuracy':>8}")
        for lr, runs in edge.items():
            for s in runs:
                reached = "-" if s["reached_step"] is None else f"step {s['reached_step']}"
                med = "-" if s["median_ratio"] is None else f"{s['median_ratio']:.2f}"
                band = "-" if s["share_in_band"] is None else f"{s['share_in_band']:.0%}"
                rises = "-" if s["loss_rises"] is None else f"{s['loss_rises']:.0%}"
                lines.append(f"{lr:>6} {2 / float(lr):6.1f} {s['seed']:>4} {s['lambda_0']:8.2f} "
                             f"{s['lambda_peak']:7.2f} {reached:>10} {med:>13} {band:>7} "
                             f"{rises:>10} {s['final_loss']:10.4f} {s['final_accuracy']:8.1%}")
    if trained:
        lines += [""] if lines else []
        lines.append(f"{'net':>10} {'seed':>4} {'lambda_max':>10} {'2nd diff':>8} {'loss':>7} "
                     f"{'products':>8} {'converged':>9}   v.Hv at 10 eps, eps, eps/10")
        for name, by_seed in trained.items():
            for seed, r in by_seed.items():
                by_eps = " ".join(f"{x:.2f}" for x in r["rayleigh_by_eps"].values())
                lines.append(f"{nets.pretty(name):>10} {seed:>4} {r['lambda_max']:10.2f} "
                             f"{r['second_difference']:8.2f} {r['loss']:7.4f} "
                             f"{r['iterations']:8d} {str(r['converged']):>9}   {by_eps}")
    return "\n".join(lines + claim_lines(claims))


def run(out, *, parts=("edge", "trained"), lrs=LRS, steps=STEPS, every=EVERY, width=WIDTH,
        loss="mse", depths=DEPTHS, recipe=nets.RECIPES["digits"], from_dir=None, images=IMAGES,
        seeds=(0,), eps=EPS, eps_trained=EPS_TRAINED, max_iters=None, tol=TOL, limit=None,
        train_set=None, test_set=None, device="cpu", command=None, progress=True, log=print):
    """Both parts (``parts``), for every seed of ``seeds``:

    "edge":     full-batch gradient descent on :func:`mlp` for each lr of ``lrs`` (``steps``
                steps, lambda_max every ``every``; ``loss``: "mse" or "ce");
    "trained":  lambda_max of the plain net and ResNet of each depth of ``depths``, trained here
                with ``recipe`` (and saved to ``out``) or loaded from ``from_dir``, on the first
                ``images`` training digits, H v at ``eps_trained`` (``eps``: the edge's);

    then print the table and the claims and write sharpness.json, sharpness_edge.png and
    sharpness_trained.png to ``out``; returns the report (what sharpness.json holds).
    ``max_iters``: the products per measurement at most (None: ``EDGE_MAX_ITERS`` for "edge",
    ``MAX_ITERS`` for "trained"). ``limit``:
    train the nets on random subsets of that size. ``train_set``, ``test_set``: None for the
    bundled digits. ``command``: the command line, recorded with the machine and its load
    average before and after."""
    unknown = set(parts) - {"edge", "trained"}
    if unknown or not parts:
        raise ValueError(f"parts: each must be 'edge' or 'trained', got {list(parts)}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    start = time.perf_counter()
    load_before = os.getloadavg()
    output = Output(out)
    train_set, test_set = nets.datasets(train_set, test_set)
    recipe = recipe.at_most(limit)
    edge_records, edge, trained, times = [], {}, {}, {}
    edge_iters = EDGE_MAX_ITERS if max_iters is None else max_iters
    trained_iters = MAX_ITERS if max_iters is None else max_iters
    if "edge" in parts:
        t0 = time.perf_counter()
        for lr in lrs:
            for seed in seeds:
                bar = progress_bar(steps, f"GD lr {lr:g} seed {seed}", enabled=progress,
                                   unit="step")
                r = gradient_descent(train_set, lr, steps=steps, every=every, width=width,
                                     loss=loss, seed=seed, eps=eps, max_iters=edge_iters, tol=tol,
                                     device=device, progress=bar.update)
                bar.close()
                edge_records.append(r)
                edge.setdefault(str(lr), []).append({"seed": seed, **edge_summary(r)})
        times["edge"] = round(time.perf_counter() - t0, 1)
    if "trained" in parts:
        t0 = time.perf_counter()
        batches = training_batches(train_set, images, recipe.batch_size, device=device)
        for seed in seeds:
            for name in nets.net_names(depths):
                model, info = nets.get_net(name, train_set, test_set, recipe, from_dir=from_dir,
                                           save_dir=out, seed=seed, device=device, limit=limit,
                                           progress=progress)
                t1 = time.perf_counter()
                r = trained_sharpness(model, batches, seed=seed, eps=eps_trained,
                                      max_iters=trained_iters, tol=tol)
                r["seconds"] = round(time.perf_counter() - t1, 1)
                if progress:
                    log(f"  {nets.pretty(name)} seed {seed}: lambda_max {r['lambda_max']:.2f} "
                        f"({r['iterations']} products, {duration(r['seconds'])})")
                trained.setdefault(name, {})[str(seed)] = {"training": info, **r}
        times["trained"] = round(time.perf_counter() - t0, 1)
    claims = check_claims(edge, trained)
    seconds = time.perf_counter() - start
    momentum_threshold = (2 + 2 * recipe.momentum) / recipe.lr
    settings = {"data": train_set.name, "parts": list(parts), "seeds": list(seeds), "eps": eps,
                "protocol": list(PROTOCOL),
                "max_iters": {"edge": edge_iters, "trained": trained_iters}, "tol": tol,
                "dtype": "float64", "device": device,
                "edge": {"lrs": list(lrs), "steps": steps, "every": every, "width": width,
                         "loss": loss, "net": f"fc tanh 64-{width}-{width}-10",
                         "images": len(train_set), "reach": REACH, "band": BAND,
                         "share": SHARE},
                "trained": {"depths": list(depths), "images": images, "from": from_dir,
                            "eps": eps_trained,
                            "batch_size": recipe.batch_size, "limit": limit,
                            "bn_mode": "train (batch statistics of each batch of the recipe's "
                                       "size)",
                            "recipe": recipe.as_dict(),
                            "momentum_threshold": momentum_threshold},
                "seconds": round(seconds, 1), "part_seconds": times, "command": command,
                "machine": {**machine.describe(), "minires_threads": fast.num_threads()},
                "load_average": {"before": list(load_before), "after": list(os.getloadavg())}}
    report = {"settings": settings, "edge": edge, "edge_runs": edge_records, "trained": trained,
              "claims": claims}
    log("\n" + table(edge, trained, claims) + "\n")
    output.json("sharpness.json", report)
    if edge_records:
        output.figure("sharpness_edge.png", plot_edge, edge_records,
                      title=f"Full-batch gradient descent on {len(train_set)} digits: "
                            f"lambda_max rises to 2/lr (fc tanh net, width {width}, {loss} loss)")
    if trained:
        output.figure("sharpness_trained.png", plot_trained, trained, momentum_threshold,
                      title=f"lambda_max of the trained nets' training loss ({images} digits, "
                            "BN in train mode)")
    extra = "and the trained nets (<net>-seed<S>.npz)" if trained and from_dir is None else None
    output.done(seconds, extra=extra, log=log)
    return report
