"""The networks of the paper: ResNets, their plain twins, and ``summary``."""
from .resnet import (BUILDERS, SHORTCUTS, BasicBlock, Bottleneck, ResNet, cifar_resnet, get_model, plain18,
                     plain20, plain32, plain34, plain44, plain50, plain56, plain101, plain110, plain152,
                     resnet18, resnet20, resnet32, resnet34, resnet44, resnet50, resnet56, resnet101,
                     resnet110, resnet152, resnet1202)
from .summary import Summary, summary
