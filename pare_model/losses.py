"""PARE's training losses, masked by the batch's has_* flags, with a part-segmentation schedule.

Terms and defaults follow the original PARE (``pare/losses/losses.py``); each is a mean over the
samples that carry the supervision, so its scale does not depend on how many do:

| term | definition | weight |
| --- | --- | --- |
| ``keypoints_2d`` | confidence x squared error of the 49 projected joints, mean over all B x 49 x 2 values; OpenPose joints x ``openpose_2d_weight``, GT joints x ``gt_2d_weight`` | 5 |
| ``keypoints_3d`` | validity x squared error of the 24 GT joints, both sides centred on the hip midpoint | 5 |
| ``pose`` | squared error between rotation matrices (24 x 3 x 3 per sample) | 1 |
| ``betas`` | squared error of the 10 shape coefficients | 0.001 |
| ``cam`` | prior on the weak-perspective scale, ``mean(exp(-10 s)^2)``, every sample | 1 |
| ``segm`` | per-pixel cross-entropy over 25 part classes, logits upsampled bilinearly (``align_corners=True``) to the label size | 1, then 0 from ``segm_off_at`` |

The total is ``loss_scale * sum(terms)`` (60 by default). The original has no schedule for the
part term (its switch-off was a second training stage); here it is ``segm_off_at``.

Departures from the original: a term whose flags are all 0 is exactly 0 with finite zero gradients
(the original indexes the valid samples and returns a fresh constant); ground truth of samples
without the supervision is ignored even when it is NaN; the part term is masked by ``has_segm``
(the original used ``has_smpl``, as it rendered labels from the SMPL fit); no per-joint pose
confidence (the original's ``pose_conf`` is 1 except in an unused option).

Prediction dict (the model's forward, PARE/SPIN names; :class:`pare_model.contracts.PareOutput`):

- ``pred_pose`` (B, 24, 3, 3) rotation matrices; ``pred_shape`` (B, 10); ``pred_cam`` (B, 3) ``[s, tx, ty]``;
- ``pred_keypoints_3d`` (B, 49, 3) SPIN order; ``pred_keypoints_2d`` (B, 49, 2) in [-1, 1];
- ``pred_segm_mask`` (B, 25, h, w) logits, channel 0 background.

Training batch (the loader produces exactly these tensors; :class:`pare_model.contracts.LossTargets`):

- ``keypoints`` (B, 49, 3): x, y normalised to [-1, 1] like ``pred_keypoints_2d``, then confidence;
- ``joints_3d`` (B, 24, 4): the 24 SPIN "GT" joints in metres (camera frame), then validity;
- ``pose`` (B, 72) axis-angle SMPL pose; ``betas`` (B, 10);
- ``segm_mask`` (B, H, W) integer part labels 0..24 (0 = background), usually H = W = 224;
- ``has_smpl``, ``has_joints_3d``, ``has_segm`` (B,) bool or float; nonzero means present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from pare_model.contracts import LossTargets, PareOutput
from pare_model.geometry import axis_angle_to_matrix
from pare_model.joint_sets import SPIN_JOINT_NAMES
from pare_model.loss_config import LOSS_TERMS, LossConfig, segm_weight_at

NUM_OPENPOSE_JOINTS = sum(name.startswith("OP ") for name in SPIN_JOINT_NAMES)
"""The first 25 SPIN joints are OpenPose's; the other 24 are the "GT" joints."""

GT_JOINT_NAMES = SPIN_JOINT_NAMES[NUM_OPENPOSE_JOINTS:]
HIP_INDICES = (GT_JOINT_NAMES.index("Right Hip"), GT_JOINT_NAMES.index("Left Hip"))
"""Hips in the 24 GT joints (2 and 3); their midpoint is the root of the 3D joint loss."""


def _flag(batch: Mapping[str, Any], key: str, reference: torch.Tensor) -> torch.Tensor:
    """(B,) bool flag on the reference's device."""
    return torch.as_tensor(_get(batch, key), device=reference.device).reshape(-1) != 0


def _get(mapping: Mapping[str, Any], key: str) -> torch.Tensor:
    try:
        return mapping[key]
    except KeyError:
        raise KeyError(
            f"{key!r} is missing; the loss needs it (see pare_model.losses for the batch contract)"
        ) from None


def _masked_mean(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, ...) ``error`` over the samples where (B,) ``mask``; exactly 0 when none is."""
    per_sample = error[0].numel()
    kept = torch.where(mask.reshape((-1,) + (1,) * (error.ndim - 1)), error, torch.zeros_like(error))
    return kept.sum() / (mask.sum() * per_sample).clamp_min(1)


def _only_where(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ground truth with unflagged entries set to 0, so NaNs there cannot reach the gradients."""
    mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    return torch.where(mask, values, torch.zeros_like(values))


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor, openpose_weight: float, gt_weight: float) -> torch.Tensor:
    """(B, 49, 2) predicted vs (B, 49, 3) ground-truth keypoints with confidence -> scalar."""
    confidence = gt[..., 2].float()  # (B, 49)
    factors = torch.full_like(confidence[0], gt_weight)
    factors[:NUM_OPENPOSE_JOINTS] = openpose_weight
    confidence = confidence * factors
    target = _only_where(gt[..., :2].float(), confidence != 0)
    return (confidence[..., None] * (pred.float() - target) ** 2).mean()


def keypoint_3d_loss(pred: torch.Tensor, gt: torch.Tensor, has_joints_3d: torch.Tensor) -> torch.Tensor:
    """(B, 49, 3) predicted SPIN joints vs (B, 24, 4) GT joints with validity -> scalar, hip-centred."""
    pred = pred[:, NUM_OPENPOSE_JOINTS:].float()  # (B, 24, 3)
    gt = _only_where(gt.float(), has_joints_3d)
    validity = gt[..., 3]  # (B, 24)
    target = _only_where(gt[..., :3], validity != 0)
    right, left = HIP_INDICES
    pred = pred - (pred[:, right] + pred[:, left])[:, None] / 2
    target = target - (target[:, right] + target[:, left])[:, None] / 2
    return _masked_mean(validity[..., None] * (pred - target) ** 2, has_joints_3d)


def pose_loss(pred_pose: torch.Tensor, gt_pose: torch.Tensor, has_smpl: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) predicted rotations vs (B, 72) axis-angle ground truth -> scalar."""
    target = axis_angle_to_matrix(_only_where(gt_pose.float(), has_smpl).reshape(-1, 24, 3))
    return _masked_mean((pred_pose.float() - target) ** 2, has_smpl)


def betas_loss(pred_betas: torch.Tensor, gt_betas: torch.Tensor, has_smpl: torch.Tensor) -> torch.Tensor:
    """(B, 10) vs (B, 10) shape coefficients -> scalar."""
    return _masked_mean((pred_betas.float() - _only_where(gt_betas.float(), has_smpl)) ** 2, has_smpl)


def camera_prior(pred_cam: torch.Tensor) -> torch.Tensor:
    """(B, 3) weak-perspective cameras -> scalar ``mean(exp(-10 s)^2)``: large for small or negative s."""
    return torch.exp(-10.0 * pred_cam[:, 0].float()).pow(2).mean()


def segm_loss(logits: torch.Tensor, labels: torch.Tensor, has_segm: torch.Tensor) -> torch.Tensor:
    """(B, 25, h, w) part logits vs (B, H, W) labels -> scalar mean cross-entropy per pixel.

    Logits are upsampled bilinearly (``align_corners=True``, as PARE) to the label size.
    """
    logits = logits.float()
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    # Unflagged samples may hold any placeholder; class 0 keeps cross_entropy's index check happy.
    labels = _only_where(labels.long(), has_segm)
    per_pixel = F.cross_entropy(logits, labels, reduction="none")  # (B, H, W)
    return _masked_mean(per_pixel, has_segm)


class PareLoss(nn.Module):
    """PARE's total training loss; see the module docstring for the terms and the batch contract."""

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, pred: PareOutput, batch: LossTargets, step: int = 0, epoch: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss (scalar) and, for logging, each detached weighted term and ``segm_weight``.

        ``total == loss_scale * sum(terms[name] for name in LOSS_TERMS)``.
        """
        config = self.config
        cam = _get(pred, "pred_cam")
        has_smpl = _flag(batch, "has_smpl", cam)
        has_joints_3d = _flag(batch, "has_joints_3d", cam)
        # Heads without part maps (the HMR baseline) have no part term to supervise.
        segm_weight = segm_weight_at(config, step, epoch) if "pred_segm_mask" in pred else 0.0
        raw = {
            "keypoints_2d": keypoint_2d_loss(
                _get(pred, "pred_keypoints_2d"),
                _get(batch, "keypoints"),
                config.openpose_2d_weight,
                config.gt_2d_weight,
            ),
            "keypoints_3d": keypoint_3d_loss(_get(pred, "pred_keypoints_3d"), _get(batch, "joints_3d"), has_joints_3d),
            "pose": pose_loss(_get(pred, "pred_pose"), _get(batch, "pose"), has_smpl),
            "betas": betas_loss(_get(pred, "pred_shape"), _get(batch, "betas"), has_smpl),
            "cam": camera_prior(cam),
        }
        if segm_weight > 0:
            raw["segm"] = segm_loss(
                _get(pred, "pred_segm_mask"), _get(batch, "segm_mask"), _flag(batch, "has_segm", cam)
            )
        else:  # switched off: skip the full-resolution cross-entropy entirely
            raw["segm"] = cam.new_zeros((), dtype=torch.float32)
        weights = config.weights() | {"segm": segm_weight}
        weighted = {name: weights[name] * raw[name] for name in LOSS_TERMS}
        total = cast(torch.Tensor, config.loss_scale * sum(weighted.values()))
        terms = {name: value.detach() for name, value in weighted.items()}
        terms["segm_weight"] = cam.new_full((), segm_weight, dtype=torch.float32)  # no copy to the device
        return total, terms
