"""Network surgery: a net's blocks, swapping modules in and out, measuring without side effects.

The experiments change trained nets only through their public modules and always put them back:

    blocks(model)                       [(name, block)] of every residual or plain block, in order
    with swapped(model, {name: m}):     the named submodules replaced by ``m``, restored after
    with unchanged(model, training):    modes, BN statistics, weights and gradients restored after
    strip_batch_norm(model)             every BatchNorm2d an Identity (in place: the flow variants)
"""
import contextlib

from .. import models, nn

BLOCK_TYPES = (models.BasicBlock, models.Bottleneck)


def blocks(model):
    """[(name, block)] of every residual or plain block, in forward order ("layer1.0", ...)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BLOCK_TYPES)]


def preserves_shape(block):
    """True when the block maps (N, C, H, W) to the same shape: stride 1 and C_out == C_in."""
    return block.stride == 1 and block.conv1.in_channels == block.last_bn().weight.shape[0]


@contextlib.contextmanager
def swapped(model, replacements):
    """Within the block, each submodule named in ``replacements`` ({name: module}) is replaced
    (``setattr`` on its parent); the originals come back after, also on an exception."""
    modules = dict(model.named_modules())
    unknown = [n for n in replacements if n not in modules or not n]
    if unknown:
        raise ValueError(f"swapped: no submodule named {unknown} in {type(model).__name__}")
    done = []
    try:
        for name, new in replacements.items():
            parent_name, _, child = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            setattr(parent, child, new)
            done.append((parent, child, modules[name]))
        yield model
    finally:
        for parent, child, old in reversed(done):
            setattr(parent, child, old)


@contextlib.contextmanager
def unchanged(model, training=None):
    """Run a measurement (in train mode, eval mode, or ``training=None``: as it is), then restore
    every module's mode, copies of the buffers (BN running statistics), the parameters' arrays (a
    measurement may assign new ones, as the loss landscape does) and their gradients, so that
    measuring never changes the model being trained or studied."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(name, b.copy()) for name, b in model.named_buffers()]
    params = [(p, p.data, p.grad) for p in model.parameters()]
    if training is not None:
        model.train(training)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        modules = dict(model.named_modules())
        for name, b in buffers:
            parent, _, key = name.rpartition(".")
            (modules[parent] if parent else model).set_buffer(key, b)
        for p, data, grad in params:
            p.data, p.grad = data, grad


def strip_batch_norm(model):
    """Replace every ``nn.BatchNorm2d`` in ``model`` by ``nn.Identity()``, in place; returns it."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    return model
