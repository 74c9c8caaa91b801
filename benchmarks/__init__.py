"""Benchmarks for minires: naive loops, the classic im2col, minires and PyTorch, side by side.

    python -m benchmarks [conv|bn|step|infer|memory|winograd|load|all] [--repeats N] [--quick]
                         [--device cpu|gpu]

One module per family (``conv``, ``bn``, ``step``, ``infer``, ``memory``, ``winograd``, ``load``);
the reference implementations that minires is compared with live in ``references`` (NumPy) and
``torch_refs`` (PyTorch, imported only when torch is installed). ``harness`` holds what they
share: timing with interleaved repeats, device handling, tables and the machine description. See
README.md.

This file imports nothing heavy on purpose: ``python -m benchmarks`` must be able to set the BLAS
thread count in the environment before NumPy is first imported.
"""
FAMILIES = ("conv", "bn", "step", "infer", "memory", "winograd", "load")
