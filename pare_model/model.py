"""The full regressor: backbone, head, and the body model that turns parameters into a mesh.

``PareModel.forward(images)`` returns one flat dict with SPIN/PARE names, so losses, metrics,
evaluation and visualisation read the same keys whichever head is used (typed as
:class:`pare_model.contracts.PareOutput`):

- ``pred_pose`` (B, 24, 3, 3), ``pred_shape`` (B, 10), ``pred_cam`` (B, 3) ``[s, tx, ty]``;
- ``pred_cam_t`` (B, 3) camera translation (f = 5000 in the crop);
- ``pred_vertices`` (B, 6890, 3), ``pred_keypoints_3d`` (B, 49, 3) in the SPIN order;
- ``pred_keypoints_2d`` (B, 49, 2) projected and normalised to [-1, 1];
- PARE head only: ``pred_segm_mask`` (B, 25, 56, 56) part logits (background first) and
  ``pred_part_attention`` (B, 24, 56, 56) softmax attention of each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from pare_model.backbones import Backbone, build_backbone
from pare_model.body_model.assets import Gender, load_body_model_assets
from pare_model.body_model.layer import BodyModel
from pare_model.contracts import HeadOutput, PareOutput
from pare_model.geometry import project_to_crop, weak_perspective_to_translation
from pare_model.heads import build_head
from pare_model.model_config import ModelConfig


class PareModel(nn.Module):
    """Backbone + regression head + body model.

    Args:
        backbone: maps (B, 3, S, S) images to features; has ``feature_info``.
        head: maps those features to ``pred_pose``, ``pred_shape``, ``pred_cam`` (+ maps).
        body_model: the SMPL-format layer; its buffers come from the asset files.
        image_size: S, the crop side in pixels; focal_length: crop camera focal length.
    """

    backbone: Backbone
    head: nn.Module
    body_model: BodyModel

    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        body_model: BodyModel,
        image_size: int = 224,
        focal_length: float = 5000.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.body_model = body_model
        self.image_size = image_size
        self.focal_length = focal_length

    def forward(self, images: torch.Tensor) -> PareOutput:
        """(B, 3, S, S) normalised images -> the prediction dict described in the module docstring."""
        head_output: HeadOutput = self.head(self.backbone(images))
        output = cast(PareOutput, head_output)  # the same dict: the body model's keys are added below
        pose = output["pred_pose"]
        body = self.body_model(pose[:, :1], pose[:, 1:], output["pred_shape"])
        cam = output["pred_cam"]
        output["pred_cam_t"] = weak_perspective_to_translation(cam, self.focal_length, self.image_size)
        output["pred_vertices"] = body["vertices"]
        output["pred_keypoints_3d"] = body["joints"]
        output["pred_keypoints_2d"] = project_to_crop(body["joints"], cam, self.focal_length, self.image_size)
        return output

    def network_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained tensors: everything but the body model, whose buffers come from asset files."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("body_model.")}

    def load_network_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load :meth:`network_state_dict` output; every key must match exactly."""
        expected = set(self.network_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(
                f"network weights do not fit this model: missing {missing[:10]}, unexpected {unexpected[:10]}"
            )
        self.load_state_dict(dict(state), strict=False)


def build_network(config: ModelConfig, mean_params: Mapping[str, np.ndarray]) -> tuple[Backbone, nn.Module]:
    """The configured backbone and head, freshly initialised; the head starts from ``mean_params``."""
    backbone = build_backbone(config.backbone)
    info = backbone.feature_info
    if config.head == "pare":
        head = build_head(
            "pare",
            in_channels=info.channels,
            stride=info.stride,
            mean_params=mean_params,
            num_branch_filters=config.num_branch_filters or None,
            num_features_smpl=config.num_features_smpl,
            softmax_temperature=config.softmax_temperature,
        )
    else:
        head = build_head(
            config.head,
            in_channels=info.channels,
            stride=info.stride,
            mean_params=mean_params,
            num_iterations=config.hmr_iterations,
        )
    return backbone, head


def build_model(config: ModelConfig, body_model: BodyModel, mean_params: Mapping[str, np.ndarray]) -> PareModel:
    """Build the configured network around ``body_model`` (mean parameters from its assets)."""
    backbone, head = build_network(config, mean_params)
    return PareModel(backbone, head, body_model, config.image_size, config.focal_length)


def build_model_from_assets(config: ModelConfig, body_model_dir: str | Path, gender: Gender = "neutral") -> PareModel:
    """A freshly initialised model around the body model in ``body_model_dir``."""
    assets = load_body_model_assets(body_model_dir, gender)
    return build_model(config, BodyModel.from_assets(assets), assets.mean_params)
