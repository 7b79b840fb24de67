"""Part attention: a spatial softmax per part, then a softmax-weighted sum of features.

This is PARE's "keypoint attention" with the ``part_segm`` maps: for part ``j`` the weights
``softmax(logits_j / T)`` over all ``H x W`` pixels pool a feature map into one vector, so each
part's pose is regressed from the pixels the 2D part branch attributes to it.
"""

from __future__ import annotations

import torch


def part_attention(logits: torch.Tensor, temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
    """(B, J, H, W) part logits -> (B, J, H, W) attention weights summing to 1 over each map."""
    batch, parts, height, width = logits.shape
    weights = torch.softmax(logits.reshape(batch, parts, height * width) / temperature, dim=-1)
    return weights.reshape(batch, parts, height, width)


def attend(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pool (B, C, H, W) features with (B, J, H, W) weights into (B, C, J) per-part features."""
    batch, channels = features.shape[:2]
    parts = weights.shape[1]
    flat_features = features.reshape(batch, channels, -1)  # (B, C, HW)
    flat_weights = weights.reshape(batch, parts, -1)  # (B, J, HW)
    return torch.bmm(flat_features, flat_weights.transpose(1, 2))  # (B, C, J)
