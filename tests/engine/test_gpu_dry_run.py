"""The GPU path, run on the strict CuPy stand-in (tests/fake_cupy) in subprocesses: no GPU needed.

The stand-in's arrays are ``cupy.ndarray``s that wrap NumPy arrays, so every op takes its GPU
branch, and it refuses what real CuPy refuses, with CuPy's messages (its docstring lists them).
Here: two SGD steps on the stand-in give the CPU's numbers, and the dry run of
``benchmarks/gpu_check.sh`` passes every one of its steps, among them the device tests
(``pytest --device gpu -m gpu``: tests/gpu and every device-parametrised test) on the stand-in.
What no stand-in can check (speed, memory, NVRTC and cuBLAS, float32 rounding on the device) is
left to that script's run on a GPU machine.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = ROOT / "tests" / "fake_cupy"

SCRIPT = r"""
import numpy as np
import minires as mr
from minires import backend, models, optim, functional as F
import cupy
assert getattr(cupy, "FAKE", False), cupy.__file__

def step(device):
    backend.manual_seed(0)
    model = models.cifar_resnet(8).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    losses = []
    for _ in range(2):
        loss = F.softmax_cross_entropy(model(mr.Tensor(x).to(device)), y)
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses, [backend.as_numpy(p.data) for p in model.parameters()], model

cpu_losses, cpu_params, _ = step("cpu")
gpu_losses, gpu_params, gpu_model = step("gpu")
assert all(type(p.data).__module__ == "cupy" for p in gpu_model.parameters()), "left the device"
np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
for a, b in zip(cpu_params, gpu_params):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
model = models.cifar_resnet(8).to("gpu").eval()
with mr.no_grad():
    out = model(mr.Tensor(np.zeros((2, 3, 8, 8), np.float32)).to("gpu"))
assert type(out.data).__module__ == "cupy"
print("ok", cpu_losses)
"""


def _env(**extra):
    path = os.pathsep.join([str(STAND_IN), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, **extra)


def _run(code):
    return subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=300)


def test_two_sgd_steps_on_the_stand_in_match_the_cpu():
    proc = _run(SCRIPT)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr[-3000:]


def test_the_stand_in_refuses_a_host_array_in_a_device_op_as_cupy_does():
    proc = _run(
        "import numpy as np, cupy\n"
        "try:\n    cupy.ones(3) * np.ones(3, np.float32)\n"
        "except TypeError as e:\n    print('refused:', e)\n"
        "print(type(cupy.ones(3).sum()).__module__)"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == ["refused: Unsupported type <class 'numpy.ndarray'>", "cupy"], proc.stdout


def test_the_dry_run_of_the_gpu_check_passes_every_step(tmp_path):
    out = tmp_path / "gpu-check"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run",
                           str(out)], env=_env(), capture_output=True, text=True, timeout=1500)
    summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{summary}"
    steps = re.findall(r"^\| (\w+) \| (\d+|skipped)[^|]* \| \d+ \| \d+ \|$", summary, re.M)
    assert [s for s, _ in steps] == ["env", "steps", "tests", "bench", "train", "flow",
                                     "lesson08", "calls"], summary
    assert all(rc == "0" for _, rc in steps), summary
    assert "twice, bit for bit: True" in summary and "resumed step exact: True" in summary
    assert "passed" in (out / "tests.log").read_text()
