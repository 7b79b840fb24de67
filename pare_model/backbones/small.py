"""A narrow ResNet-18 for CPU experiments: fast enough to train on a laptop, deep enough to see a whole body.

BasicBlocks ``[2, 2, 2, 2]`` with widths 16, 32, 64, 128 (ResNet-18 has 64..512): about 0.7 M
parameters and 1/16 of ResNet-18's compute. (B, 3, H, W) -> (B, 128, H / 32, W / 32); PARE's
head brings it to stride 4 with transposed convolutions, as for ResNet-50. Its receptive field
covers the whole crop, unlike the test-only ``debug`` backbone. Not a model for real accuracy:
use ``hrnet_w32`` (as released) or ``resnet50`` for that.
"""

from __future__ import annotations

import torch
from torch import nn

from pare_model.backbones.base import Backbone, FeatureInfo
from pare_model.backbones.blocks import BN_MOMENTUM, BasicBlock, conv3x3, projection

WIDTHS = (16, 32, 64, 128)
BLOCKS = (2, 2, 2, 2)


class DownBlock(nn.Module):
    """A strided residual block with a projection shortcut: (B, C_in, H, W) -> (B, C_out, H / s, W / s)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.downsample = projection(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + self.downsample(x))


class SmallResNet(Backbone):
    """Narrow ResNet-18 trunk: (B, 3, H, W) -> (B, 128, H / 32, W / 32)."""

    expected_weights = "a state dict saved from this backbone"

    def __init__(self, widths: tuple[int, ...] = WIDTHS, blocks: tuple[int, ...] = BLOCKS) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0], momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        layers, in_channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if index == 0 else 2
            first = BasicBlock(width) if stride == 1 and in_channels == width else DownBlock(in_channels, width, stride)
            stage = [first] + [BasicBlock(width) for _ in range(count - 1)]
            layers.append(nn.Sequential(*stage))
            in_channels = width
        self.layers = nn.Sequential(*layers)
        self.feature_info = FeatureInfo(channels=in_channels, stride=32)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(images))


def resnet_small() -> SmallResNet:
    """The narrow ResNet-18 (128 x 7 x 7 for a 224 input)."""
    return SmallResNet()
