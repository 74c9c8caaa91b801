"""PyTorch counterparts of minires's CIFAR ResNets, for the step, inference and memory benchmarks.

Imported only when torch is installed. The network is the paper's CIFAR ResNet (sec. 4.2) with
the option-A shortcut laid out exactly as minires's (subsample, then the new channels are zeros
*after* the old ones), and parameter names equal to minires's, so the same weights can be loaded
into both and their losses and gradients compared before any timing.
"""
import torch
import torch.nn.functional as F
from torch import nn


class PadChannels(nn.Module):
    """Option-A shortcut: x[:, :, ::s, ::s], then zero channels up to ``out_channels``."""

    def __init__(self, out_channels, stride):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        # F.pad pads the last axes first: (W left, W right, H left, H right, C front, C back).
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or in_planes != planes
        self.downsample = PadChannels(planes, stride) if changes else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    """6n + 2 layers: 3x3 conv, three stages of n blocks (16/32/64 planes), global avg pool, fc."""

    def __init__(self, depth, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = [BasicBlock(in_planes if b == 0 else planes, planes,
                                 (1 if i == 0 else 2) if b == 0 else 1)
                      for b in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_planes = planes
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def copy_weights_from_minires(model, state_dict):
    """Load a minires ``state_dict()`` (NumPy arrays, same names) into the torch ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError(f"minires state_dict lacks {missing[:5]}...")
    with torch.no_grad():
        for k, t in own.items():
            if k in state_dict:
                t.copy_(torch.from_numpy(state_dict[k]))
