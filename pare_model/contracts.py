"""The dicts that travel between the network, the loss and the data loader, as ``TypedDict`` s.

- :class:`HeadOutput`: what a regression head (PARE or HMR) returns;
- :class:`PareOutput`: what :meth:`pare_model.model.PareModel.forward` returns (the head's
  predictions plus the body model's mesh, joints and projections);
- :class:`LossTargets`: the supervision :class:`pare_model.losses.PareLoss` reads, the tensors
  of a training batch (``pipelines.data.batch.TrainingBatch`` adds the images and bookkeeping).

These are annotations only: at run time each is a plain ``dict``. B is the batch size. The keys
are checked against a real forward pass and a real loader batch in the tests (``test_model.py``,
``test_train_stream.py``). Keys that only the PARE head returns are not required
(``total=False``). torch is imported for the type checker only, so this module stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from torch import Tensor


class _HeadPredictions(TypedDict):
    """What every head predicts."""

    pred_pose: Tensor  # (B, 24, 3, 3) rotation matrices: the root, then the 23 body joints
    pred_shape: Tensor  # (B, 10) SMPL shape coefficients (betas)
    pred_cam: Tensor  # (B, 3) weak-perspective camera [s, tx, ty]


class HeadOutput(_HeadPredictions, total=False):
    """A head's output; the part maps come from the PARE head only (the HMR head has none)."""

    pred_segm_mask: Tensor  # (B, 25, h, w) part logits, background first (h = w = 56 for a 224 input)
    pred_part_attention: Tensor  # (B, 24, h, w) spatial softmax attention of each part


class PareOutput(HeadOutput):
    """The network's prediction dict: the head's keys and those the body model adds."""

    pred_cam_t: Tensor  # (B, 3) camera translation for focal length f in the crop (5000 by default)
    pred_vertices: Tensor  # (B, 6890, 3) mesh vertices in metres, body model frame
    pred_keypoints_3d: Tensor  # (B, 49, 3) joints in the SPIN/PARE order (25 OpenPose, then 24 "GT")
    pred_keypoints_2d: Tensor  # (B, 49, 2) those joints projected into the crop, normalised to [-1, 1]


class LossTargets(TypedDict):
    """The supervision of a batch, as the loss reads it (on the model's device)."""

    segm_mask: Tensor  # (B, H, W) uint8 part labels 0..24, 0 = background (H = W = loader.label_size)
    keypoints: Tensor  # (B, 49, 3) float32: x, y normalised to [-1, 1] like pred_keypoints_2d, confidence
    joints_3d: Tensor  # (B, 24, 4) float32: the 24 SPIN "GT" joints in metres (camera frame), validity
    pose: Tensor  # (B, 72) float32 axis-angle SMPL pose (root first)
    betas: Tensor  # (B, 10) float32 SMPL shape coefficients
    has_smpl: Tensor  # (B,) float32, 1 where pose and betas are supervised
    has_joints_3d: Tensor  # (B,) float32, 1 where joints_3d is supervised
    has_segm: Tensor  # (B,) float32, 1 where segm_mask is supervised


__all__ = ["HeadOutput", "LossTargets", "PareOutput"]
