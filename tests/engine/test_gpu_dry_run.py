"""The GPU branches, run on the NumPy-backed fake CuPy (tests/fake_cupy) in a subprocess.

No GPU is needed: the fake's arrays say "cupy", so every op takes its GPU branch, and the fake
refuses (as CuPy does) an op that mixes a device array with a host one. What it cannot check,
speed and real CUDA kernels, is left to ``benchmarks/gpu_check.sh`` on a GPU machine.
"""

import os
import subprocess
import sys
from pathlib import Path

FAKE = Path(__file__).resolve().parents[1] / "fake_cupy"

SCRIPT = r"""
import numpy as np
import minires as mr
from minires import backend, models, optim, functional as F
import cupy
assert getattr(cupy, "FAKE", False), cupy.__file__

def step(device):
    backend.manual_seed(0)
    model = models.resnet8(num_classes=10) if hasattr(models, "resnet8") else models.cifar_resnet(8)
    model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    losses = []
    for _ in range(2):
        loss = F.softmax_cross_entropy(model(mr.Tensor(x).to(device)), backend.to_device(y, device))
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    params = [p.data for p in model.parameters()]
    return losses, params

cpu_losses, cpu_params = step("cpu")
gpu_losses, gpu_params = step("gpu")
assert all(type(p).__module__ == "cupy" for p in gpu_params), "parameters left the device"
np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
for a, b in zip(cpu_params, gpu_params):
    np.testing.assert_allclose(b.get(), a, rtol=1e-4, atol=1e-6)
model = models.cifar_resnet(8).to("gpu").eval()
with mr.no_grad():
    out = model(mr.Tensor(np.zeros((2, 3, 8, 8), np.float32)).to("gpu"))
assert type(out.data).__module__ == "cupy"
print("ok", cpu_losses)
"""


def _run(code):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def test_two_sgd_steps_on_the_fake_gpu_match_the_cpu():
    proc = _run(SCRIPT)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr[-3000:]


def test_the_fake_refuses_to_mix_host_and_device_arrays():
    # The check that makes the dry run worth running: a host array in a device op is an error.
    proc = _run(
        "import numpy as np, cupy\n"
        "try:\n    cupy.ones(3) * np.ones(3, np.float32)\n"
        "except TypeError as e:\n    print('refused', e)\n"
        "print(type(cupy.ones(3).sum()).__module__)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused") and proc.stdout.split()[-1] == "cupy", proc.stdout
