"""``summary(model, input_shape)``: per-stage output shapes, parameters and mult-adds, as in
Table 1.

Mult-adds count the multiply-accumulates of convolutions and fully connected layers, the
convention of the paper's "FLOPs" row (batch norm, ReLU, pooling and additions are left out):

    conv:    N * C_out * OH * OW * (C_in * kh * kw)        linear:  N * in * out

Shapes come from one forward pass, in eval mode and without a graph, of an *empty* batch (N = 0):
every layer runs and reports its output shape, but no arithmetic is done, so summarising
ResNet-152 at 224x224 takes milliseconds. Counts are per example.
"""

from collections import namedtuple

import numpy as np

from .. import nn
from ..autograd import Tensor, no_grad

Row = namedtuple("Row", ["layer", "output_shape", "params", "mult_adds"])


class Summary:
    """Rows of (layer, output shape, params, mult-adds) plus totals; ``print`` shows a table."""

    def __init__(self, rows, total_params, total_mult_adds, input_shape):
        self.rows, self.total_params, self.total_mult_adds = rows, total_params, total_mult_adds
        self.input_shape = input_shape

    def __iter__(self):
        return iter(self.rows)

    def __str__(self):
        header = ("layer", "output shape", "params", "mult-adds")
        body = [
            (r.layer, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.mult_adds:,}")
            for r in self.rows
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
        line = lambda cells: "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )
        rule = "-" * len(line(header))
        out = [
            f"input {'x'.join(map(str, self.input_shape))}",
            line(header),
            rule,
            *map(line, body),
            rule,
            f"total params: {self.total_params:,}",
            f"total mult-adds: {self.total_mult_adds:,} ({self.total_mult_adds / 1e9:.2f} G)",
        ]
        return "\n".join(out)


def _mult_adds(module, out_shape):
    """Mult-adds for one example, from the output shape (N, ...) with N ignored."""
    per_example = int(np.prod(out_shape[1:]))
    if isinstance(module, nn.Conv2d):
        return per_example * int(np.prod(module.weight.shape[1:]))
    if isinstance(module, nn.Linear):
        return per_example * module.in_features
    return 0


def summary(model, input_shape, depth=1):
    """Summarise ``model`` for one input of ``input_shape`` = (C, H, W)
    (or (N, C, H, W); N is ignored).

    ``depth`` chooses the rows: 1 lists the top-level children (conv1, bn1, ..., layer1..4, fc);
    2 lists the blocks inside each stage too.
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(
            f"summary: input_shape must be (C, H, W) or (N, C, H, W), got {input_shape}"
        )
    named = list(model.named_modules())
    out_shapes, macs = {}, {}

    def record(module, inputs, output):
        out_shapes[id(module)] = (1,) + tuple(output.shape[1:])
        macs[id(module)] = _mult_adds(module, output.shape)

    handles = [m.register_forward_hook(record) for _, m in named]
    was_training = model.training
    dtype = next(model.parameters()).dtype
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros((0,) + shape[1:], dtype=dtype)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    rows = []
    for name, m in named:
        level = name.count(".") + 1 if name else 0
        if not name or level > depth or id(m) not in out_shapes:
            continue
        if level < depth and any(True for _ in m.children()) and depth > 1:
            continue  # a container shown through its children at this depth
        sub = [id(s) for _, s in m.named_modules()]
        rows.append(
            Row(
                name,
                out_shapes[id(m)],
                sum(p.size for p in m.parameters()),
                sum(macs.get(i, 0) for i in sub),
            )
        )
    total_params = sum(p.size for p in model.parameters())
    total_macs = sum(macs.values())
    return Summary(rows, total_params, total_macs, shape)
