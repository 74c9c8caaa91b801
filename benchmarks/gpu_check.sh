#!/usr/bin/env bash
# The GPU check, in one run of at most 8 minutes, everything in one folder (OUT_DIR/summary.md):
#
#   env        CuPy, the device, and whether CUDA's libraries load (one line if not: then stop)
#   steps      the first step (kernels compiled: time and kernel-cache files added) against
#              warm steps; one SGD step on the CPU against the GPU from the same weights; the
#              same GPU steps twice, bit for bit; a step resumed from saved state on the GPU
#   tests      only the device tests (pytest --device gpu -m gpu), all of them, with durations
#   bench      ResNet-20/56/110 step time, images/s and peak memory against PyTorch CUDA on the
#              same card, TF32 off on both sides; minires as it is and with the fused kernels
#   train, flow, lesson08   the commands, with --device gpu
#   calls      (dry run) CuPy calls per step, before and after the fused kernels
#
#   bash benchmarks/gpu_check.sh OUT_DIR            on a machine with a CUDA GPU and CuPy (and,
#                                                   for the comparison, PyTorch with CUDA)
#   bash benchmarks/gpu_check.sh --dry-run OUT_DIR  anywhere: the same steps, made small, on the
#                                                   strict CuPy stand-in in tests/fake_cupy
#
# Runs with the python3 on the PATH from the repository root (no install needed: PYTHONPATH).
# Every step runs under a time limit (they add up to 8 minutes); a failed step is recorded and
# the next one still runs. The exit code is the number of failed steps.
set -u
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:?usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# A kernel cache of this run's own: the first step compiles into an empty one, so the files it
# adds are the kernels a cold start compiles. TF32 off: CuPy's float32 matmuls stay float32
# (PyTorch is told the same in the bench step).
export CUPY_CACHE_DIR="$out/kernel_cache" CUPY_TF32=0
rm -rf "$CUPY_CACHE_DIR"
if [ $dry = 1 ]; then
    export PYTHONPATH="$PWD/tests/fake_cupy:$PYTHONPATH"
    slow=3 depths="8 14" batch=8 repeats=2 epochs=1 flow_depths="8 14"
else
    slow=1 depths="20 56 110" batch=128 repeats=5 epochs=1 flow_depths="20 56 110"
fi
export GPU_CHECK_DRY=$dry GPU_CHECK_OUT=$out GPU_CHECK_DEPTHS=$depths GPU_CHECK_BATCH=$batch \
    GPU_CHECK_REPEATS=$repeats

failed=0 stop=""
summary="$out/summary.md"
: >"$out/run.log"
rows=()

step() {  # step NAME SECONDS COMMAND...: run it under SECONDS * slow, log to OUT/NAME.log
    local name=$1 limit=$(($2 * slow)); shift 2
    if [ -n "$stop" ]; then
        rows+=("| $name | skipped | 0 | $limit |")
        echo "== $name: skipped ($stop)" | tee -a "$out/run.log"
        return
    fi
    local start=$SECONDS
    echo "== $name: $*" | tee -a "$out/run.log"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    [ $rc = 0 ] || failed=$((failed + 1))
    rows+=("| $name | $rc$([ $rc = 124 ] && echo ' (time limit)') | $took | $limit |")
    echo "   exit $rc after ${took}s" | tee -a "$out/run.log"
}

# -- env: what is here, and whether a kernel compiles and a matmul runs -----------------------------
step env 25 python3 - <<'PY'
import platform, subprocess, sys
print("python", sys.version.split()[0], platform.machine())
for name in ("numpy", "cupy", "torch"):
    try:
        m = __import__(name)
        print(name, m.__version__)
    except Exception as e:
        print(name, "missing:", type(e).__name__, str(e).splitlines()[0])
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         timeout=20).stdout.strip() or "nvidia-smi: no output")
except Exception as e:
    print("nvidia-smi:", type(e).__name__)
from minires import backend
print("CuPy packages installed:", ", ".join(backend.cupy_packages()) or "none")
problem = backend.gpu_problem()
if problem:
    print("GPU PROBLEM:", problem)
    sys.exit(1)
import cupy
props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
print(f"GPU: {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB; CUDA runtime "
      f"{cupy.cuda.runtime.runtimeGetVersion()}, driver {cupy.cuda.runtime.driverGetVersion()}")
print("CUDA libraries: a kernel compiles (NVRTC) and a matmul runs (cuBLAS)")
PY
grep -q "^GPU PROBLEM" "$out/env.log" && stop=$(grep "^GPU PROBLEM" "$out/env.log" | head -1)

# -- steps: cold and warm, CPU against GPU, twice bit for bit, resumed ------------------------------
step steps 80 python3 - <<'PY'
import json, os, sys, time
import numpy as np
import cupy
import minires as mr
from minires import backend, functional as F, io, models, optim

out, dry = os.environ["GPU_CHECK_OUT"], os.environ["GPU_CHECK_DRY"] == "1"
depth, batch, warm_steps = (8, 8, 2) if dry else (20, 128, 10)
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
y = rng.integers(0, 10, batch)
sync = cupy.cuda.Device().synchronize


def make(device, seed=0):
    backend.manual_seed(seed)
    model = models.cifar_resnet(depth).to(device)
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def step(model, opt, device):
    loss = F.softmax_cross_entropy(model(mr.Tensor(backend.to_device(x, device))), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item())


def cache_files():
    d = os.environ.get("CUPY_CACHE_DIR", "")
    return sum(len(files) for _, _, files in os.walk(d)) if os.path.isdir(d) else 0


r, ok = {"depth": depth, "batch": batch}, True
model, opt = make("gpu")
before, t0 = cache_files(), time.perf_counter()
step(model, opt, "gpu")
sync()
r["cold step s"], r["kernel cache files added"] = time.perf_counter() - t0, cache_files() - before
times = []
for _ in range(warm_steps):
    t0 = time.perf_counter()
    step(model, opt, "gpu")
    sync()
    times.append(time.perf_counter() - t0)
r["warm step s (median)"] = float(np.median(times))
r["kernel cache files after warm steps"] = cache_files() - before

# one SGD step from the same weights: the CPU's numbers and the GPU's
(mc, oc), (mg, og) = make("cpu"), make("gpu")
r["loss cpu"], r["loss gpu"] = step(mc, oc, "cpu"), step(mg, og, "gpu")
worst = 0.0
for (name, pc), pg in zip(mc.named_parameters(), mg.parameters()):
    for a, b in ((pc.data, pg.data), (pc.grad, pg.grad)):
        b = backend.as_numpy(b)
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)))
r["cpu vs gpu: worst relative difference (params, grads)"] = worst
ok &= worst < 1e-3 and abs(r["loss cpu"] - r["loss gpu"]) < 1e-4 * abs(r["loss cpu"])


def three_steps():
    m, o = make("gpu")
    losses = [step(m, o, "gpu") for _ in range(3)]
    return losses, [backend.as_numpy(p.data) for p in m.parameters()]


(la, pa), (lb, pb) = three_steps(), three_steps()
r["twice, bit for bit"] = la == lb and all(np.array_equal(a, b) for a, b in zip(pa, pb))
ok &= r["twice, bit for bit"]

# resume: two steps, save to disk, a third step; against a fresh model loaded from the file
m, o = make("gpu")
step(m, o, "gpu")
step(m, o, "gpu")
path = os.path.join(out, "resume.npz")
io.save_arrays(path, {**{"model." + k: v for k, v in m.state_dict().items()},
                      **{"opt." + k: v for k, v in o.state_dict().items()}})
third = step(m, o, "gpu")
arrays, _ = io.load_arrays(path)
m2, o2 = make("gpu", seed=7)
m2.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
o2.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
resumed = step(m2, o2, "gpu")
r["resumed step exact"] = resumed == third and all(
    np.array_equal(backend.as_numpy(p.data), backend.as_numpy(q.data))
    for p, q in zip(m.parameters(), m2.parameters()))
ok &= r["resumed step exact"]
for k, v in r.items():
    print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
json.dump(r, open(os.path.join(out, "steps.json"), "w"), indent=1)
sys.exit(0 if ok else 1)
PY

# -- tests: the device tests only, no -x, with durations --------------------------------------------
step tests 130 python3 -m pytest -q --device gpu -m gpu -p no:cacheprovider --durations=15 -rs

# -- bench: step time, images/s, peak memory; minires (as is, fused) against PyTorch ----------------
step bench 110 python3 - <<'PY'
import json, os, time
import numpy as np
import cupy
import minires as mr
from minires import backend, functional as F, models, optim
from benchmarks import gpu_calls

depths = [int(d) for d in os.environ["GPU_CHECK_DEPTHS"].split()]
batch, repeats = int(os.environ["GPU_CHECK_BATCH"]), int(os.environ["GPU_CHECK_REPEATS"])
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
y = rng.integers(0, 10, batch)
pool, sync = cupy.get_default_memory_pool(), cupy.cuda.Device().synchronize
try:
    import torch
    assert torch.cuda.is_available(), "PyTorch has no CUDA here"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    from benchmarks.torch_refs import CifarResNet, copy_weights_from_minires
    torch_note = (f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                  f"{torch.backends.cudnn.version()}, cudnn.benchmark on")
except Exception as e:
    torch, torch_note = None, f"no PyTorch CUDA column ({type(e).__name__}: {e})"


def timed(step):
    for _ in range(2):
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def minires_case(depth):
    backend.manual_seed(0)
    model = models.cifar_resnet(depth).to("gpu")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    xd, yd = mr.Tensor(backend.to_device(x, "gpu")), y

    def step():
        loss = F.softmax_cross_entropy(model(xd), yd)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, step


rows = []
for depth in depths:
    row = {"net": f"ResNet-{depth}"}
    for label, context in (("minires", None), ("minires fused", gpu_calls.after)):
        model, step = minires_case(depth)
        if context:
            with context():
                row[label] = timed(step)
        else:
            pool.free_all_blocks()
            step()
            sync()
            row["minires peak MiB"] = pool.total_bytes() / 2**20
            row[label] = timed(step)
    if torch is not None:
        tm = CifarResNet(depth)
        copy_weights_from_minires(tm, model.state_dict())
        tm = tm.cuda()
        topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).long().cuda()

        def tstep():
            topt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(tm(tx), ty).backward()
            topt.step()
        torch.cuda.reset_peak_memory_stats()
        tstep()
        torch.cuda.synchronize()
        row["torch peak MiB"] = torch.cuda.max_memory_allocated() / 2**20
        row["torch"] = timed(lambda: (tstep(), torch.cuda.synchronize()))
    rows.append(row)

print(f"batch {batch}, 32x32, median of {repeats} steps after 2 warm-up steps; TF32 off on both "
      f"sides (CUPY_TF32=0; torch matmul/cudnn allow_tf32 False); {torch_note}\n")
print("| net | minires | minires fused | torch | fused/torch | images/s fused | peak MiB "
      "minires | peak MiB torch |\n|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    t = r.get("torch")
    print(f"| {r['net']} | {r['minires'] * 1e3:.1f} ms | {r['minires fused'] * 1e3:.1f} ms | "
          + (f"{t * 1e3:.1f} ms | {r['minires fused'] / t:.2f}x" if t else "— | —")
          + f" | {batch / r['minires fused']:.0f} | {r['minires peak MiB']:.0f} | "
          + (f"{r['torch peak MiB']:.0f} |" if t else "— |"))
goal = [r for r in rows if r["net"] == "ResNet-56" and r.get("torch")]
if goal:
    ratio = goal[0]["minires fused"] / goal[0]["torch"]
    print(f"\ngoal: ResNet-56 step within 3x PyTorch: {ratio:.2f}x ({'met' if ratio <= 3 else 'not met'})")
json.dump({"batch": batch, "torch": torch_note, "rows": rows},
          open(os.path.join(os.environ["GPU_CHECK_OUT"], "bench.json"), "w"), indent=1)
PY

# -- the commands, with --device gpu ----------------------------------------------------------------
step train 40 python3 -m minires train --device gpu --epochs "$epochs" --batch-size 256 \
    --out "$out/train" --overwrite --no-progress
step flow 25 python3 -m minires flow --device gpu --depths $flow_depths --out "$out/flow"
step lesson08 40 env MINIRES_QUICK=1 MINIRES_LESSON_OUT="$out/lesson08" python3 lessons/08_gpu.py
if [ $dry = 1 ]; then
    step calls 40 python3 -m benchmarks.gpu_calls --depths 20 --json "$out/calls.json"
fi

{
    echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC')$([ $dry = 1 ] && echo ' (dry run on the CuPy stand-in)')"
    echo; echo '```'; cat "$out/env.log" 2>/dev/null; echo '```'; echo
    [ -n "$stop" ] && { echo "**Stopped after env:** ${stop#GPU PROBLEM: }"; echo; }
    echo "| step | exit | seconds | limit |"; echo "|---|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    for f in steps bench calls; do
        [ -s "$out/$f.log" ] || continue
        echo; echo "## $f"; echo '```'; tail -n 30 "$out/$f.log"; echo '```'
    done
    for f in tests train flow lesson08; do
        [ -s "$out/$f.log" ] || continue
        echo; echo "## $f (last lines)"; echo '```'; tail -n 20 "$out/$f.log"; echo '```'
    done
} >"$summary"
echo "summary: $summary ($failed failed)"
exit $failed
