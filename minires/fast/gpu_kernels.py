"""Fused CUDA kernels for the elementwise passes of a ResNet step: the GPU twins.

On the GPU every NumPy-style operation is a kernel launch of its own, with a few microseconds of
launch overhead and a full pass over memory: the reference batch norm is about fifteen of them,
a ReLU two, the SGD update of one parameter six. A ResNet-20 step was about 1,500 CuPy calls,
so launches alone set a floor of several milliseconds. Here each of those passes is one kernel
(``cupy.ElementwiseKernel`` / ``cupy.ReductionKernel``), each the formulas of its reference op:

    batch norm, training   mu = mean(x)                     CuPy's mean          (per channel)
                           ss = sum((x - mu)^2)             SUM_SQUARES
                           var, invstd, running stats       CHANNEL_STATS        (C elements)
                           y = (x - mu) * gamma*invstd + beta    NORMALIZE       (one pass)
         backward          dbeta = sum(g), dgamma = sum(g * xhat)   SUM, SUM_G_XHAT
                           dx = gamma*invstd * (g - dbeta/M - xhat * dgamma/M)   BN_DX
         eval mode         y = scale * x + (beta - scale * mu);  dx = scale * g   AFFINE, EVAL_DX
    batch norm + ReLU      the same with y = max(., 0), and g = dy * [y > 0] inside the sums
    ReLU                   y = max(x, 0); dx = dy * [y > 0]                   RELU, RELU_DX
    residual add + ReLU    y = max(a + b, 0); da = db = dy * [y > 0]          ADD_RELU, RELU_DX
    SGD                    d = g + wd * p;  v = m * v + d;  p -= lr * v       SGD (in place)
    a uint8 batch          y = float(x) - mean, on the device              SUBTRACT_MEAN_U8

The outputs are allocated channel-major, the layout the next convolution wants
(``functional/layout.py``): CuPy's own elementwise outputs are C-ordered, which would cost a
transposed copy before every convolution. Every kernel is compiled with ``--fmad=false``: CUDA
would otherwise fuse a multiply and an add into one rounding, and the numbers would drift from
the reference ops' by an ulp here and there. The kernels are compiled on first use (CuPy keeps
the binaries in its kernel cache) and never imported on a CPU-only machine.

Where the model and the optimizer meet these (one guard line at the top of each, the readable
code below it untouched): ``basic_block`` / ``bottleneck`` for ``BasicBlock.forward`` /
``Bottleneck.forward`` and ``sgd_step`` for ``SGD.step``, behind ``applies(...)`` (GPU arrays,
fast ops); ``batch_norm_forward/backward`` and ``relu_forward/backward`` for the GPU branches of
the fast twins (``blocked_norm.py``, ``blocked_relu.py``). ``tests/gpu/test_gpu_kernels.py``
checks each against the reference ops, on the strict CuPy stand-in (which runs these kernels'
C source translated to NumPy).
"""
import functools

from .. import backend, switch
from ..autograd import Function
from ..functional.activation import ReLU
from ..functional.layout import channels_first_2d, from_channels_first_2d
from ..functional.norm import BatchNorm

OPTIONS = ("--fmad=false",)  # no fused multiply-add: the reference's roundings, one by one

SOURCES = {
    "RELU": ("T x", "T y", "y = (x > (T)0 || x != x) ? x : (T)0"),  # max(x, 0), NaN kept
    "RELU_DX": ("T gy, T y", "T gx", "gx = gy * (T)(y > (T)0)"),
    "ADD_RELU": ("T a, T b", "T y", "T s = a + b; y = (s > (T)0 || s != s) ? s : (T)0"),
    "NORMALIZE": ("T x, T mu, T scale, T beta", "T y", "y = (x - mu) * scale + beta"),
    "NORMALIZE_RELU": ("T x, T mu, T scale, T beta", "T y",
                       "T z = (x - mu) * scale + beta; y = (z > (T)0 || z != z) ? z : (T)0"),
    "AFFINE": ("T x, T scale, T beta, T mu", "T y", "y = x * scale + (beta - scale * mu)"),
    "CHANNEL_STATS": ("T ss, T gamma, T m, T eps", "T var, T invstd, T scale",
                      "var = ss / m; invstd = (T)1 / sqrt(var + eps); scale = gamma * invstd"),
    "RUNNING_STATS": ("T mu, T var, T keep, T mom, T mom_unbiased", "T running_mean, T running_var",
                      "running_mean = running_mean * keep + mom * mu; "
                      "running_var = running_var * keep + mom_unbiased * var"),
    "BN_DX": ("T g, T x, T mu, T invstd, T gamma, T dbeta, T dgamma, T m", "T dx",
              "dx = (gamma * invstd) * (g - dbeta / m - ((x - mu) * invstd) * dgamma / m)"),
    "BN_RELU_DX": ("T gy, T y, T x, T mu, T invstd, T gamma, T dbeta, T dgamma, T m", "T dx",
                   "T g = gy * (T)(y > (T)0); "
                   "dx = (gamma * invstd) * (g - dbeta / m - ((x - mu) * invstd) * dgamma / m)"),
    "EVAL_DX": ("T g, T gamma, T invstd", "T dx", "dx = (gamma * invstd) * g"),
    "EVAL_DX_RELU": ("T g, T y, T gamma, T invstd", "T dx",
                     "dx = (gamma * invstd) * (g * (T)(y > (T)0))"),
    "SUBTRACT_MEAN_U8": ("uint8 x, float32 mean", "float32 y", "y = (float)x - mean"),
    "SGD": ("T g, T lr, T momentum, T weight_decay, int32 first, int32 nesterov", "T p, T v",
            "T d = weight_decay != (T)0 ? g + weight_decay * p : g; "  # as SGD.step: no 0 * p
            "v = first ? d : v * momentum + d; "
            "p = p - lr * (nesterov ? d + momentum * v : v)"),
    "SGD_PLAIN": ("T g, T lr, T weight_decay", "T p",
                  "p = p - lr * (weight_decay != (T)0 ? g + weight_decay * p : g)"),
}
REDUCTIONS = {  # (in, out, map, reduce, post, identity): sums along the rows of (C, M)
    "SUM_SQUARES": ("T x, T mu", "T y", "(x - mu) * (x - mu)", "a + b", "y = a", "0"),
    "SUM_G_XHAT": ("T g, T x, T mu, T invstd", "T y", "g * ((x - mu) * invstd)", "a + b",
                   "y = a", "0"),
    "SUM_MASKED": ("T gy, T y", "T s", "gy * (T)(y > (T)0)", "a + b", "s = a", "0"),
    "SUM_MASKED_G_XHAT": ("T gy, T y, T x, T mu, T invstd", "T s",
                          "(gy * (T)(y > (T)0)) * ((x - mu) * invstd)", "a + b", "s = a", "0"),
}


def applies(*arrays):
    """True when the fused kernels take over: the arrays are on the GPU and the fast ops run (in
    ``reference_ops()``, or with MINIRES_OPS=reference, the GPU runs the reference ops too)."""
    return not switch.using_reference() and all(backend.is_gpu_array(a) for a in arrays)


@functools.lru_cache(maxsize=None)
def kernel(name):
    """The compiled kernel ``name`` of SOURCES or REDUCTIONS (CuPy compiles it on first call)."""
    cp = backend._import_cupy()
    if name in SOURCES:
        return cp.ElementwiseKernel(*SOURCES[name], name=f"minires_{name.lower()}",
                                    options=OPTIONS)
    return cp.ReductionKernel(*REDUCTIONS[name], name=f"minires_{name.lower()}", options=OPTIONS)


def _rows(k, *args):
    """A reduction along the rows of (C, M) matrices: (C,)."""
    return kernel(k)(*args, axis=1)


def _col(v):
    return v[:, None]


# -- ReLU ---------------------------------------------------------------------------------------

def relu_forward(fn, x):
    """``ReLU.forward`` on the GPU: y = max(x, 0) in x's layout, one kernel."""
    fn.y = backend.get_array_module(x).empty_like(x)  # same memory layout as x
    return kernel("RELU")(x, fn.y)


def relu_backward(fn, gy):
    return kernel("RELU_DX")(gy, fn.y, backend.get_array_module(gy).empty_like(gy))


class GpuReLU(ReLU):
    forward, backward = relu_forward, relu_backward


# -- batch norm (and batch norm + ReLU) --------------------------------------------------------

def _normalize(fn, x, gamma, beta, relu):
    """Forward of batch norm (+ ReLU) on the (C, M) matrix of x; saves what backward needs."""
    xp = backend.get_array_module(x)
    m = channels_first_2d(x)  # (C, M): a view when x is channel-major
    C, M = m.shape
    y = xp.empty((C, M), dtype=m.dtype)
    if fn.training:
        mu = m.mean(axis=1)
        ss = _rows("SUM_SQUARES", m, _col(mu))
        var, invstd, scale = kernel("CHANNEL_STATS")(ss, gamma, M, fn.eps)
        if fn.running_mean is not None:
            mom = fn.momentum
            kernel("RUNNING_STATS")(mu, var, 1 - mom, mom, mom * M / (M - 1),
                                    fn.running_mean, fn.running_var)
        kernel("NORMALIZE_RELU" if relu else "NORMALIZE")(m, _col(mu), _col(scale), _col(beta), y)
    else:  # running statistics: y = scale * x + (beta - scale * mu), per-channel constants
        mu = fn.running_mean
        _, invstd, scale = kernel("CHANNEL_STATS")(fn.running_var, gamma, 1, fn.eps)
        kernel("AFFINE")(m, _col(scale), _col(beta), _col(mu), y)
        if relu:
            kernel("RELU")(y, y)
    fn.x, fn.mu, fn.invstd, fn.gamma = x, mu, invstd, gamma
    out = from_channels_first_2d(y, x.shape)
    if relu:
        fn.y = out
    return out


def _normalize_backward(fn, gy, relu):
    xp = backend.get_array_module(gy)
    g, m = channels_first_2d(gy), channels_first_2d(fn.x)
    C, M = g.shape
    mu, invstd = _col(fn.mu), _col(fn.invstd)
    if relu:
        y = channels_first_2d(fn.y)
        dbeta = _rows("SUM_MASKED", g, y)
        dgamma = _rows("SUM_MASKED_G_XHAT", g, y, m, mu, invstd)
    else:
        dbeta = g.sum(axis=1)
        dgamma = _rows("SUM_G_XHAT", g, m, mu, invstd)
    dx = None
    if fn.needs_input_grad[0]:
        gamma = _col(fn.gamma)
        dx = xp.empty((C, M), dtype=g.dtype)
        if fn.training and relu:
            kernel("BN_RELU_DX")(g, y, m, mu, invstd, gamma, _col(dbeta), _col(dgamma), M, dx)
        elif fn.training:
            kernel("BN_DX")(g, m, mu, invstd, gamma, _col(dbeta), _col(dgamma), M, dx)
        elif relu:  # eval: y is affine in x, dx = gamma * invstd * dy * [y > 0]
            kernel("EVAL_DX_RELU")(g, y, gamma, invstd, dx)
        else:
            kernel("EVAL_DX")(g, gamma, invstd, dx)
        dx = from_channels_first_2d(dx, gy.shape)
    return dx, dgamma, dbeta


def batch_norm_forward(fn, x, gamma, beta):
    """``BatchNorm.forward`` on the GPU (fn: the BatchNorm Function)."""
    return _normalize(fn, x, gamma, beta, relu=False)


def batch_norm_backward(fn, gy):
    return _normalize_backward(fn, gy, relu=False)


class GpuBatchNorm(BatchNorm):
    """The reference ``BatchNorm`` as five fused kernels forward, three backward."""

    def forward(self, x, gamma, beta):
        return batch_norm_forward(self, x, gamma, beta)

    def backward(self, gy):
        return batch_norm_backward(self, gy)


class GpuBatchNormReLU(BatchNorm):
    """relu(batch_norm(x)) as one Function: the ReLU costs no pass of its own either way."""

    def forward(self, x, gamma, beta):
        return _normalize(self, x, gamma, beta, relu=True)

    def backward(self, gy):
        return _normalize_backward(self, gy, relu=True)


def bn_relu(bn, x):
    """relu(bn(x)) for an ``nn.BatchNorm2d`` ``bn``: fused on the GPU; elsewhere, and for anything
    the fused Function does not take (another norm layer, a wrong shape or dtype), the two
    modules, which also give their own errors."""
    from .. import functional as F
    from ..nn import BatchNorm2d

    fused = (applies(x.data) and type(bn) is BatchNorm2d and x.ndim == 4
             and x.shape[1] == bn.num_features and x.dtype == bn.running_mean.dtype
             and backend.is_gpu_array(bn.running_mean) and (x.size // x.shape[1] > 1
                                                            or not bn.training))
    if not fused:
        return F.relu(bn(x))
    fn = GpuBatchNormReLU(bn.training, bn.running_mean, bn.running_var, bn.momentum, bn.eps)
    return fn(x, bn.weight, bn.bias)


# -- the residual addition + ReLU ---------------------------------------------------------------

class AddReLU(Function):
    """y = relu(a + b), the end of every residual block; both inputs get dy * [y > 0]."""

    def forward(self, a, b):
        self.y = backend.get_array_module(a).empty_like(a)  # a's layout: channel-major
        return kernel("ADD_RELU")(a, b, self.y)

    def backward(self, gy):
        g = kernel("RELU_DX")(gy, self.y, backend.get_array_module(gy).empty_like(gy))
        return g, g  # the same array for both: backward never writes into a gradient it got


def add_relu(a, b):
    """relu(a + b): one kernel on the GPU; ``F.relu(a + b)`` on the CPU."""
    from .. import functional as F

    if applies(a.data, b.data) and a.shape == b.shape:
        return AddReLU()(a, b)
    return F.relu(a + b)


def fusable(block):
    """True when ``basic_block``/``bottleneck`` compute what ``block.forward`` would: its norm
    layers and ReLU are the stock modules and no forward hook watches them (the convolutions and
    the shortcut are still called as modules)."""
    from ..nn import BatchNorm2d, ReLU

    parts = [getattr(block, n) for n in ("bn1", "bn2", "bn3", "relu") if hasattr(block, n)]
    return all(type(m) in (BatchNorm2d, ReLU) and not m._forward_hooks for m in parts)


def basic_block(block, x):
    """``BasicBlock.forward`` with the fused kernels (the same function, in fewer launches:
    ``benchmarks/gpu_calls.py`` counts them)."""
    out = bn_relu(block.bn1, block.conv1(x))
    out = block.bn2(block.conv2(out))
    identity = x if block.downsample is None else block.downsample(x)
    return add_relu(out, identity) if block.residual else block.relu(out)


def bottleneck(block, x):
    """``Bottleneck.forward`` with the fused kernels (the same function)."""
    out = bn_relu(block.bn1, block.conv1(x))
    out = bn_relu(block.bn2, block.conv2(out))
    out = block.bn3(block.conv3(out))
    identity = x if block.downsample is None else block.downsample(x)
    return add_relu(out, identity) if block.residual else block.relu(out)


# -- SGD ----------------------------------------------------------------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    """One parameter's SGD step in one kernel, in place: p (array), its gradient g, its velocity
    v (None before the first step); returns the velocity (None without momentum)."""
    xp = backend.get_array_module(p)
    if not momentum:
        kernel("SGD_PLAIN")(g, lr, weight_decay, p)
        return None
    first = v is None
    if first:
        v = xp.empty_like(p)
    kernel("SGD")(g, lr, momentum, weight_decay, int(first), int(nesterov), p, v)
    return v


def sgd_step(opt):
    """``SGD.step`` on the GPU: one kernel per parameter instead of six."""
    for i, p in enumerate(opt.params):
        if p.grad is None:
            continue
        opt.velocity[i] = sgd_update(p.data, p.grad, opt.velocity[i], opt.lr, opt.momentum,
                                     opt.weight_decay, opt.nesterov)


# -- the batch: uint8 up, normalised on the device ---------------------------------------------

def subtract_mean_uint8(images, mean):
    """``transforms.SubtractMean(mean)(images)`` for a uint8 batch already on the GPU: a quarter
    of the bytes of the float32 batch cross the bus, and the subtraction is one kernel (the same
    numbers: a uint8 is exact in float32, and the difference is one float32 rounding)."""
    xp = backend.get_array_module(images)
    mean = xp.asarray(mean, dtype=xp.float32)
    return kernel("SUBTRACT_MEAN_U8")(images, mean)
