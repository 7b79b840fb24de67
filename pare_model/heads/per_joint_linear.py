"""One bias-free linear map per joint, with weights that are not shared between joints.

The original implements this as a "locally connected" 1x1 layer whose weight has shape
(1, out, in, J, 1, 1); here the weight is stored as (J, out, in), which is the same numbers in
a layout that reads like J separate ``nn.Linear`` layers. The checkpoint importer converts.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PerJointLinear(nn.Module):
    """Map (B, in_features, J) per-joint features to (B, J, out_features)."""

    def __init__(self, num_joints: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_joints, out_features, in_features))
        # The original draws N(0, 1); a fan-in scaled normal keeps the initial 6D outputs O(1)
        # instead of O(sqrt(in_features)), which only changes where training starts.
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcj,joc->bjo", features, self.weight)
