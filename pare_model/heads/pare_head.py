"""The PARE head: 2D part branch, 3D body branch, part attention, per-joint regressors.

Follows the released model (Kocabas et al., ICCV 2021, "part_segm" attention):

- the 2D part branch ends in a 1x1 conv to 25 channels (background first); its 24 part maps
  go through a spatial softmax (temperature ``T``) per part;
- the 3D body branch gives features F (C channels) and, through a 1x1 conv, a 64-channel copy;
- the attention pools F into C x 24 (pose) and the copy into 64 x 24 (shape and camera);
- pose: one bias-free linear layer per joint to 6D, then a rotation matrix; shape and camera:
  one linear layer each from the 24 x 64 = 1536 pooled values. Predictions are absolute, with
  no iterative refinement.

Departures from the original, none of which change the function the network can represent:
the per-joint weights start fan-in scaled instead of N(0, 1), and the shape and camera biases
start at the mean parameters so that a fresh model begins with a person in front of the camera.
Module names match the released checkpoints (``keypoint_deconv_layers``, ``smpl_final_layer``,
``pose_mlp`` ...), so the importer only renames the prefix and reshapes ``pose_mlp``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from pare_model.body_model.parts import NUM_PART_LABELS, NUM_PARTS
from pare_model.contracts import HeadOutput
from pare_model.geometry import rot6d_to_matrix
from pare_model.heads.attention import attend, part_attention
from pare_model.heads.branches import make_branch
from pare_model.heads.mean_params import register_mean_params
from pare_model.heads.per_joint_linear import PerJointLinear

NUM_BETAS = 10
NUM_CAMERA_PARAMS = 3


class PareHead(nn.Module):
    """Regress SMPL pose, shape and a weak-perspective camera from backbone features.

    Args:
        in_channels: channels of the backbone feature map.
        stride: its stride; 4 uses conv branches, 8/16/32 transposed-conv branches.
        mean_params: ``pose`` (144,), ``shape`` (10,), ``cam`` (3,) of ``smpl_mean_params.npz``.
        num_branch_filters: branch width C; default 128 (conv) or 256 (deconv) as released.
        num_features_smpl: channels of the shape/camera feature copy (64 in the paper).
        softmax_temperature: temperature T of the per-part spatial softmax.
    """

    # Buffers of register_mean_params (declared for the type checker; they stay buffers).
    init_pose: torch.Tensor  # (1, 144)
    init_shape: torch.Tensor  # (1, 10)
    init_cam: torch.Tensor  # (1, 3)
    temperature: torch.Tensor  # () softmax temperature T

    def __init__(
        self,
        in_channels: int,
        stride: int,
        mean_params: Mapping[str, np.ndarray],
        num_branch_filters: int | None = None,
        num_features_smpl: int = 64,
        softmax_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.keypoint_deconv_layers, channels = make_branch(in_channels, stride, num_branch_filters)
        self.smpl_deconv_layers, _ = make_branch(in_channels, stride, num_branch_filters)
        self.keypoint_final_layer = nn.Conv2d(channels, NUM_PART_LABELS, kernel_size=1)
        self.smpl_final_layer = nn.Conv2d(channels, num_features_smpl, kernel_size=1)
        self.pose_mlp = PerJointLinear(NUM_PARTS, channels, 6)
        self.shape_mlp = nn.Linear(NUM_PARTS * num_features_smpl, NUM_BETAS)
        self.cam_mlp = nn.Linear(NUM_PARTS * num_features_smpl, NUM_CAMERA_PARAMS)
        self.register_buffer("temperature", torch.tensor(float(softmax_temperature)))
        register_mean_params(self, mean_params)
        with torch.no_grad():
            self.shape_mlp.bias.copy_(self.init_shape[0])
            self.cam_mlp.bias.copy_(self.init_cam[0])

    def forward(self, features: torch.Tensor) -> HeadOutput:
        """(B, C_in, h, w) features -> predictions and the part maps.

        Returns ``pred_pose`` (B, 24, 3, 3), ``pred_shape`` (B, 10), ``pred_cam`` (B, 3),
        ``pred_segm_mask`` (B, 25, H, W) part logits with background first, and
        ``pred_part_attention`` (B, 24, H, W), the softmax weights of each part.
        """
        batch = features.shape[0]
        segm_logits = self.keypoint_final_layer(self.keypoint_deconv_layers(features))  # (B, 25, H, W)
        attention = part_attention(segm_logits[:, 1:], self.temperature)  # (B, 24, H, W)
        body_features = self.smpl_deconv_layers(features)  # (B, C, H, W)
        pose_features = attend(body_features, attention)  # (B, C, 24)
        shape_features = attend(self.smpl_final_layer(body_features), attention)  # (B, 64, 24)
        flat = shape_features.flatten(1)  # channel-major (c * 24 + j), as the original
        rot6d = self.pose_mlp(pose_features)  # (B, 24, 6)
        return {
            "pred_pose": rot6d_to_matrix(rot6d).reshape(batch, NUM_PARTS, 3, 3),
            "pred_shape": self.shape_mlp(flat),
            "pred_cam": self.cam_mlp(flat),
            "pred_segm_mask": segm_logits,
            "pred_part_attention": attention,
        }
