"""Peak memory of one training step, minires vs PyTorch, each in a fresh process.

Method (CPU). A NumPy array and a torch tensor both live in ordinary process memory, so the one
measure that is fair to both is the resident set size (RSS) the kernel reports in
/proc/self/status. Each framework runs in its own fresh subprocess (``--probe``), which:

1. imports, builds the model and the batch, and runs one forward + backward on 2 images, so the
   libraries' one-time setup (thread pools, kernel caches) is done; then reads ``base`` = VmRSS;
2. runs one full warm-up step, reads ``before`` = VmRSS, and resets the kernel's high-water mark
   VmHWM to the current RSS (writing "5" to /proc/self/clear_refs, Linux >= 4.0);
3. runs the measured step and reads ``peak`` = VmHWM.

The table's main figure is ``peak - base``: what a training step at this batch needs beyond the
interpreter, the libraries and the model — activations kept for the backward, gradients,
optimizer state, workspaces, and whatever each allocator keeps. ``peak - before`` (transient:
memory taken and given back within the step) and the absolute ``peak`` are shown too.
tracemalloc is not used: it sees NumPy's allocations but not PyTorch's.

Method (GPU). Device memory is read from each framework's pool: CuPy's default pool size
(``total_bytes``, which only grows until freed) and PyTorch's ``max_memory_reserved``, after the
warm-up step has emptied both pools' caches. Both count memory reserved by the pool, not bytes
in live arrays.
"""
import argparse
import gc
import json

from .harness import Config, Table, gpu_note, median, run_fresh

MODELS, QUICK_MODELS = ("resnet20", "resnet56"), ("resnet20",)
MiB = 2 ** 20


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise KeyError(key)


def _reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def probe(impl, name, batch, device, threads):
    """Run in a fresh process: measure one training step of ``impl``; the figures in bytes."""
    from . import step as S
    from .harness import Device, load_torch
    cfg = Config(device=device, threads=threads)
    dev = Device(device)
    images, labels = S.make_batch(batch)
    small, small_labels = S.make_batch(2, seed=1)
    mm = S.minires_model(name, dev)
    if impl == "minires":
        import minires as mr
        from minires import functional as F
        loss = F.softmax_cross_entropy(mm(mr.Tensor(dev.put(small))), dev.put(small_labels))
        loss.backward()
        mm.zero_grad()
        del loss
        step = S.minires_step_fn(mm, dev, images, labels)
    else:
        torch, note = load_torch(cfg)
        if torch is None:
            raise SystemExit(note)
        tm = S.torch_model(torch, cfg, name, mm)
        td = S.torch_device(torch, cfg)
        torch.nn.functional.cross_entropy(tm(torch.from_numpy(small).to(td)),
                                          torch.from_numpy(small_labels).long().to(td)).backward()
        tm.zero_grad(set_to_none=True)
        step = S.torch_step_fn(torch, cfg, tm, images, labels)
        del mm  # only its weights were needed
    gc.collect()
    if device == "gpu":
        return _probe_gpu(impl, step, dev)
    base = _status("VmRSS")
    step()
    gc.collect()
    before = _status("VmRSS")
    reset = _reset_peak()
    step()
    return {"base": base, "before": before, "peak": _status("VmHWM"), "peak_reset": reset}


def _probe_gpu(impl, step, dev):
    step()
    gc.collect()
    if impl == "minires":
        pool = dev.xp.get_default_memory_pool()
        pool.free_all_blocks()
        before = pool.total_bytes()
        step()
        dev.sync()
        peak = pool.total_bytes()
    else:
        import torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_reserved()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_reserved()
    return {"base": before, "before": before, "peak": peak, "peak_reset": True}


def _run_probe(impl, name, batch, cfg):
    """Start a fresh interpreter for one probe; return its figures (or raise with its stderr)."""
    return run_fresh("memory", ["--probe", impl, "--model", name, "--batch", batch,
                                "--device", cfg.device, "--threads", cfg.threads],
                     f"memory probe {impl} {name}")


def run(cfg):
    from .harness import load_torch
    if cfg.device == "gpu" and gpu_note():
        raise RuntimeError(gpu_note())
    torch, torch_note = load_torch(cfg)
    impls = ["minires"] + ([] if torch is None else ["torch"])
    batch = 8 if cfg.quick else 128
    runs = 1 if cfg.quick else max(1, min(cfg.repeats, 3))
    unit = "device pool" if cfg.device == "gpu" else "RSS"
    table = Table(f"Peak memory of one training step, batch {batch} ({cfg.device}, {unit}, MiB, "
                  f"median of {runs} fresh processes)",
                  ["work", "minires step peak", "torch step peak", "minires/torch",
                   "minires transient", "torch transient", "minires process peak",
                   "torch process peak"])
    goals = []
    for name in QUICK_MODELS if cfg.quick else MODELS:
        results = {impl: [] for impl in impls}
        for _ in range(runs):  # interleaved, like the timings
            for impl in impls:
                results[impl].append(_run_probe(impl, name, batch, cfg))
        fig = {impl: {k: median([r[k] for r in rs]) / MiB for k in ("base", "before", "peak")}
               for impl, rs in results.items()}

        def cell(impl, what):
            if impl not in fig:
                return "—"
            f = fig[impl]
            v = {"step": f["peak"] - f["base"], "transient": f["peak"] - f["before"],
                 "process": f["peak"]}[what]
            return f"{v:,.0f}"
        ratio = None
        if "torch" in fig:
            ratio = ((fig["minires"]["peak"] - fig["minires"]["base"])
                     / (fig["torch"]["peak"] - fig["torch"]["base"]))
        table.rows.append([f"ResNet-{name.removeprefix('resnet')} training step",
                           cell("minires", "step"), cell("torch", "step"),
                           "—" if ratio is None else f"{ratio:.2f}x",
                           cell("minires", "transient"), cell("torch", "transient"),
                           cell("minires", "process"), cell("torch", "process")])
        table.raw[name] = results
        goals.append((f"ResNet-{name.removeprefix('resnet')} step peak memory", ratio, 2.0))
        if not all(r["peak_reset"] for rs in results.values() for r in rs):
            table.notes.append("VmHWM could not be reset here: the peaks include the warm-up step.")
    if cfg.device == "gpu":
        table.notes.append("step peak = pool size reached during the step (CuPy total_bytes, torch "
                           "max_memory_reserved) after emptying the pool's cache.")
    else:
        table.notes.append("step peak = peak RSS during the step minus RSS once model, batch and "
                           "libraries are set up; transient = peak minus RSS just before the step; "
                           "process peak = VmHWM (includes the interpreter and the libraries' "
                           "code). See benchmarks/memory.py.")
    if torch_note:
        table.notes.append(torch_note)
    return [table], goals


def main():
    p = argparse.ArgumentParser(
        description="one memory probe (used by python -m benchmarks memory)")
    p.add_argument("--probe", choices=["minires", "torch"], required=True)
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    from minires.fast import tune_allocator
    tune_allocator()  # as in every run before (minires/fast/memory.py): glibc keeps freed memory
    print(json.dumps(probe(a.probe, a.model, a.batch, a.device, a.threads)))


if __name__ == "__main__":
    main()
