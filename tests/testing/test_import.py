"""hypothesis is a test-time dependency: minires imports and runs without it, and the parts that
need it say in one line which extra to install. The checks' GPU path runs on the fake CuPy."""
import os
import subprocess
import sys
from pathlib import Path

WITHOUT_HYPOTHESIS = "import sys; sys.modules['hypothesis'] = None\n"
FAKE = Path(__file__).resolve().parents[1] / "fake_cupy"
MESSAGE = "minires.testing needs hypothesis, a test-time dependency: pip install -e '.[dev]'"


def run(code):
    return subprocess.run([sys.executable, "-c", WITHOUT_HYPOTHESIS + code],
                          capture_output=True, text=True, timeout=120)


def test_minires_imports_without_hypothesis_and_testing_says_what_to_install():
    proc = run("import minires, minires.cli\n"
               "assert 'minires.testing' not in sys.modules\n"
               "try:\n    import minires.testing\n"
               "except ImportError as e:\n    print(e)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == MESSAGE


def test_the_check_command_without_hypothesis_is_a_one_line_error():
    proc = run("import runpy; sys.argv = ['minires', 'check']\n"
               "runpy.run_module('minires', run_name='__main__')\n")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"check: {MESSAGE}"


def test_check_backward_runs_on_the_gpu_path_of_the_fake_cupy():
    # tests/fake_cupy: NumPy arrays that say "cupy", so every device branch runs without a GPU.
    code = ("import cupy; assert cupy.FAKE\n"
            "from minires import functional as F, testing as mt\n"
            "for op, cases in ((F.conv2d, mt.conv_cases()), (F.batch_norm, mt.batch_norm_cases()),"
            " (F.max_pool2d, mt.pool_cases())):\n"
            "    mt.check_backward(op, cases, device='gpu', max_examples=4)\n"
            "print('ok')\n")
    path = os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
