"""One multi-resolution module of HRNet: parallel residual branches, then an all-to-all fusion.

Key layout (matches the original HRNet and PARE checkpoints): ``branches.{i}.{block}.*`` and
``fuse_layers.{i}.{j}.*`` where ``i`` is the output branch and ``j`` the input branch:

- ``j > i`` (coarser input): ``{0: 1x1 conv, 1: BN}``, then nearest-neighbour upsampling;
- ``j == i``: identity (no tensors);
- ``j < i`` (finer input): ``i - j`` stride-2 3x3 convs, ``{k}.0`` conv and ``{k}.1`` BN, with
  a ReLU after all but the last.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from pare_model.backbones.blocks import BN_MOMENTUM, BasicBlock, conv3x3


def _fuse_from_coarser(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv + BN; the upsampling to the finer branch's size happens in ``forward``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    )


def _fuse_from_finer(in_channels: int, out_channels: int, num_halvings: int) -> nn.Sequential:
    """``num_halvings`` x [3x3 stride-2 conv, BN(, ReLU)]; only the last step changes channels."""
    steps = []
    for step in range(num_halvings):
        last = step == num_halvings - 1
        channels = out_channels if last else in_channels
        layers: list[nn.Module] = [
            conv3x3(in_channels, channels, stride=2),
            nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
        ]
        if not last:
            layers.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Branches of ``BasicBlock``s at 1/4, 1/8, ... resolution, then a summing fusion.

    Args:
        channels: channels of each branch, finest first (e.g. (32, 64, 128) for W32 stage 3).
        num_blocks: residual blocks per branch.

    ``forward`` takes and returns a list of maps, one per branch: [(B, channels[i], H_i, W_i)].
    """

    def __init__(self, channels: tuple[int, ...], num_blocks: tuple[int, ...]) -> None:
        super().__init__()
        if len(channels) < 2 or len(channels) != len(num_blocks):
            raise ValueError(f"need >= 2 branches with one block count each, got {channels} and {num_blocks}")
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c) for _ in range(n))) for c, n in zip(channels, num_blocks, strict=True)
        )
        self.fuse_layers = nn.ModuleList()
        for i, c_out in enumerate(channels):
            row = nn.ModuleList()
            for j, c_in in enumerate(channels):
                if j > i:
                    row.append(_fuse_from_coarser(c_in, c_out))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    row.append(_fuse_from_finer(c_in, c_out, num_halvings=i - j))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[-2:]
            total = None
            for j, (layer, x) in enumerate(zip(cast(nn.ModuleList, row), xs, strict=True)):
                y = layer(x)
                if j > i:
                    # Resizing to the target's size rather than by 2^(j-i) gives the same result when
                    # the input side is a multiple of 32 and also works when it is not.
                    y = F.interpolate(y, size=size, mode="nearest")
                total = y if total is None else total + y
            fused.append(self.relu(total))
        return fused
