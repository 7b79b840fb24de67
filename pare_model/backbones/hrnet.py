"""HRNet (Sun et al., CVPR 2019) with PARE's "conv" fusion of the four branches.

The released PARE model uses HRNet-W32: a stride-4 stem and bottleneck layer, then three
stages that add a branch at half the resolution each (1/4, 1/8, 1/16, 1/32 of the input, with
32, 64, 128, 256 channels). PARE's "conv" fusion brings branches 2-4 back to 1/4 resolution
with repeated [bilinear x2 (align_corners=True), 3x3 conv (no bias), BN, ReLU] blocks and
concatenates them with branch 1: (B, 3, 224, 224) -> (B, 480, 56, 56).

Module attribute names are those of the original code, so the released PARE checkpoint's
``model.backbone.*`` tensors and the COCO 2D-pose weights (``pose_hrnet_w32_256x192.pth``)
load without renaming. How this departs from the original:

- The original also builds the 2D-pose head ``final_layer`` (1x1 conv, 24 joints in PARE, 17
  in the COCO file) that the conv-fusion forward never calls. We do not build it (an unused
  parameter breaks DDP without ``find_unused_parameters``); its two keys are listed in
  :attr:`HRNet.known_unused_keys`, and :data:`PARE_FINAL_LAYER_SHAPES` gives their shapes in
  the released checkpoint.
- Upsampling goes to the size of the target branch instead of by a fixed factor: identical
  for inputs whose sides are multiples of 32, and it also works for other sizes.
- Where the original has ``None`` (no transition, or a branch's own fusion input) we use
  ``nn.Identity``; neither holds tensors, so the keys are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pare_model.backbones.base import Backbone, FeatureInfo
from pare_model.backbones.blocks import BN_MOMENTUM, conv3x3, make_bottleneck_layer
from pare_model.backbones.hrnet_module import HighResolutionModule

STEM_CHANNELS = 64
PARE_NUM_JOINTS = 24

PARE_FINAL_LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    "final_layer.weight": (PARE_NUM_JOINTS, 32, 1, 1),
    "final_layer.bias": (PARE_NUM_JOINTS,),
}
"""Shapes of the unused ``final_layer`` tensors in the released PARE HRNet-W32 checkpoint."""


@dataclass(frozen=True)
class StageConfig:
    """One HRNet stage: ``num_modules`` multi-resolution modules over ``len(channels)`` branches."""

    num_modules: int
    num_blocks: tuple[int, ...]
    """Basic residual blocks per branch in each module."""
    channels: tuple[int, ...]
    """Channels per branch, finest resolution first."""

    @property
    def num_branches(self) -> int:
        return len(self.channels)


def hrnet_stages(width: int) -> tuple[StageConfig, StageConfig, StageConfig]:
    """Stages 2-4 of the pose HRNet family (W32: width 32; FUSE_METHOD 'SUM', BASIC blocks)."""
    return (
        StageConfig(num_modules=1, num_blocks=(4, 4), channels=(width, 2 * width)),
        StageConfig(num_modules=4, num_blocks=(4, 4, 4), channels=(width, 2 * width, 4 * width)),
        StageConfig(num_modules=3, num_blocks=(4, 4, 4, 4), channels=(width, 2 * width, 4 * width, 8 * width)),
    )


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """[3x3 conv, BN, ReLU] with keys ``0.weight`` and ``1.*``."""
    return nn.Sequential(
        conv3x3(in_channels, out_channels, stride),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


def make_transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
    """Maps the previous stage's branches to the next stage's.

    Existing branches pass through (identity) unless their channel count changes; each new
    branch comes from the previous coarsest branch by stride-2 [conv, BN, ReLU] steps, wrapped
    in one more Sequential (keys ``{i}.{step}.0.weight``), as in the original.
    """
    layers = nn.ModuleList()
    for i, channels in enumerate(current):
        if i < len(previous):
            same = previous[i] == channels
            layers.append(nn.Identity() if same else _conv_bn_relu(previous[i], channels, stride=1))
            continue
        num_steps = i + 1 - len(previous)
        steps = [
            _conv_bn_relu(previous[-1], channels if step == num_steps - 1 else previous[-1], stride=2)
            for step in range(num_steps)
        ]
        layers.append(nn.Sequential(*steps))
    return layers


class BilinearResize(nn.Module):
    """Parameter-free bilinear resize (align_corners=True, as the original's x2 upsampling)."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class UpsampleStack(nn.ModuleList):
    """``num_steps`` x [bilinear resize, 3x3 conv (no bias), BN, ReLU] at constant channels.

    Children are numbered as the original's Sequential: conv ``{4k+1}``, BN ``{4k+2}``.
    """

    def __init__(self, channels: int, num_steps: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(num_steps):
            layers += [
                BilinearResize(),
                conv3x3(channels, channels),
                nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
        super().__init__(layers)

    def forward(self, x: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, *sizes[-1]), one step per size (each about twice the last)."""
        assert len(sizes) * 4 == len(self), "one target size per upsampling step"
        for step, size in enumerate(sizes):
            resize, conv, bn, relu = (self[4 * step + k] for k in range(4))
            x = relu(bn(conv(resize(x, size))))
        return x


class HRNet(Backbone):
    """HRNet with conv fusion: (B, 3, H, W) -> (B, sum(channels), ceil(H / 4), ceil(W / 4)).

    Args:
        stages: configs of stages 2, 3 and 4 (see :func:`hrnet_stages`); each adds one branch.
    """

    known_unused_keys = ("final_layer.weight", "final_layer.bias")
    expected_weights = (
        "the COCO 2D-pose HRNet-W32 weights 'pose_hrnet_w32_256x192.pth' from the HRNet human pose "
        "estimation release (a plain state dict), or a state dict saved from this backbone"
    )

    def __init__(self, stages: Sequence[StageConfig] = hrnet_stages(32)) -> None:
        super().__init__()
        stages = tuple(stages)
        if len(stages) != 3 or [s.num_branches for s in stages] != [2, 3, 4]:
            raise ValueError(f"HRNet needs stages 2-4 with 2, 3 and 4 branches, got {stages}")
        self.stage_configs = stages

        # Stem: two stride-2 convs (1/4 resolution), then 4 bottlenecks -> 256 channels.
        self.conv1 = conv3x3(3, STEM_CHANNELS, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(STEM_CHANNELS, STEM_CHANNELS, stride=2)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_bottleneck_layer(STEM_CHANNELS, STEM_CHANNELS, num_blocks=4)

        previous: tuple[int, ...] = (4 * STEM_CHANNELS,)
        for index, stage in enumerate(stages, start=2):
            self.add_module(f"transition{index - 1}", make_transition(previous, stage.channels))
            modules = [HighResolutionModule(stage.channels, stage.num_blocks) for _ in range(stage.num_modules)]
            self.add_module(f"stage{index}", nn.Sequential(*modules))
            previous = stage.channels

        # Branch b (1-based) sits at 1/2^(b+1) and needs b - 1 doublings to reach 1/4.
        final = stages[-1].channels
        self.upsample_stage_2 = UpsampleStack(final[1], num_steps=1)
        self.upsample_stage_3 = UpsampleStack(final[2], num_steps=2)
        self.upsample_stage_4 = UpsampleStack(final[3], num_steps=3)

        self.feature_info = FeatureInfo(channels=sum(final), stride=4)
        self.init_weights()

    def init_weights(self) -> None:
        """As the original: conv weights ~ N(0, 0.001^2), conv biases 0, BN weight 1 and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(images)))  # (B, 64, H/2, W/2)
        x = self.relu(self.bn2(self.conv2(x)))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 256, H/4, W/4)

        branches = [x]
        for index in (2, 3, 4):
            transition: nn.ModuleList = getattr(self, f"transition{index - 1}")
            # Existing branches map one to one; the new, coarser one grows from the last branch.
            inputs = [layer(branches[min(i, len(branches) - 1)]) for i, layer in enumerate(transition)]
            branches = getattr(self, f"stage{index}")(inputs)
        # branches: (B, 32, H/4, W/4), (B, 64, H/8, W/8), (B, 128, H/16, W/16), (B, 256, H/32, W/32) for W32

        sizes = [tuple(b.shape[-2:]) for b in branches]
        up2 = self.upsample_stage_2(branches[1], sizes[0:1])
        up3 = self.upsample_stage_3(branches[2], sizes[1::-1])
        up4 = self.upsample_stage_4(branches[3], sizes[2::-1])
        return torch.cat([branches[0], up2, up3, up4], dim=1)  # (B, 480, H/4, W/4) for W32


def hrnet_w32() -> HRNet:
    """HRNet-W32 with conv fusion, as in the released PARE: 480 x 56 x 56 for a 224 input."""
    return HRNet(hrnet_stages(32))
