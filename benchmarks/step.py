"""Full training steps: ResNet-20 and ResNet-56 (CIFAR layout, option-A shortcuts), minires vs
PyTorch.

One step = zero the gradients, forward a batch of 128 32x32 images, softmax cross-entropy,
backward, SGD update (momentum 0.9, weight decay 1e-4). minires runs ``models.resnetXX()`` +
``optim.SGD`` + ``F.softmax_cross_entropy``; PyTorch the same network written in
``torch_refs`` with ``torch.optim.SGD`` and ``F.cross_entropy``. Both start from the same
weights, and their losses and gradients are compared once before timing. "minires reference"
is the same minires step on the reference ops (``minires.reference_ops()``), from the same weights.
"""
import numpy as np

import minires as mr
from minires import functional as F
from minires import models, optim

from .harness import (Case, Device, assert_close, load_torch, median_ratio, reference_mode,
                      time_interleaved, timing_table, torch_device, torch_sync)

MODELS = ("resnet20", "resnet56")
BATCH, QUICK_BATCH = 128, 8
LR = 0.01  # any value times the same; a small one keeps random-label steps well behaved


def make_batch(batch, seed=0):
    """Random 32x32 RGB images (N, 3, 32, 32) float32 and integer labels in [0, 10)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, batch)


def depth_of(name):
    return int(name.removeprefix("resnet"))


def minires_model(name, dev, seed=0):
    mr.manual_seed(seed)
    return models.get_model(name).to(dev.name)


def torch_model(torch, cfg, name, mr_model):
    """The PyTorch twin of ``mr_model``, holding the same weights and running statistics."""
    from .torch_refs import CifarResNet, copy_weights_from_minires
    model = CifarResNet(depth_of(name))
    copy_weights_from_minires(model, mr_model.state_dict())
    return model.to(torch_device(torch, cfg))


def minires_step_fn(model, dev, images, labels):
    """One minires training step (returns the loss tensor)."""
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
    x, t = mr.Tensor(dev.put(images)), dev.put(labels)

    def step():
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_step_fn(torch, cfg, model, images, labels):
    """One PyTorch training step (returns the loss tensor)."""
    dev = torch_device(torch, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
    x, t = torch.from_numpy(images).to(dev), torch.from_numpy(labels).long().to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        return loss
    return step


def check_gradients(name, dev, torch, cfg, batch, seed=0):
    """Same weights and batch: the two frameworks must agree on the loss and every gradient.

    Checked in float64. In float32 the gradients of a 56-layer net differ between two correct
    implementations by up to a few percent of a tensor's scale (rounding amplified through the
    batch norms), which would hide a real error; in float64 they agree to ~1e-13.
    """
    images, labels = make_batch(batch, seed)
    images = images.astype(np.float64)
    mm = minires_model(name, dev, seed)
    tm = torch_model(torch, cfg, name, mm).double()
    mm.to(dtype=np.float64)
    loss = F.softmax_cross_entropy(mm(mr.Tensor(dev.put(images))), dev.put(labels))
    loss.backward()
    dv = torch_device(torch, cfg)
    tloss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(images).to(dv)),
                                              torch.from_numpy(labels).long().to(dv))
    tloss.backward()
    assert_close(f"{name} loss", loss.data, tloss, rtol=1e-9)
    tgrads = dict(tm.named_parameters())
    for pname, p in mm.named_parameters():
        assert_close(f"{name} grad {pname}", p.grad, tgrads[pname].grad, rtol=1e-8)


def model_table(title, rows, batch, notes):
    """The table of the whole-model families (step, infer): times, ratios and images per second."""
    def per_second(name):
        return lambda med: "—" if med[name] is None else f"{batch / med[name]:,.0f}"
    return timing_table(title, rows, ["minires reference", "minires", "torch"],
                        ratios=[("minires", "torch"), ("minires reference", "minires")],
                        notes=notes, extra=[("minires img/s", per_second("minires")),
                                            ("torch img/s", per_second("torch"))])


def run(cfg):
    dev = Device(cfg.device)
    torch, torch_note = load_torch(cfg)
    batch = QUICK_BATCH if cfg.quick else BATCH
    rows, goals = [], []
    images, labels = make_batch(batch)
    for name in MODELS:
        if torch is not None:
            check_gradients(name, dev, torch, cfg, batch=min(batch, 8))
        mm = minires_model(name, dev)
        reference = minires_step_fn(minires_model(name, dev), dev, images, labels)
        cases = [Case("minires", minires_step_fn(mm, dev, images, labels), dev.sync, warmup=2),
                 Case("minires reference", reference_mode(reference), dev.sync, warmup=2)]
        if torch is not None:
            tm = torch_model(torch, cfg, name, mm)
            cases.append(Case("torch", torch_step_fn(torch, cfg, tm, images, labels),
                              torch_sync(torch, cfg), warmup=2))
        times = time_interleaved(cases, cfg.repeats)
        rows.append((f"ResNet-{depth_of(name)} SGD step", times))
        goals.append((f"ResNet-{depth_of(name)} training step",
                      median_ratio(times, "minires", "torch"), 1.5))
    notes = ["Both start from the same weights; their loss and all gradients were compared "
             "(in float64, on a batch of up to 8) before timing. Two warm-up steps each.",
             "minires reference: the same step on the reference ops (MINIRES_OPS=reference)."]
    if torch_note:
        notes.append(torch_note)
    title = f"Training step, batch {batch}, 32x32 ({cfg.device})"
    return [model_table(title, rows, batch, notes)], goals
