"""Geometric augmentation: one random similarity (scale, rotation, shift, flip) applied to everything.

A stored sample is a loose square crop with the person box at its centre (``crop.box_size``).
The training window is that box scaled, rotated, shifted and optionally mirrored; one (2, 3)
affine takes crop pixels to the network input, and the same draw moves every annotation:

- image: bilinear warp; part labels (stored at the crop's side or a fraction of it,
  :func:`~preprocessing.samples.encode.label_to_crop`): nearest-neighbour warp to the loss
  resolution, then left/right part ids swapped on a flip;
- 2D keypoints: the affine, then the left/right permutation on a flip, then to [-1, 1];
- 3D joints and the SMPL root orientation: mirrored in x on a flip (joints permuted, pose by
  :func:`pare_model.joint_sets.flip_smpl_pose`), then turned about the camera axis by the
  in-plane rotation of the affine. Image x, y are the camera's X, Y (y down), so a rotation of
  the image about any point is the same rotation of the body about the optical axis plus an
  image shift, which the weak-perspective camera absorbs.

Coordinates follow :mod:`preprocessing.render.cameras` (continuous, pixel centres at +0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pare_model.body_model.parts import label_flip_perm
from pare_model.joint_sets import JOINT_SETS, flip_smpl_pose
from preprocessing.augment.config import AugmentConfig
from preprocessing.render.cameras import affine_for_cv2, apply_affine, compose_affine, crop_affine
from preprocessing.samples.encode import label_to_crop

SPIN_FLIP = np.array(JOINT_SETS["spin49"].flip_perm)
"""Left/right permutation of the 49 SPIN keypoints."""

GT_JOINTS_FLIP = SPIN_FLIP[25:] - 25
"""Left/right permutation of the 24 GT joints (the last 24 SPIN joints), e.g. for joints_3d."""

LABEL_FLIP = label_flip_perm().astype(np.uint8)
"""Label id -> mirrored label id (0 stays background)."""

MIRROR_X = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class Draw:
    """One random geometric draw: box scale, rotation in degrees (counter-clockwise on screen),
    centre shift in box sides, and whether to mirror."""

    scale: float = 1.0
    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False


IDENTITY = Draw()


def sample_draw(rng: np.random.Generator, config: AugmentConfig) -> Draw:
    """PARE's augmentation distribution (see :class:`preprocessing.augment.config.AugmentConfig`)."""
    if not config.enabled:
        return IDENTITY
    sf, rf, tf = config.scale_factor, config.rotation_factor, config.translation_factor
    scale = float(np.clip(1.0 + rng.normal() * sf, 1.0 - sf, 1.0 + sf))
    rotation = float(np.clip(rng.normal() * rf, -2 * rf, 2 * rf)) if rng.random() < config.rotation_prob else 0.0
    shift = tuple(float(v) for v in rng.uniform(-tf, tf, size=2)) if tf > 0 else (0.0, 0.0)
    return Draw(scale, rotation, shift, bool(rng.random() < config.flip_prob))


def window_affine(draw: Draw, crop_size: int, box_size: float, out_size: int) -> np.ndarray:
    """(2, 3) affine from loose-crop pixels to the ``out_size`` network input for this draw."""
    center = np.array([crop_size / 2.0, crop_size / 2.0]) + np.asarray(draw.shift) * box_size
    window = crop_affine(center, box_size * draw.scale, out_size, draw.rotation)
    if not draw.flip:
        return window
    mirror = MIRROR_X.copy()
    mirror[0, 2] = crop_size  # x -> crop_size - x
    return compose_affine(window, mirror)


def camera_rotation(affine: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about the optical axis equal to the in-plane rotation of a flip-free affine."""
    linear = np.asarray(affine)[:, :2]
    linear = linear / np.sqrt(abs(np.linalg.det(linear)))
    rotation = np.eye(3)
    rotation[:2, :2] = linear
    return rotation


@dataclass
class Augmented:
    """A training sample at network resolution; keypoints in [-1, 1] (x, y, confidence)."""

    image: np.ndarray  # (S, S, 3) uint8
    labels: np.ndarray  # (L, L) uint8, 0..24
    keypoints: np.ndarray  # (49, 3) float32
    joints_3d: np.ndarray  # (24, 4) float32
    pose: np.ndarray  # (72,) float32 axis-angle
    affine: np.ndarray  # (2, 3) loose crop -> network input (pixels)


def rotate_root(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Axis-angle pose with its root orientation turned by ``rotation`` (applied after the root)."""
    pose = pose.copy()
    root, _ = cv2.Rodrigues(np.asarray(pose[:3], dtype=np.float64))
    pose[:3] = cv2.Rodrigues(rotation @ root)[0].reshape(3)
    return pose


def augment_geometry(
    crop: np.ndarray,
    labels: np.ndarray,
    keypoints: np.ndarray,
    joints_3d: np.ndarray,
    pose: np.ndarray,
    box_size: float,
    draw: Draw,
    out_size: int,
    label_size: int,
) -> Augmented:
    """Apply one draw to a stored sample (crop, its labels at the crop's side or a fraction of it, 49 x 3 keypoints
    in crop pixels, 24 x 4 joints, 72 pose)."""
    crop_size = crop.shape[0]
    affine = window_affine(draw, crop_size, box_size, out_size)
    image = cv2.warpAffine(
        crop,
        affine_for_cv2(affine),
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    to_labels = np.array([[label_size / out_size, 0, 0], [0, label_size / out_size, 0]])
    label_affine = compose_affine(compose_affine(to_labels, affine), label_to_crop(crop_size, labels.shape[0]))
    warped_labels = cv2.warpAffine(
        labels,
        affine_for_cv2(label_affine),
        (label_size, label_size),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )

    points = np.asarray(keypoints, dtype=np.float64)
    xy = apply_affine(points[:, :2], affine) * (2.0 / out_size) - 1.0
    keypoints_out = np.concatenate([xy, points[:, 2:3]], axis=1)
    joints = np.asarray(joints_3d, dtype=np.float64).copy()
    pose = np.asarray(pose, dtype=np.float64)
    rotation_affine = affine
    if draw.flip:
        warped_labels = LABEL_FLIP[warped_labels]
        keypoints_out = keypoints_out[SPIN_FLIP]
        joints = joints[GT_JOINTS_FLIP]
        joints[:, 0] *= -1
        pose = flip_smpl_pose(pose)
        rotation_affine = compose_affine(affine, np.array([[-1.0, 0, 0], [0, 1.0, 0]]))  # remove the mirror
    turn = camera_rotation(rotation_affine)
    joints[:, :3] = joints[:, :3] @ turn.T
    pose = rotate_root(pose, turn)
    return Augmented(
        image=image,
        labels=warped_labels,
        keypoints=keypoints_out.astype(np.float32),
        joints_3d=joints.astype(np.float32),
        pose=pose.astype(np.float32),
        affine=affine,
    )
