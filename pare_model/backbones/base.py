"""What every backbone promises: a feature map described by :class:`FeatureInfo`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """The backbone's output map, so that heads can size themselves."""

    channels: int
    """Channels C of the (B, C, H / stride, W / stride) output."""

    stride: int
    """Input pixels per output pixel (4: 224 -> 56; 32: 224 -> 7)."""


class Backbone(nn.Module):
    """Base class: ``forward`` maps (B, 3, H, W) normalised images to (B, C, H / s, W / s).

    Subclasses set ``feature_info`` in their constructor and describe, as class attributes,
    which weight files they expect and which tensors of those files they deliberately skip.
    """

    feature_info: FeatureInfo

    known_unused_keys: ClassVar[tuple[str, ...]] = ()
    """State-dict keys that the reference weight files (and the original PARE checkpoints)
    hold but this module has no parameter for, because its forward never used them. Loaders
    and importers report these as ignored rather than unexpected."""

    expected_weights: ClassVar[str] = "a state dict saved from this backbone"
    """What a user-supplied initial weight file for this backbone should be (for error messages)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
