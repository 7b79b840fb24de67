"""Residual blocks shared by HRNet and ResNet-50.

Attribute names (``conv1``, ``bn1``, ..., ``downsample``) follow torchvision and the original
HRNet code, so that their weight files load without renaming. The bottleneck puts its stride
on the 3x3 convolution (torchvision's "ResNet v1.5").
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.1
"""BatchNorm momentum of the original HRNet and PARE code (PyTorch's default); eps stays 1e-5."""


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Shortcut projection [1x1 conv (no bias), BN]; keys ``downsample.0`` and ``downsample.1``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut: (B, C, H, W) -> (B, C, H, W)."""

    expansion = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4: (B, C_in, H, W) -> (B, 4 * width, H / s, W / s).

    A projection shortcut (``downsample``) is created when the stride or the channel count
    changes, exactly where torchvision and HRNet create one.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_channels != out_channels
        self.downsample = projection(in_channels, out_channels, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def make_bottleneck_layer(in_channels: int, width: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """``num_blocks`` bottlenecks; the first one strides and projects (keys ``0.downsample.*``)."""
    blocks = [Bottleneck(in_channels, width, stride)]
    blocks += [Bottleneck(width * Bottleneck.expansion, width) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)
