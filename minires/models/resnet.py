"""ResNet (He, Zhang, Ren, Sun, 2015, "Deep Residual Learning for Image Recognition"), and plain
twins.

A residual block computes  y = F(x, {W_i}) + x          (eq. 1, identity shortcut)
                       or  y = F(x, {W_i}) + W_s x      (eq. 2, projection where shapes change)
then applies ReLU. F is two 3x3 convs (BasicBlock) or 1x1-3x3-1x1 (Bottleneck), each conv
followed by batch norm. Shortcut options (sec. 3.3, Table 3):

    "A"   identity; where the shape changes, subsample and pad with zero channels (no parameters)
    "B"   identity; where the shape changes, projection W_s = 1x1 conv (stride s) + BN
    "C"   projection on every block
    None  no shortcut at all: the "plain" network of the same depth (sec. 4.1)

ImageNet nets (Table 1): 7x7/2 conv, 3x3/2 max-pool, four stages of 64/128/256/512 planes
(x4 output channels for bottlenecks), global average pool, fc. CIFAR nets (sec. 4.2): 3x3 conv,
three stages of n blocks with 16/32/64 planes on 32/16/8 maps, global average pool, fc:
6n + 2 layers. Parameter names follow torchvision, so weights move between the two.

Normalisation and initialisation, as options of every builder (``models.resnet56(norm=None,
init="fixup")``; ``norm`` plays the part of torchvision's ``norm_layer``):

    norm="batch"     BatchNorm2d after every conv (the paper's; the default)
    norm=None        no normalisation: an Identity where each BN was (same names otherwise)
    init="he"        He initialisation, N(0, 2 / fan_out) (the paper's; the default)
    init="skipinit"  SkipInit (De and Smith 2020): y = ReLU(alpha F(x) + x), alpha a scalar at 0
    init="fixup"     Fixup (Zhang, Dauphin and Ma 2019): no normalisation; the last layer of each
                     branch and the classifier at 0, the other branch layers scaled by
                     L^(-1/(2m-2)), scalar biases and a scalar multiplier per branch
With init="skipinit" or "fixup", norm defaults to None (the papers'); the nets are in
``normfree.py``.
"""

from .. import functional as F
from .. import nn

SHORTCUTS = ("A", "B", "C", None)
NORMS = ("batch", None)
INITS = ("he", "skipinit", "fixup")


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def norm_layer(norm, planes):
    """The layer after a conv: ``BatchNorm2d(planes)``, or an Identity with ``norm=None``."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return nn.BatchNorm2d(planes) if norm == "batch" else nn.Identity()


def make_shortcut(option, in_planes, out_planes, stride, norm="batch"):
    """The module on the shortcut path, or None for the identity (and for plain nets)."""
    if option not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {option!r}")
    if option is None:
        return None
    if option == "C" or stride != 1 or in_planes != out_planes:
        if option == "A":
            return nn.PadChannels(out_planes, stride)
        return nn.Sequential(conv1x1(in_planes, out_planes, stride), norm_layer(norm, out_planes))
    return None


class BasicBlock(nn.Module):
    """F(x) = BN(conv3x3(ReLU(BN(conv3x3(x, stride))))); y = ReLU(F(x) + shortcut(x)).

    ``norm=None``: every BN an Identity, F(x) = conv3x3(ReLU(conv3x3(x, stride))).
    """

    expansion = 1

    def __init__(self, in_planes, planes, stride=1, shortcut="B", norm="batch"):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm_layer(norm, planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(norm, planes)
        self.downsample = make_shortcut(shortcut, in_planes, planes, stride, norm)
        self.residual = shortcut is not None
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)  # W_s x (options B/C) or zero padding (option A)
        if self.residual:
            # y = F(x, {W_i}) + x, eq. (1); + W_s x where shapes change, eq. (2)
            out = out + identity
        return self.relu(out)

    def last_bn(self):
        return self.bn2

    def residual_function(self, x):
        """F(x, {W_i}) of Eq. 1: the branch alone, before the sum and the final ReLU."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x):
        """The shortcut path alone: x, or W_s x / the option-A padding where the shape changes."""
        if not self.residual:
            raise ValueError("shortcut: a plain block (shortcut=None) has no shortcut path")
        return x if self.downsample is None else self.downsample(x)


class Bottleneck(nn.Module):
    """F(x) = BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x)))))))), out channels = 4 * planes.

    ``stride_in_1x1=True`` puts the stride on the first 1x1 conv, as in the paper's original
    models; False (torchvision's "ResNet v1.5") puts it on the 3x3 conv, which costs more
    mult-adds (4.09 vs 3.86 G for ResNet-50) and is a little more accurate. ``norm=None``: every
    BN an Identity.
    """

    expansion = 4

    def __init__(self, in_planes, planes, stride=1, shortcut="B", stride_in_1x1=False,
                 norm="batch"):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_planes, planes, s1)
        self.bn1 = norm_layer(norm, planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = norm_layer(norm, planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(norm, planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride,
                                        norm)
        self.residual = shortcut is not None
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)  # W_s x (options B/C) or zero padding (option A)
        if self.residual:
            # y = F(x, {W_i}) + x, eq. (1); + W_s x where shapes change, eq. (2)
            out = out + identity
        return self.relu(out)

    def last_bn(self):
        return self.bn3

    def residual_function(self, x):
        """F(x, {W_i}) of Eq. 1: the 1x1-3x3-1x1 branch alone, before the sum and the final ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x):
        """The shortcut path alone: x, or W_s x / the option-A padding where the shape changes."""
        if not self.residual:
            raise ValueError("shortcut: a plain block (shortcut=None) has no shortcut path")
        return x if self.downsample is None else self.downsample(x)


class ResNet(nn.Module):
    """A ResNet (or, with ``shortcut=None``, its plain twin).

    block: BasicBlock or Bottleneck; layers: blocks per stage, e.g. [3, 4, 6, 3];
    stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool, planes 64/128/256/512) or
    "cifar" (3x3 conv, planes 16/32/64); zero_init_residual: start the last BN of every
    residual branch at weight 0, so each block starts as the identity; norm: "batch" or None
    (no normalisation, an Identity where each BN was). The SkipInit and Fixup nets, which the
    builders' ``init`` option makes, are subclasses (``normfree.py``).
    """

    def __init__(
        self,
        block,
        layers,
        num_classes=1000,
        stem="imagenet",
        shortcut="B",
        in_channels=3,
        zero_init_residual=False,
        stride_in_1x1=False,
        widths=None,
        norm="batch",
    ):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if zero_init_residual and norm is None:
            raise ValueError("zero_init_residual zeroes the last BN of each branch, and norm=None "
                             "has none: use init='skipinit' or init='fixup'")
        widths = widths or ((64, 128, 256, 512) if stem == "imagenet" else (16, 32, 64))
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have the same length")
        # Bottleneck units (expansion > 1, the original or a variant) take the stride position.
        self.block_kwargs = {"stride_in_1x1": stride_in_1x1} if block.expansion > 1 else {}
        if isinstance(block, type) and issubclass(block, (BasicBlock, Bottleneck)):
            # (pre-activation units and factories of variant units take no norm)
            self.block_kwargs["norm"] = norm
        self.shortcut = shortcut
        self.in_planes = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = norm_layer(norm, widths[0])
        self.relu = nn.ReLU()
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.maxpool = None
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            setattr(
                self,
                f"layer{i + 1}",
                self._make_layer(block, planes, blocks, stride=1 if i == 0 else 2),
            )
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and m.residual:
                    nn.init.zeros_(m.last_bn().weight)

    def _make_layer(self, block, planes, blocks, stride):
        """One stage: the first block changes the stride/width, the rest keep them."""
        layers = []
        for b in range(blocks):
            layers.append(
                block(
                    self.in_planes,
                    planes,
                    stride if b == 0 else 1,
                    self.shortcut,
                    **self.block_kwargs,
                )
            )
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def stages(self):
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for stage in self.stages():
            x = stage(x)
        x = F.flatten(self.avgpool(x))
        return self.fc(x)


# -- ImageNet nets (Table 1): projection shortcuts where shapes change (option B) ------------------


def build(block, layers, init="he", **kwargs):
    """``ResNet(block, layers, **kwargs)``; with ``init="skipinit"`` or ``"fixup"`` the SkipInit or
    Fixup net of ``normfree.py`` (a subclass) with the same arguments."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "he":
        return ResNet(block, layers, **kwargs)
    from . import normfree  # imported here: normfree.py builds on the blocks of this file

    return normfree.NETS[init](block, layers, **kwargs)


def _imagenet(block, layers, shortcut, num_classes, kwargs):
    return build(
        block, layers, num_classes=num_classes, stem="imagenet", shortcut=shortcut, **kwargs
    )


def resnet18(num_classes=1000, shortcut="B", **kw):
    return _imagenet(BasicBlock, [2, 2, 2, 2], shortcut, num_classes, kw)


def resnet34(num_classes=1000, shortcut="B", **kw):
    return _imagenet(BasicBlock, [3, 4, 6, 3], shortcut, num_classes, kw)


def resnet50(num_classes=1000, shortcut="B", **kw):
    return _imagenet(Bottleneck, [3, 4, 6, 3], shortcut, num_classes, kw)


def resnet101(num_classes=1000, shortcut="B", **kw):
    return _imagenet(Bottleneck, [3, 4, 23, 3], shortcut, num_classes, kw)


def resnet152(num_classes=1000, shortcut="B", **kw):
    return _imagenet(Bottleneck, [3, 8, 36, 3], shortcut, num_classes, kw)


def plain18(num_classes=1000, **kw):
    return _imagenet(BasicBlock, [2, 2, 2, 2], None, num_classes, kw)


def plain34(num_classes=1000, **kw):
    return _imagenet(BasicBlock, [3, 4, 6, 3], None, num_classes, kw)


def plain50(num_classes=1000, **kw):
    return _imagenet(Bottleneck, [3, 4, 6, 3], None, num_classes, kw)


def plain101(num_classes=1000, **kw):
    return _imagenet(Bottleneck, [3, 4, 23, 3], None, num_classes, kw)


def plain152(num_classes=1000, **kw):
    return _imagenet(Bottleneck, [3, 8, 36, 3], None, num_classes, kw)


# -- CIFAR nets (sec. 4.2): 6n + 2 layers, option A shortcuts --------------------------------------


def cifar_resnet(depth, num_classes=10, shortcut="A", **kw):
    """The CIFAR-10 ResNet with ``depth`` = 6n + 2 layers (n BasicBlocks per stage)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}"
        )
    n = (depth - 2) // 6
    return build(
        BasicBlock, [n, n, n], num_classes=num_classes, stem="cifar", shortcut=shortcut, **kw
    )


def resnet20(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(20, num_classes, shortcut, **kw)


def resnet32(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(32, num_classes, shortcut, **kw)


def resnet44(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(44, num_classes, shortcut, **kw)


def resnet56(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(56, num_classes, shortcut, **kw)


def resnet110(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(110, num_classes, shortcut, **kw)


def resnet1202(num_classes=10, shortcut="A", **kw):
    return cifar_resnet(1202, num_classes, shortcut, **kw)


def plain20(num_classes=10, **kw):
    return cifar_resnet(20, num_classes, None, **kw)


def plain32(num_classes=10, **kw):
    return cifar_resnet(32, num_classes, None, **kw)


def plain44(num_classes=10, **kw):
    return cifar_resnet(44, num_classes, None, **kw)


def plain56(num_classes=10, **kw):
    return cifar_resnet(56, num_classes, None, **kw)


def plain110(num_classes=10, **kw):
    return cifar_resnet(110, num_classes, None, **kw)


BUILDERS = {
    f.__name__: f
    for f in (
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
        plain18,
        plain34,
        plain50,
        plain101,
        plain152,
        resnet20,
        resnet32,
        resnet44,
        resnet56,
        resnet110,
        resnet1202,
        plain20,
        plain32,
        plain44,
        plain56,
        plain110,
    )
}


def get_model(name, **kwargs):
    """Build a model by name (``"resnet20"``, ``"plain56"``, ``"resnet50"``, ...)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(BUILDERS)}")
    return BUILDERS[name](**kwargs)
