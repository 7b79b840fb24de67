"""ResNet-50 (He et al., CVPR 2016), torchvision's "v1.5" variant, without pooling or classifier.

Attribute names are torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4``, bottleneck
``conv1..3``, ``bn1..3``, ``downsample.0/1``), so ImageNet ``resnet50-*.pth`` state dicts load
as they are; their classifier ``fc.*`` is listed in :attr:`ResNet50.known_unused_keys`. PARE's
own ResNet backbone had no ``fc`` either, so its checkpoints carry none.
(B, 3, 224, 224) -> (B, 2048, 7, 7); PARE's head brings this to 56 x 56 with transposed
convolutions (:func:`pare_model.backbones.deconv.make_deconv_layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from pare_model.backbones.base import Backbone, FeatureInfo
from pare_model.backbones.blocks import BN_MOMENTUM, Bottleneck, make_bottleneck_layer

STEM_CHANNELS = 64
LAYER_WIDTHS = (64, 128, 256, 512)
RESNET50_BLOCKS = (3, 4, 6, 3)


class ResNet50(Backbone):
    """ResNet-50 trunk: (B, 3, H, W) -> (B, 2048, H / 32, W / 32) (rounded up at each stride)."""

    known_unused_keys = ("fc.weight", "fc.bias")
    expected_weights = (
        "an ImageNet ResNet-50 state dict with torchvision key names, such as 'resnet50-19c8e357.pth' "
        "or 'resnet50-0676ba61.pth', or a state dict saved from this backbone"
    )

    # Registered with add_module in __init__ (declared for the type checker).
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, num_blocks: tuple[int, int, int, int] = RESNET50_BLOCKS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        in_channels = STEM_CHANNELS
        for index, (width, blocks) in enumerate(zip(LAYER_WIDTHS, num_blocks, strict=True), start=1):
            stride = 1 if index == 1 else 2
            self.add_module(f"layer{index}", make_bottleneck_layer(in_channels, width, blocks, stride))
            in_channels = width * Bottleneck.expansion

        self.feature_info = FeatureInfo(channels=in_channels, stride=32)
        self.init_weights()

    def init_weights(self) -> None:
        """As torchvision and PARE: convs Kaiming-normal (fan_out, ReLU gain), BN weight 1, bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 256, H/4, W/4)
        x = self.layer2(x)  # (B, 512, H/8, W/8)
        x = self.layer3(x)  # (B, 1024, H/16, W/16)
        return self.layer4(x)  # (B, 2048, H/32, W/32)


def resnet50() -> ResNet50:
    """ResNet-50 trunk: 2048 x 7 x 7 for a 224 input."""
    return ResNet50()
