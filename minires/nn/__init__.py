"""Layers as modules, named as in PyTorch so a model reads the same in both."""

from . import init
from .activation import ReLU
from .container import Identity, Sequential
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .module import Module, Parameter
from .norm import BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .shortcut import PadChannels

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "Identity",
    "Conv2d",
    "BatchNorm2d",
    "ReLU",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "GlobalAvgPool2d",
    "Flatten",
    "PadChannels",
    "init",
]
