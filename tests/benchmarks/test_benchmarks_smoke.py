"""The benchmark harness's references compute what minires computes (correctness only, no timing).

Timing is never asserted. These run the same checks the harness runs before it times anything,
on small shapes; the PyTorch ones are skipped where torch is not installed (as in CI).
"""
import os
import sys

import numpy as np
import pytest

import minires as mr
from minires import functional as F

# benchmarks/ is a top-level folder of the repository, not part of the installed package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import bn, conv, load, memory, profile, references as ref, step  # noqa: E402
from benchmarks.harness import Config, Device, assert_close  # noqa: E402

CPU = Device("cpu")


def _minires_conv(x, w, gy, stride, padding):
    xt, wt = mr.Tensor(x, requires_grad=True), mr.Tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, stride=stride, padding=padding)
    y.backward(gy)
    return y.data, xt.grad, wt.grad


@pytest.mark.parametrize("k, stride, padding",
                         [(3, 1, 1), (3, 2, 1), (1, 2, 0), (3, 1, 0), (7, 2, 3)])
def test_conv_references_match_minires(rng, k, stride, padding):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, k, k)).astype(np.float32)
    want_y = F.conv2d(mr.Tensor(x), mr.Tensor(w), stride=stride, padding=padding).data
    gy = rng.standard_normal(want_y.shape).astype(np.float32)
    want = _minires_conv(x, w, gy, stride, padding)

    y, cache = ref.classic_conv2d(x, w, stride, padding)
    got = (y,) + ref.classic_conv2d_backward(gy, cache)
    for part, a, b in zip(("y", "dx", "dw"), got, want):
        assert_close(f"classic {part}", a, b)

    got = ((ref.conv2d_naive(x, w, stride, padding),)
           + ref.conv2d_naive_backward(x, w, gy, stride, padding))
    for part, a, b in zip(("y", "dx", "dw"), got, want):
        assert_close(f"naive {part}", a, b)


def test_col2im_rows_is_adjoint_of_im2col_rows(rng):
    """<im2col(x), c> == <x, col2im(c)>: the classic backward scatters exactly what was gathered."""
    x = rng.standard_normal((2, 3, 7, 7))
    cols = ref.im2col_rows(x, 3, 3, stride=2, padding=1)
    c = rng.standard_normal(cols.shape)
    back = ref.col2im_rows(c, x.shape, 3, 3, stride=2, padding=1)
    assert np.isclose(np.sum(cols * c), np.sum(x * back))


def test_harness_conv_check_passes_on_a_small_batch():
    conv.check((2, 8, 6, 6), CPU, naive_images=1)


def test_dezero_batch_norm_matches_minires():
    bn.check((4, 5, 6, 6), CPU)


def test_dezero_batch_norm_updates_running_statistics_like_minires(rng):
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) + 2
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    ref.dezero_batch_norm(x, g, b, rm, rv)
    mm, mv = np.zeros(3, np.float32), np.ones(3, np.float32)
    F.batch_norm(mr.Tensor(x), mr.Tensor(g), mr.Tensor(b), mm, mv, training=True)
    assert_close("running_mean", rm, mm)
    assert_close("running_var", rv, mv)


def test_assert_close_reports_the_worst_element():
    with pytest.raises(AssertionError, match=r"index \(1,\)"):
        assert_close("v", np.array([1.0, 2.5]), np.array([1.0, 2.0]))


def test_memory_probe_measures_a_minires_step():
    fig = memory.probe("minires", "resnet20", 2, "cpu", threads=2)
    assert fig["peak"] >= fig["before"] > 0 and fig["base"] > 0


@pytest.mark.parametrize("work", ["step", "infer"])
def test_load_probe_times_the_work_it_names(work):
    fig = load.probe("minires", work, "resnet20", 2, threads=1, repeats=2)
    assert len(fig["times"]) == 2 and fig["median"] > 0


def test_busy_process_runs_inside_the_block_and_is_gone_after():
    with load.BusyProcess() as busy:
        assert busy.proc.poll() is None  # still running: it keeps a core busy
    assert busy.proc.poll() is not None


def test_profile_groups_perf_samples_by_what_the_code_does():
    samples = ["  7f01 sgemm_kernel_SKYLAKEX (/x/libscipy_openblas64_.so)",
               "  7f02 sgemm_itcopy_SKYLAKEX (/x/libscipy_openblas64_.so)",
               "  7f03 __memmove_avx512_unaligned_erms (/usr/lib/libc.so.6)",
               "  7f04 FLOAT_multiply_X86_V3 (/x/_multiarray_umath.cpython-311.so)",
               "  7f05 [unknown] (/tmp/perf-1171.map)",
               "  7f06 _PyEval_EvalFrameDefault (/x/libpython3.11.so.1.0)",
               "  7f07 [unknown] (/x/torch/lib/libgomp.so.1)",
               "  7f08 clear_page_erms ([kernel.kallsyms])", ""]
    got = profile.group(samples)
    groups = ["GEMM / convolution arithmetic", "GEMM operand packing", "copies (im2col, layouts)",
              "elementwise passes and reductions", "Python interpreter", "thread synchronisation",
              "kernel (page faults, scheduling)"]
    assert got == {g: 12.5 for g in groups} | {"GEMM / convolution arithmetic": 25.0}


def test_gpu_run_is_skipped_with_a_note_without_a_gpu(capsys):
    from minires import backend
    if backend.gpu_available():
        pytest.skip("a GPU is present: the skip path does not apply")
    from benchmarks.__main__ import main
    assert main(["conv", "--device", "gpu"]) == 0
    assert "GPU figures skipped" in capsys.readouterr().out


def test_winograd_family_forces_the_branch_each_column_names():
    from benchmarks import winograd as family
    from minires import fast
    from minires.fast import blas, chunked_conv, flipped_dx, shifted_gemm, winograd
    x, w = np.zeros((2, 256, 8, 8), np.float32), np.zeros((256, 256, 3, 3), np.float32)
    want = {"shifted GEMMs": shifted_gemm if blas.available() else flipped_dx,
            "shifted GEMMs, matmul +=": shifted_gemm,
            "im2col": flipped_dx, "winograd": winograd}  # im2col: padded-width columns
    assert list(family.BRANCHES) == list(want)
    for name, knobs in family.BRANCHES.items():
        with fast.using(**knobs):
            assert chunked_conv.branch_for(x, w, 1, 1) is want[name], name
            assert fast.knobs.shifted_gemm_via == ("matmul" if "matmul" in name else "blas")
    assert set(family.ROUTES.values()) == {"blas", "matmul"}


# -- PyTorch (skipped where it is not installed) ---------------------------------------------------

def test_torch_conv_and_batch_norm_match_minires():
    torch = pytest.importorskip("torch")
    cfg = Config()
    conv.check((2, 8, 6, 6), CPU, torch, cfg, naive_images=0)
    bn.check((4, 5, 6, 6), CPU, torch, cfg)


def test_torch_resnet20_has_minires_loss_and_gradients():
    torch = pytest.importorskip("torch")
    step.check_gradients("resnet20", CPU, torch, Config(), batch=2)


def test_torch_resnet20_eval_logits_match_minires():
    torch = pytest.importorskip("torch")
    from benchmarks import infer
    images, _ = step.make_batch(4, seed=1)
    mm, tm = infer.prepared_models("resnet20", CPU, torch, Config(), images)
    assert_close("eval logits", infer.minires_fn(mm, CPU, images)(),
                 infer.torch_fn(torch, Config(), tm, images)(), rtol=1e-3)
