"""The networks of the paper: ResNets, their plain twins, ``summary``; SkipInit and Fixup nets
(``norm=None, init="skipinit" | "fixup"``) without batch norm."""

from .resnet import (
    BUILDERS,
    SHORTCUTS,
    BasicBlock,
    Bottleneck,
    ResNet,
    cifar_resnet,
    get_model,
    plain18,
    plain20,
    plain32,
    plain34,
    plain44,
    plain50,
    plain56,
    plain101,
    plain110,
    plain152,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet44,
    resnet50,
    resnet56,
    resnet101,
    resnet110,
    resnet152,
    resnet1202,
)
from .summary import Summary, summary
from .normfree import (
    FixupBasicBlock,
    FixupBottleneck,
    FixupResNet,
    SkipInitBasicBlock,
    SkipInitBottleneck,
    SkipInitResNet,
    fixup_init_,
)
from .preact import (
    PreActBlock,
    PreActBottleneck,
    PreActResNet,
    cifar_preact_resnet,
    preact_resnet18,
    preact_resnet20,
    preact_resnet32,
    preact_resnet34,
    preact_resnet44,
    preact_resnet50,
    preact_resnet56,
    preact_resnet101,
    preact_resnet110,
    preact_resnet152,
    preact_resnet164,
    preact_resnet1001,
)
from .preact import BUILDERS as _PREACT_BUILDERS

BUILDERS.update(_PREACT_BUILDERS)  # one registry: get_model, train --model and summary see them all
