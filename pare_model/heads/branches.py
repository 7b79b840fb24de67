"""The two feature branches of the PARE head, brought to 1/4 of the input resolution.

A stride-4 backbone (HRNet with "conv" fusion, 56 x 56 for 224 input) gets plain 3x3 conv
blocks; a coarser backbone (ResNet-50, stride 32) gets one stride-2 transposed convolution per
halving of the stride (3 for ResNet-50). The layer order inside each block is
[conv, BN, ReLU], so the Sequential indices match the original checkpoints' keys.
"""

from __future__ import annotations

import math

from torch import nn

from pare_model.backbones.deconv import make_deconv_layers

TARGET_STRIDE = 4
BN_MOMENTUM = 0.1
DEFAULT_CONV_FILTERS = 128
DEFAULT_CONV_LAYERS = 2
DEFAULT_DECONV_FILTERS = 256


def make_conv_layers(in_channels: int, num_layers: int, num_filters: int) -> nn.Sequential:
    """``num_layers`` x [3x3 conv (no bias), BN, ReLU] at constant resolution."""
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [
            nn.Conv2d(in_channels, num_filters, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(num_filters, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        in_channels = num_filters
    return nn.Sequential(*layers)


def make_branch(in_channels: int, stride: int, num_filters: int | None = None) -> tuple[nn.Sequential, int]:
    """A branch taking stride-``stride`` features to stride 4; returns it and its channels."""
    if stride == TARGET_STRIDE:
        filters = num_filters or DEFAULT_CONV_FILTERS
        return make_conv_layers(in_channels, DEFAULT_CONV_LAYERS, filters), filters
    num_doublings = math.log2(stride / TARGET_STRIDE)
    if stride < TARGET_STRIDE or not num_doublings.is_integer():
        raise ValueError(f"the PARE head needs a backbone stride of 4 x 2^k, got {stride}")
    filters = num_filters or DEFAULT_DECONV_FILTERS
    return make_deconv_layers(in_channels, num_layers=int(num_doublings), num_filters=filters), filters
