"""Inference: eval-mode forward without a graph (``no_grad``), batch 128, minires vs PyTorch."""
import minires as mr

from .harness import (Case, Device, assert_close, load_torch, median_ratio, reference_mode,
                      time_interleaved, torch_device, torch_sync)
from .step import (BATCH, MODELS, QUICK_BATCH, depth_of, make_batch, minires_model, model_table,
                   torch_model)


def prepared_models(name, dev, torch, cfg, images):
    """minires model (eval) with non-trivial running statistics, and its PyTorch twin (eval)."""
    mm = minires_model(name, dev)
    with mr.no_grad():  # one training-mode forward moves the running statistics off 0 and 1
        mm(mr.Tensor(dev.put(images)))
    mm.eval()
    tm = None if torch is None else torch_model(torch, cfg, name, mm).eval()
    return mm, tm


def minires_fn(model, dev, images):
    x = mr.Tensor(dev.put(images))

    def run():
        with mr.no_grad():
            return model(x).data
    return run


def torch_fn(torch, cfg, model, images):
    x = torch.from_numpy(images).to(torch_device(torch, cfg))

    def run():
        with torch.no_grad():
            return model(x)
    return run


def run(cfg):
    dev = Device(cfg.device)
    torch, torch_note = load_torch(cfg)
    batch = QUICK_BATCH if cfg.quick else BATCH
    rows, goals = [], []
    images, _ = make_batch(batch, seed=1)
    for name in MODELS:
        mm, tm = prepared_models(name, dev, torch, cfg, images)
        cases = [Case("minires", minires_fn(mm, dev, images), dev.sync, warmup=2),
                 Case("minires reference", reference_mode(minires_fn(mm, dev, images)), dev.sync,
                      warmup=2)]
        assert_close(f"{name} eval logits, reference ops", cases[1].fn(), cases[0].fn(), rtol=1e-4)
        if tm is not None:
            cases.append(Case("torch", torch_fn(torch, cfg, tm, images), torch_sync(torch, cfg),
                              warmup=2))
            assert_close(f"{name} eval logits", cases[0].fn(), cases[2].fn(), rtol=1e-3)
        times = time_interleaved(cases, cfg.repeats)
        rows.append((f"ResNet-{depth_of(name)} forward", times))
        goals.append((f"ResNet-{depth_of(name)} inference",
                      median_ratio(times, "minires", "torch"), 1.5))
    notes = ["Same weights and running statistics in both; eval logits compared before timing.",
             "minires reference: the same model on the reference ops (MINIRES_OPS=reference)."]
    if torch_note:
        notes.append(torch_note)
    title = f"Inference (eval, no_grad), batch {batch}, 32x32 ({cfg.device})"
    return [model_table(title, rows, batch, notes)], goals
