"""Probes: what a net's gradients are at every layer, read with hooks, no code inside the models.

    ||dL/dx_l||  a forward hook on each chosen module (by default every residual or plain block)
                 puts a backward hook on the tensor it outputs; the input image's gradient is x_0's
    ||dL/dW||    the gradient of every Conv2d weight after the backward

Norms are L2 norms of the whole gradient array (over the batch, channels and positions). The
gradient flow experiment measures nets at initialisation with :func:`record_gradients`; the
degradation experiment repeats it on a fixed batch after every epoch (:class:`EpochRecorder`).
"""
from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor
from .surgery import BLOCK_TYPES, unchanged


def l2_norm(grad):
    """||grad||_2 of the whole array (NumPy or CuPy), as a float."""
    return float(backend.get_array_module(grad).linalg.norm(grad.ravel()))


class OutputGradients:
    """While active, store dL/d(output) of each module in ``modules`` ({name: module}) in backward.

    A forward hook tags the module's output tensor with a backward hook, which the engine calls
    with the total gradient of that tensor (all its uses summed). ``reduce`` maps the gradient
    array to what is stored (default: its L2 norm; ``reduce=None`` keeps a copy of the array).
    ``grads`` is {name: value} in forward order.
    """

    def __init__(self, modules, reduce=l2_norm):
        self.modules, self.reduce = dict(modules), reduce
        self.grads, self._handles = {}, []

    def _store(self, name):
        def hook(grad):
            self.grads[name] = grad.copy() if self.reduce is None else self.reduce(grad)
        return hook

    def watch(self, name, tensor):
        """Also record dL/d``tensor`` (e.g. the network's input, a leaf) under ``name``."""
        # keeps forward order even though backward runs in reverse
        self.grads.setdefault(name, None)
        self._handles.append(tensor.register_hook(self._store(name)))

    def __enter__(self):
        for name, module in self.modules.items():
            def forward_hook(module, inputs, output, name=name):
                if output.requires_grad:
                    self.watch(name, output)
            self._handles.append(module.register_forward_hook(forward_hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


def record_gradients(model, x, labels, *, block_types=BLOCK_TYPES, weight_types=(nn.Conv2d,),
                     loss_fn=F.softmax_cross_entropy, training=True):
    """One forward/backward of (x, labels); returns the gradient norms at every layer.

    x: array (N, C, H, W) on the model's device and dtype; labels: int array (N,).
    Returns {"loss": L, "activations": {name: ||dL/dx||}, "weights": {name: ||dL/dW||}} with
    activations = the input ("input") and the output of every ``block_types`` module, and weights
    = every ``weight_types`` module's weight, both in the order the forward pass ran them.
    ``training`` (default True: batch statistics, as during training) sets the mode for the
    measurement; the model's modes, BN running statistics and gradients are restored afterwards.
    """
    if isinstance(x, Tensor):
        x = x.data
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, block_types)}
    weighted = {name: m for name, m in model.named_modules() if isinstance(m, weight_types)}
    ran = []  # weighted modules in the order the forward pass calls them
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: ran.append(name))
             for name, m in weighted.items()]
    try:
        with unchanged(model, training), OutputGradients(blocks) as acts:
            for p in model.parameters():
                p.grad = None
            inp = Tensor(x, requires_grad=True)
            acts.watch("input", inp)
            loss = loss_fn(model(inp), labels)
            loss.backward()
            weights = {f"{n}.weight": l2_norm(weighted[n].weight.grad) for n in dict.fromkeys(ran)
                       if weighted[n].weight.grad is not None}
            activations = {k: v for k, v in acts.grads.items() if v is not None}
    finally:
        for h in hooks:
            h.remove()
    return {"loss": float(loss.item()), "activations": activations, "weights": weights}


class EpochRecorder:
    """Gradient norms on one fixed batch after every epoch: call ``recorder(epoch)`` once per epoch.

    ``records`` is a list of {"epoch": e, **record_gradients(...)}; ``x`` and ``labels`` are kept
    as given (take them from the training set, e.g. the first batch of its loader).
    """

    def __init__(self, model, x, labels, **kwargs):
        self.model, self.x, self.labels, self.kwargs = model, x, labels, kwargs
        self.records = []

    def __call__(self, epoch):
        x = backend.to_device(self.x, next(iter(self.model.parameters())).device)
        rec = record_gradients(self.model, x, self.labels, **self.kwargs)
        self.records.append({"epoch": int(epoch), **rec})
        return rec
