"""HMR/SPIN-style baseline head: global pooling and iterative regression from the mean.

The paper compares PARE with SPIN under occlusion; this head gives that baseline on the same
backbones and the same output interface. Global average pooling turns the feature map into one
vector; three iterations of [fc1, dropout, fc2, dropout] each add a correction to the current
pose (6D), shape and camera, starting from the SMPL mean parameters. Names match PARE's
``HMRHead`` (``fc1``, ``decpose`` ...). It predicts no part maps.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from pare_model.body_model.parts import NUM_PARTS
from pare_model.contracts import HeadOutput
from pare_model.geometry import rot6d_to_matrix
from pare_model.heads.mean_params import register_mean_params

NUM_POSE_6D = NUM_PARTS * 6
NUM_BETAS = 10
NUM_CAMERA_PARAMS = 3
HIDDEN = 1024


class HmrHead(nn.Module):
    """Iterative error feedback regressor over globally pooled features.

    Args:
        in_channels: channels of the backbone feature map.
        stride: unused (any resolution is pooled); accepted so heads share a signature.
        mean_params: ``pose`` (144,), ``shape`` (10,), ``cam`` (3,) starting point.
        num_iterations: refinement steps (3 in HMR and SPIN).
    """

    # Buffers of register_mean_params (declared for the type checker; they stay buffers).
    init_pose: torch.Tensor  # (1, 144)
    init_shape: torch.Tensor  # (1, 10)
    init_cam: torch.Tensor  # (1, 3)

    def __init__(
        self, in_channels: int, stride: int, mean_params: Mapping[str, np.ndarray], num_iterations: int = 3
    ) -> None:
        super().__init__()
        del stride
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
        self.num_iterations = num_iterations
        self.fc1 = nn.Linear(in_channels + NUM_POSE_6D + NUM_BETAS + NUM_CAMERA_PARAMS, HIDDEN)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(HIDDEN, NUM_POSE_6D)
        self.decshape = nn.Linear(HIDDEN, NUM_BETAS)
        self.deccam = nn.Linear(HIDDEN, NUM_CAMERA_PARAMS)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)  # start next to the mean, as SPIN
        register_mean_params(self, mean_params)

    def forward(self, features: torch.Tensor) -> HeadOutput:
        """(B, C, h, w) features -> ``pred_pose`` (B, 24, 3, 3), ``pred_shape``, ``pred_cam``."""
        batch = features.shape[0]
        pooled = features.mean(dim=(2, 3))  # (B, C)
        pose = self.init_pose.expand(batch, -1)
        shape = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        for _ in range(self.num_iterations):
            hidden = self.drop1(self.fc1(torch.cat([pooled, pose, shape, cam], dim=1)))
            hidden = self.drop2(self.fc2(hidden))
            pose = pose + self.decpose(hidden)
            shape = shape + self.decshape(hidden)
            cam = cam + self.deccam(hidden)
        return {
            "pred_pose": rot6d_to_matrix(pose.reshape(batch, NUM_PARTS, 6)).reshape(batch, NUM_PARTS, 3, 3),
            "pred_shape": shape,
            "pred_cam": cam,
        }
