"""A tiny backbone for fast tests only: never use it for training or evaluation."""

from __future__ import annotations

import torch
from torch import nn

from pare_model.backbones.base import Backbone, FeatureInfo
from pare_model.backbones.blocks import BN_MOMENTUM, conv3x3

HIDDEN_CHANNELS = 16


class DebugBackbone(Backbone):
    """TEST-ONLY. Two stride-2 [3x3 conv, BN, ReLU] and a 1x1 conv: (B, 3, H, W) -> (B, C, H/4, W/4).

    It has HRNet's output stride, so heads take their stride-4 path, at a tiny fraction of the
    cost. ``out_channels=480`` mimics HRNet-W32's channel count.
    """

    expected_weights = "a state dict saved from this test-only debug backbone"

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv3x3(3, HIDDEN_CHANNELS, stride=2),
            nn.BatchNorm2d(HIDDEN_CHANNELS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            conv3x3(HIDDEN_CHANNELS, HIDDEN_CHANNELS, stride=2),
            nn.BatchNorm2d(HIDDEN_CHANNELS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(HIDDEN_CHANNELS, out_channels, kernel_size=1),
        )
        self.feature_info = FeatureInfo(channels=out_channels, stride=4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)  # (B, C, H/4, W/4)


def debug(out_channels: int = 64) -> DebugBackbone:
    """The test-only debug backbone (64 channels at stride 4 by default)."""
    return DebugBackbone(out_channels)
