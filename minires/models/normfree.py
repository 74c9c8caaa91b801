"""Residual networks without normalisation: SkipInit and Fixup, as options of every builder.

    models.resnet56(norm=None, init="skipinit")     De and Smith 2020
    models.resnet56(norm=None, init="fixup")        Zhang, Dauphin and Ma 2019

(``norm`` reads as torchvision's ``norm_layer``, ``init`` as an initialisation scheme; the default,
``init="he"``, is the paper's ResNet, with ``norm="batch"``. With ``init="skipinit"`` or
``"fixup"``, ``norm`` defaults to None, as in the papers, and may be left out.)

Why a ResNet needs either: at initialisation a block computes x_{l+1} = x_l + F(x_l), and with
He-initialised convs and no batch norm the branch keeps the size of its input, Var F(x_l) ~
Var x_l, so Var x_{l+1} ~ 2 Var x_l: the signal doubles at every block, 2^L over L blocks. With
batch norm at the end of each branch, Var F(x_l) = 1 whatever x_l, so Var x_l grows by about one
per block (linearly), and the branch's share of the stream, sqrt(Var F / Var x_l) ~ 1/sqrt(l),
shrinks with depth: the deep net starts close to the identity (De and Smith 2020, "Batch
normalization biases residual blocks towards the identity function in deep networks"). SkipInit
and Fixup start each block at exactly the identity instead.

SkipInit (De and Smith 2020, sec. 4): a learnable scalar alpha at the end of each branch, 0 at
initialisation, no normalisation:

    y = ReLU(alpha F(x) + shortcut(x)),   alpha = 0 at init, so y = ReLU(x) = x (x >= 0)

Fixup (Zhang, Dauphin and Ma 2019, "Fixup initialization: residual learning without
normalization", sec. 3), for L residual branches of m layers each (m = 2 in a BasicBlock, 3 in a
Bottleneck), no normalisation:

    1. the classification layer and the last layer of each residual branch start at 0;
    2. every other layer of a branch starts He-initialised, then scaled by L^(-1/(2m-2))
       (L^-1/2 for BasicBlocks, L^-1/4 for Bottlenecks);
    3. a scalar multiplier (at 1) on each branch, and a scalar bias (at 0) before each conv,
       linear and element-wise activation:

       F(x) = scale * conv2(ReLU(conv1(x + b1a) + b1b) + b2a) + b2b       (BasicBlock, Fig. 1)
       y    = ReLU(F(x) + shortcut(x))          shortcut(x + b1a) where it changes the shape
       net  = fc(avgpool(stages(ReLU(conv1(x) + bias1))) + bias2)

The scalars are arrays of shape (1,), as in the authors' code (``hongyi-zhang/Fixup``), which also
adds b1a to the input of a shortcut only where the shortcut downsamples; so does this one. That
code also trains the scalars at a tenth of the learning rate; ``optim.SGD`` has one rate for every
parameter (what that changes: ``experiments/normfree.py``'s PROTOCOL).
Every block stays a ``BasicBlock`` / ``Bottleneck`` (a subclass), with the same conv names and
``residual_function`` (what is added to the shortcut) and ``shortcut`` methods.
"""

import numpy as np

from .. import functional as F
from .. import nn
from .resnet import BasicBlock, Bottleneck, ResNet


def scalar(value):
    """A learnable scalar of shape (1,), starting at ``value``."""
    return nn.Parameter(np.full(1, value, dtype=np.float32))


def _needs_shortcuts(block):
    if not block.residual:
        raise ValueError(f"{type(block).__name__}: SkipInit and Fixup scale residual branches, "
                         "and a plain net (shortcut=None) has none")


# -- SkipInit ----------------------------------------------------------------------------------


class SkipInit:
    """The SkipInit part of a block: y = ReLU(alpha F(x) + shortcut(x)), alpha at 0."""

    def _add_alpha(self):
        _needs_shortcuts(self)
        self.alpha = scalar(0.0)

    def residual_function(self, x):
        """alpha F(x): the branch as it is added to the shortcut."""
        return self.alpha * super().residual_function(x)

    def forward(self, x):
        return self.relu(self.residual_function(x) + self.shortcut(x))


class SkipInitBasicBlock(SkipInit, BasicBlock):
    """A BasicBlock whose branch is scaled by alpha (0 at init): y = ReLU(alpha F(x) + x); no
    normalisation unless ``norm="batch"``."""

    def __init__(self, in_planes, planes, stride=1, shortcut="B", norm=None):
        super().__init__(in_planes, planes, stride, shortcut, norm=norm)
        self._add_alpha()


class SkipInitBottleneck(SkipInit, Bottleneck):
    """A Bottleneck whose branch is scaled by alpha (0 at init): y = ReLU(alpha F(x) + x); no
    normalisation unless ``norm="batch"``."""

    def __init__(self, in_planes, planes, stride=1, shortcut="B", stride_in_1x1=False,
                 norm=None):
        super().__init__(in_planes, planes, stride, shortcut, stride_in_1x1, norm=norm)
        self._add_alpha()


class SkipInitResNet(ResNet):
    """``ResNet`` built from SkipInit blocks, with no normalisation by default, as De and Smith's
    (``norm="batch"`` keeps the BNs, and alpha multiplies the branch's last BN); every other
    argument as ``ResNet``'s."""

    BLOCKS = {BasicBlock: SkipInitBasicBlock, Bottleneck: SkipInitBottleneck}

    def __init__(self, block, layers, norm=None, **kwargs):
        super().__init__(self.BLOCKS.get(block, block), layers, norm=norm, **kwargs)


# -- Fixup -------------------------------------------------------------------------------------


class Fixup:
    """The Fixup part of a block: the scalar biases and multiplier, the shortcut on x + b1a where
    it changes the shape, and ``branch_convs`` (the branch's layers, in order, for the init)."""

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x + self.bias1a)

    def forward(self, x):
        return self.relu(self.residual_function(x) + self.shortcut(x))


def _no_norm(cls, norm):
    if norm is not None:
        raise ValueError(f"{cls.__name__}: Fixup replaces normalisation by scalar biases and "
                         f"multipliers; build it with norm=None, got norm={norm!r}")


class FixupBasicBlock(Fixup, BasicBlock):
    """F(x) = scale * conv2(ReLU(conv1(x + b1a) + b1b) + b2a) + b2b; y = ReLU(F(x) + shortcut)."""

    def __init__(self, in_planes, planes, stride=1, shortcut="B", norm=None):
        _no_norm(type(self), norm)
        super().__init__(in_planes, planes, stride, shortcut, norm=None)
        _needs_shortcuts(self)
        self.bias1a, self.bias1b, self.bias2a = scalar(0.0), scalar(0.0), scalar(0.0)
        self.scale, self.bias2b = scalar(1.0), scalar(0.0)

    def branch_convs(self):
        return [self.conv1, self.conv2]

    def residual_function(self, x):
        out = self.relu(self.conv1(x + self.bias1a) + self.bias1b)
        return self.conv2(out + self.bias2a) * self.scale + self.bias2b


class FixupBottleneck(Fixup, Bottleneck):
    """F(x) = scale * conv3(ReLU(conv2(ReLU(conv1(x + b1a) + b1b) + b2a) + b2b) + b3a) + b3b."""

    def __init__(self, in_planes, planes, stride=1, shortcut="B", stride_in_1x1=False,
                 norm=None):
        _no_norm(type(self), norm)
        super().__init__(in_planes, planes, stride, shortcut, stride_in_1x1, norm=None)
        _needs_shortcuts(self)
        self.bias1a, self.bias1b, self.bias2a = scalar(0.0), scalar(0.0), scalar(0.0)
        self.bias2b, self.bias3a = scalar(0.0), scalar(0.0)
        self.scale, self.bias3b = scalar(1.0), scalar(0.0)

    def branch_convs(self):
        return [self.conv1, self.conv2, self.conv3]

    def residual_function(self, x):
        out = self.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.relu(self.conv2(out + self.bias2a) + self.bias2b)
        return self.conv3(out + self.bias3a) * self.scale + self.bias3b


class FixupResNet(ResNet):
    """``ResNet`` built from Fixup blocks, with no normalisation (``norm`` must be None), the
    stem's and classifier's scalar biases, and Fixup's initialisation (rules 1-3 above)."""

    BLOCKS = {BasicBlock: FixupBasicBlock, Bottleneck: FixupBottleneck}

    def __init__(self, block, layers, norm=None, **kwargs):
        _no_norm(type(self), norm)
        if kwargs.get("zero_init_residual"):
            raise ValueError("FixupResNet: Fixup already starts every branch at zero (rule 1); "
                             "zero_init_residual is for batch-norm nets")
        super().__init__(self.BLOCKS.get(block, block), layers, norm=None, **kwargs)
        self.bias1 = scalar(0.0)  # after the stem conv, before its ReLU
        self.bias2 = scalar(0.0)  # before the classifier
        self.num_branches = sum(layers)
        fixup_init_(self)

    def forward(self, x):
        x = self.relu(self.conv1(x) + self.bias1)
        if self.maxpool is not None:
            x = self.maxpool(x)
        for stage in self.stages():
            x = stage(x)
        x = F.flatten(self.avgpool(x))
        return self.fc(x + self.bias2)


def fixup_init_(model):
    """Fixup's rules 1 and 2, in place: with L = ``model.num_branches`` and m = layers per branch,
    the branch layers but the last are scaled by L^(-1/(2m-2)) (they are He-initialised already:
    the result is N(0, 2/fan_out * L^(-1/(m-1)))), the last layer of every branch and the
    classifier (weight and bias) set to 0. Returns ``model``."""
    L = model.num_branches
    for m in model.modules():
        if isinstance(m, Fixup):
            convs = m.branch_convs()
            factor = L ** (-1.0 / (2 * len(convs) - 2))
            for conv in convs[:-1]:
                conv.weight.data *= factor
            nn.init.zeros_(convs[-1].weight)
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    return model


NETS = {"skipinit": SkipInitResNet, "fixup": FixupResNet}
