"""Cameras for fits that come without one: translation from 2D keypoints or from camera-frame 3D joints.

:func:`fit_translation` is the linear least-squares solve SPIN and PARE use (``estimate_translation``)
for the translation that projects known 3D joints onto 2D keypoints through fixed intrinsics:
each keypoint gives two equations linear in ``t``,
``f_x (X + t_x) - (u - c_x)(Z + t_z) = 0`` and the same in y, each weighted by the square root of the
keypoint's confidence (a keypoint of confidence 0 does not count).

Which keypoints place the part labels is PARE's rule (``pare/core/trainer.py`` ``training_step``:
``estimate_translation(..., use_all_joints=False)``): the 24 ground-truth joints (SPIN joints 25..48) only,
never the 25 OpenPose detections. :func:`fit_crop_camera` and :func:`fit_label_translation` take all 49 and
use those 24. (PARE uses all 49 only when its training mixture holds 3DPW, whose records here come with their
own camera.)
"""

from __future__ import annotations

import numpy as np

from preprocessing.record import CropCamera, RecordRejected
from preprocessing.render.cameras import CROP_SIZE, FOCAL_LENGTH, apply_affine, crop_affine

CROP_INTRINSICS = np.array(
    [[FOCAL_LENGTH, 0.0, CROP_SIZE / 2.0], [0.0, FOCAL_LENGTH, CROP_SIZE / 2.0], [0.0, 0.0, 1.0]]
)
"""PARE's camera of the 224 crop: f = 5000, principal point at the crop centre."""

MIN_POINTS = 3
GROUND_TRUTH = slice(25, 49)
"""SPIN's 24 ground-truth joints among the 49: the keypoints that place a fit."""


def fit_translation(
    joints: np.ndarray, keypoints: np.ndarray, weights: np.ndarray, intrinsics: np.ndarray
) -> np.ndarray:
    """(3,) translation that best projects (K, 3) ``joints`` onto (K, 2) ``keypoints``.

    Raises :class:`RecordRejected` (``poor_fit``) with fewer than three weighted points or a
    solution behind the camera.
    """
    used = weights > 0
    if used.sum() < MIN_POINTS:
        raise RecordRejected("poor_fit", f"{int(used.sum())} labelled keypoints; a camera needs {MIN_POINTS}")
    joints, keypoints, w = joints[used], keypoints[used], np.sqrt(weights[used])
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    du, dv = keypoints[:, 0] - cx, keypoints[:, 1] - cy
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    rows = np.concatenate(
        [np.stack([fx * ones, zeros, -du], axis=1), np.stack([zeros, fy * ones, -dv], axis=1)]
    )  # (2K, 3)
    rhs = np.concatenate([du * joints[:, 2] - fx * joints[:, 0], dv * joints[:, 2] - fy * joints[:, 1]])
    weight = np.concatenate([w, w])
    translation, *_ = np.linalg.lstsq(rows * weight[:, None], rhs * weight, rcond=None)
    if not np.isfinite(translation).all() or (joints[:, 2] + translation[2] <= 0).any():
        raise RecordRejected("poor_fit", "no camera in front of the body projects the fit onto the keypoints")
    return translation


def fit_label_translation(joints: np.ndarray, keypoints: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(3,) translation of a fit through ``intrinsics``, from its 24 ground-truth joints' keypoints only.

    Args:
        joints: (49, 3) SPIN joints of the fit, pose root in the camera frame, no translation.
        keypoints: (49, 3) x, y (pixels of the ``intrinsics``' image) and confidence; the weights.
    """
    joints, keypoints = joints[GROUND_TRUTH], keypoints[GROUND_TRUTH]
    return fit_translation(joints, keypoints[:, :2], keypoints[:, 2], intrinsics)


def fit_crop_camera(joints: np.ndarray, keypoints: np.ndarray, center: np.ndarray, box_size: float) -> CropCamera:
    """PARE's weak-perspective camera of the 224 crop of the box (f = 5000, principal point at the crop centre),
    fitted as PARE places its labels: to the 24 ground-truth joints' keypoints, weighted by their confidence.

    Args:
        joints: (49, 3) SPIN joints of the fit, pose root in the camera frame, no translation.
        keypoints: (49, 3) x, y image pixels and confidence.
    """
    to_crop = crop_affine(center, box_size, CROP_SIZE)
    in_crop = np.concatenate([apply_affine(keypoints[:, :2], to_crop), keypoints[:, 2:3]], axis=1)
    translation = fit_label_translation(joints, in_crop, CROP_INTRINSICS)
    scale = 2.0 * FOCAL_LENGTH / (CROP_SIZE * translation[2])
    return CropCamera(np.array([scale, translation[0], translation[1]]), np.asarray(center, float), float(box_size))


def translation_from_joints(body_joints: np.ndarray, joints_3d: np.ndarray) -> np.ndarray:
    """(3,) mean offset from (24, 3) body GT joints to the valid ones of (24, 4) annotated 3D joints.

    Only for joints in the camera frame (a record's ``joints_frame == "camera"``): root-centred joints would put
    the camera inside the body.
    """
    valid = joints_3d[:, 3] > 0
    return (joints_3d[valid, :3] - body_joints[valid]).mean(axis=0)
