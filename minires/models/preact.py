"""Pre-activation ResNets (He, Zhang, Ren, Sun, 2016, "Identity Mappings in Deep Residual
Networks").

The original unit (Fig. 4(a)) adds the shortcut and then applies ReLU, so the signal from one unit
to the next passes a ReLU. The full pre-activation unit (Fig. 4(e)) moves batch norm and ReLU in
front of each convolution and leaves *nothing* after the addition:

    x_{l+1} = x_l + F(x_l, W_l),   F = conv(ReLU(BN(conv(ReLU(BN(x_l))))))        (eq. 3)

so, unrolled from any shallower unit l to any deeper unit L,

    x_L = x_l + sum_{i=l}^{L-1} F(x_i, W_i)                                        (eq. 4)
    dE/dx_l = dE/dx_L (1 + d/dx_l sum_{i=l}^{L-1} F(x_i, W_i))                      (eq. 5)

the forward signal and the gradient reach every unit directly, through identities only.

Two special cases follow from moving the activations (sec. 4.1, Fig. 5): the first unit's BN and
ReLU come right after the stand-alone conv1, before the signal splits into the two paths (where
the first unit has a projection shortcut, that projection reads the pre-activated input); and
an extra BN + ReLU follows the last addition, before the average pooling and the classifier
(``bn_final``, ``relu``).

CIFAR nets (sec. 5): 3x3 conv, three stages of basic units with 16/32/64 planes (6n + 2 layers,
``preact_resnet20`` ... ``preact_resnet110``, shortcut option A as in the original CIFAR nets), or
of bottleneck units with 64/128/256 output planes (9n + 2 layers, ``preact_resnet164``: n = 18,
1.7M parameters; ``preact_resnet1001``: n = 111, 10.2M parameters; projection shortcuts, a 1x1
conv, where the shape changes). ImageNet nets (``preact_resnet18`` ... ``152``): the stem, stages
and parameter names of ``resnet.py``'s torchvision-style nets, with pre-activation units.
"""

from .. import functional as F
from .. import nn
from .resnet import SHORTCUTS, ResNet, conv1x1, conv3x3


def preact_shortcut(option, in_planes, out_planes, stride):
    """The module on the shortcut path of a pre-activation unit, or None for the identity.

    "A": zero-padding where the shape changes (no parameters); "B": a 1x1 conv (stride s) where it
    changes; "C": a 1x1 conv on every unit; None: no shortcut (a plain net). Unlike the original
    unit's projection, it has no BN after it: nothing but this conv stands on the shortcut path.
    """
    if option not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {option!r}")
    if option is None:
        return None
    if option == "C" or stride != 1 or in_planes != out_planes:
        return (
            nn.PadChannels(out_planes, stride)
            if option == "A"
            else conv1x1(in_planes, out_planes, stride)
        )
    return None


class PreActBlock(nn.Module):
    """Full pre-activation basic unit (Fig. 4(e)):
    y = x + conv3x3(ReLU(BN(conv3x3(ReLU(BN(x)), stride)))).

    Nothing follows the addition. A projection shortcut (a conv) reads ReLU(BN(x)), the activation
    shared by both paths; the identity and the option-A shortcut carry x itself.
    """

    expansion = 1

    def __init__(self, in_planes, planes, stride=1, shortcut="A"):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = preact_shortcut(shortcut, in_planes, planes, stride)
        self.residual = shortcut is not None
        self.stride = stride

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if not self.residual:
            return out
        return out + shortcut_input(self.downsample, x, pre)

    def last_conv(self):
        return self.conv2


class PreActBottleneck(nn.Module):
    """Full pre-activation bottleneck unit (sec. 5): three times BN -> ReLU -> conv, 1x1, 3x3, 1x1.

    y = x + conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(ReLU(BN(x))))))))), out channels = 4 * planes.
    ``stride_in_1x1`` as in ``resnet.Bottleneck`` (False: the stride on the 3x3 conv).
    """

    expansion = 4

    def __init__(self, in_planes, planes, stride=1, shortcut="B", stride_in_1x1=False):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.conv1 = conv1x1(in_planes, planes, s1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = preact_shortcut(shortcut, in_planes, planes * self.expansion, stride)
        self.residual = shortcut is not None
        self.stride = stride

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        out = self.conv3(self.relu(self.bn3(out)))
        if not self.residual:
            return out
        return out + shortcut_input(self.downsample, x, pre)

    def last_conv(self):
        return self.conv3


def shortcut_input(downsample, x, pre):
    """What a pre-activation unit adds: x (identity), the zero-padded x (option A), or the
    projection of the pre-activated input ``pre`` (the first activation shared by both paths,
    sec. 4.1)."""
    if downsample is None:
        return x
    if isinstance(downsample, nn.PadChannels):
        return downsample(x)
    return downsample(pre)


class PreActResNet(ResNet):
    """A pre-activation ResNet: the stages of ``ResNet`` built from pre-activation units, then
    BN + ReLU.

    block: PreActBlock or PreActBottleneck (or any unit with the same constructor that expects
    raw, un-normalised input); stem "cifar": conv1 alone, its BN and ReLU being the first unit's;
    stem "imagenet": conv1, bn1, ReLU and the max-pool of ``ResNet``. ``zero_init_residual`` starts
    the last conv of every residual branch at zero, so every unit starts as the identity.
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
    ):
        super().__init__(
            block,
            layers,
            num_classes=num_classes,
            stem=stem,
            shortcut=shortcut,
            in_channels=in_channels,
            stride_in_1x1=stride_in_1x1,
            widths=widths,
        )
        if stem == "cifar":
            self.bn1 = None  # the first unit's bn1 normalises conv1's output
        avgpool, fc = self.avgpool, self.fc
        # re-registered below, so that the modules are listed in forward order
        del self.avgpool, self.fc
        self.bn_final = nn.BatchNorm2d(self.in_planes)
        self.avgpool, self.fc = avgpool, fc
        if zero_init_residual:
            for m in self.modules():
                if getattr(m, "residual", False) and hasattr(m, "last_conv"):
                    nn.init.zeros_(m.last_conv().weight)

    def forward(self, x):
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for stage in self.stages():
            x = stage(x)
        x = self.relu(self.bn_final(x))  # the extra activation after the last addition (sec. 4.1)
        return self.fc(F.flatten(self.avgpool(x)))


# -- CIFAR nets (sec. 5) ---------------------------------------------------------------------------


def cifar_preact_resnet(depth, num_classes=10, shortcut="auto", bottleneck=None, **kw):
    """The pre-activation CIFAR ResNet with ``depth`` layers.

    Basic units (the default below 164 layers): depth = 6n + 2, planes 16/32/64, shortcut "A".
    Bottleneck units (``bottleneck=True``, the default from 164 layers on): depth = 9n + 2,
    bottleneck planes 16/32/64 (outputs 64/128/256), shortcut "B" (1x1 conv where the shape
    changes). ``shortcut="auto"`` picks these; "A", "B", "C" or None (no shortcut) choose another.
    """
    if bottleneck is None:
        bottleneck = depth >= 164
    per_unit = 9 if bottleneck else 6
    if depth < per_unit + 2 or (depth - 2) % per_unit:
        kind = (
            "9n + 2 (164, 1001, ...) for bottleneck"
            if bottleneck
            else "6n + 2 (20, 32, 44, 56, 110, ...) for basic"
        )
        raise ValueError(f"pre-activation CIFAR ResNet depth must be {kind} units, got {depth}")
    n = (depth - 2) // per_unit
    block = PreActBottleneck if bottleneck else PreActBlock
    if shortcut == "auto":
        shortcut = "B" if bottleneck else "A"
    return PreActResNet(
        block, [n, n, n], num_classes=num_classes, stem="cifar", shortcut=shortcut, **kw
    )


def preact_resnet20(num_classes=10, **kw):
    return cifar_preact_resnet(20, num_classes, **kw)


def preact_resnet32(num_classes=10, **kw):
    return cifar_preact_resnet(32, num_classes, **kw)


def preact_resnet44(num_classes=10, **kw):
    return cifar_preact_resnet(44, num_classes, **kw)


def preact_resnet56(num_classes=10, **kw):
    return cifar_preact_resnet(56, num_classes, **kw)


def preact_resnet110(num_classes=10, **kw):
    return cifar_preact_resnet(110, num_classes, **kw)


def preact_resnet164(num_classes=10, **kw):
    return cifar_preact_resnet(164, num_classes, **kw)


def preact_resnet1001(num_classes=10, **kw):
    return cifar_preact_resnet(1001, num_classes, **kw)


# -- ImageNet nets: the torchvision-style layout of resnet.py with pre-activation units ------------


def _imagenet(block, layers, num_classes, kw):
    return PreActResNet(
        block, layers, num_classes=num_classes, stem="imagenet", **{"shortcut": "B", **kw}
    )


def preact_resnet18(num_classes=1000, **kw):
    return _imagenet(PreActBlock, [2, 2, 2, 2], num_classes, kw)


def preact_resnet34(num_classes=1000, **kw):
    return _imagenet(PreActBlock, [3, 4, 6, 3], num_classes, kw)


def preact_resnet50(num_classes=1000, **kw):
    return _imagenet(PreActBottleneck, [3, 4, 6, 3], num_classes, kw)


def preact_resnet101(num_classes=1000, **kw):
    return _imagenet(PreActBottleneck, [3, 4, 23, 3], num_classes, kw)


def preact_resnet152(num_classes=1000, **kw):
    return _imagenet(PreActBottleneck, [3, 8, 36, 3], num_classes, kw)


BUILDERS = {
    f.__name__: f
    for f in (
        preact_resnet20,
        preact_resnet32,
        preact_resnet44,
        preact_resnet56,
        preact_resnet110,
        preact_resnet164,
        preact_resnet1001,
        preact_resnet18,
        preact_resnet34,
        preact_resnet50,
        preact_resnet101,
        preact_resnet152,
    )
}
