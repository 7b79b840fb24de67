"""Cameras for fits that come without one: translation from 2D keypoints or from 3D joints.

:func:`fit_translation` is the linear least-squares solve SPIN uses (``estimate_translation``)
for the translation that projects known 3D joints onto 2D keypoints through fixed intrinsics:
each keypoint gives two equations linear in ``t``,
``f_x (X + t_x) - (u - c_x)(Z + t_z) = 0`` and the same in y.
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


def fit_crop_camera(
    joints: np.ndarray, keypoints: np.ndarray, weights: np.ndarray, center: np.ndarray, box_size: float
) -> CropCamera:
    """PARE's weak-perspective camera of the 224 crop of the box, fitted to image keypoints.

    Args:
        joints: (K, 3) body joints with the pose root in the camera frame, no translation.
        keypoints: (K, 2) image pixels; weights: (K,) confidence.
    """
    to_crop = crop_affine(center, box_size, CROP_SIZE)
    translation = fit_translation(joints, apply_affine(keypoints, to_crop), weights, CROP_INTRINSICS)
    scale = 2.0 * FOCAL_LENGTH / (CROP_SIZE * translation[2])
    return CropCamera(np.array([scale, translation[0], translation[1]]), np.asarray(center, float), float(box_size))


def translation_from_joints(body_joints: np.ndarray, joints_3d: np.ndarray) -> np.ndarray:
    """(3,) mean offset from (24, 3) body GT joints to the valid ones of (24, 4) annotated 3D joints."""
    valid = joints_3d[:, 3] > 0
    return (joints_3d[valid, :3] - body_joints[valid]).mean(axis=0)
