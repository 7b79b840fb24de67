"""Configuration of PARE's loss: term weights and the part-segmentation schedule.

Kept free of torch so that the project's typed config (and ``pare config show``) can use it
as the ``loss`` section without importing torch; :mod:`pare_model.losses` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

LOSS_TERMS = ("keypoints_2d", "keypoints_3d", "pose", "betas", "cam", "segm")
"""Names of the loss terms, the keys of PareLoss's term dict (besides ``segm_weight``)."""

_WEIGHT_FIELDS = (
    "keypoint_2d_weight",
    "keypoint_3d_weight",
    "pose_weight",
    "betas_weight",
    "cam_weight",
    "segm_weight",
    "openpose_2d_weight",
    "gt_2d_weight",
)


@dataclass
class LossConfig:
    """Weights of PARE's loss terms and the schedule that switches part supervision off."""

    keypoint_2d_weight: float = 5.0
    """Weight of the 2D reprojection term (49 joints, confidence-weighted squared error)."""

    keypoint_3d_weight: float = 5.0
    """Weight of the 3D joint term (24 GT joints, hip-midpoint centred, squared error)."""

    pose_weight: float = 1.0
    """Weight of the squared error between predicted and ground-truth rotation matrices."""

    betas_weight: float = 0.001
    """Weight of the squared error of the shape coefficients."""

    cam_weight: float = 1.0
    """Weight of the camera scale prior mean(exp(-10 s)^2), which keeps the scale s positive."""

    segm_weight: float = 1.0
    """Weight of the part-segmentation cross-entropy until segm_off_at."""

    openpose_2d_weight: float = 0.0
    """Factor on the confidences of the 25 OpenPose joints in the 2D term (PARE: 0, unused)."""

    gt_2d_weight: float = 1.0
    """Factor on the confidences of the 24 GT joints in the 2D term."""

    loss_scale: float = 60.0
    """Factor on the sum of the weighted terms (PARE's LOSS_WEIGHT)."""

    segm_off_at: int | None = None
    """Step or epoch (see segm_off_unit) from which the part-segmentation weight is 0, so that the
    attention can learn freely (the paper's second stage). None: part supervision never stops."""

    segm_off_unit: Literal["step", "epoch"] = "epoch"
    """Whether segm_off_at counts optimizer steps or epochs (both start at 0)."""

    def __post_init__(self) -> None:
        for name in _WEIGHT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        scale = self.loss_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"loss_scale must be a finite number > 0, got {scale!r}")
        off_at = self.segm_off_at
        if off_at is not None and (isinstance(off_at, bool) or not isinstance(off_at, int) or off_at < 0):
            raise ValueError(f"segm_off_at must be None (never) or an integer >= 0, got {off_at!r}")
        if self.segm_off_unit not in ("step", "epoch"):
            raise ValueError(f"segm_off_unit must be 'step' or 'epoch', got {self.segm_off_unit!r}")

    def weights(self) -> dict[str, float]:
        """Weight of each term of :data:`LOSS_TERMS` before the schedule."""
        return {
            "keypoints_2d": self.keypoint_2d_weight,
            "keypoints_3d": self.keypoint_3d_weight,
            "pose": self.pose_weight,
            "betas": self.betas_weight,
            "cam": self.cam_weight,
            "segm": self.segm_weight,
        }


def segm_weight_at(config: LossConfig, step: int, epoch: int) -> float:
    """The part-segmentation weight at this step and epoch: ``segm_weight`` before the switch, 0 from it."""
    if step < 0 or epoch < 0:
        raise ValueError(f"step and epoch must be >= 0, got step={step}, epoch={epoch}")
    if config.segm_off_at is None:
        return float(config.segm_weight)
    counter = step if config.segm_off_unit == "step" else epoch
    return 0.0 if counter >= config.segm_off_at else float(config.segm_weight)
